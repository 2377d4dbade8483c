# The two set-up commands of the README: `make demo` (main job) and `make test`.
# Both install what they need first; torch comes first, as the CPU build pinned below, because a bare
# `torch` requirement pulls a multi-GB CUDA build.
PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
STAMP := .make-installed

.PHONY: install demo test bench-speed lint

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(PYTHON) -m pip install -e ".[demo,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m hf_coreset.cli demo

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench-speed: $(STAMP)
	$(PYTHON) benchmarks/dq_speed.py

lint: $(STAMP)
	$(PYTHON) -m ruff check hf_coreset tests benchmarks scripts
