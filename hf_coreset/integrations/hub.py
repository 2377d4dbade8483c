"""Share a coreset on the Hugging Face Hub: data, dataset card and card figures in one commit.

``push_to_hub`` lays the data out the way ``datasets.Dataset.push_to_hub`` does (``data/train-00000-of-00001.parquet``,
features kept in the parquet metadata and in the card's ``dataset_info``, so ``load_dataset`` decodes images),
writes a README.md dataset card from the selection's provenance (``hf_coreset/model_cards/dataset_card.md``) with
its PNG figures, and sends everything as ONE ``HfApi.create_commit``: if any part fails, the repo keeps its
previous content.

Only datasets returned by ``select_coreset`` (or saved from one) can be pushed: the card is built from their
``SelectionResult``. To share any other dataset, use ``datasets.Dataset.push_to_hub``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
import tempfile
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from ..errors import CoresetInputError, MissingColumnError
from ..outputs import write_files
from ..plotting import png_bytes, pyplot
from ..result import SelectionResult, get_selection_result

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, HfApi

    from ..evaluation import CoresetReport

logger = logging.getLogger(__name__)

# Papers behind the built-in methods: (label, url). Methods not listed get no link.
METHOD_PAPERS: dict[str, list[tuple[str, str]]] = {
    "random": [],
    "kcenter": [("Sener & Savarese, *Active Learning for Convolutional Neural Networks: A Core-Set Approach*, "
                 "ICLR 2018 (arXiv:1708.00489)", "https://arxiv.org/abs/1708.00489")],
    "herding": [("Welling, *Herding Dynamical Weights to Learn*, ICML 2009",
                 "https://doi.org/10.1145/1553374.1553517")],
    "dq": [("Zhou et al., *Dataset Quantization*, ICCV 2023 (arXiv:2308.10524)", "https://arxiv.org/abs/2308.10524"),
           ("*Challenges of Multi-Modal Coreset Selection for Depth Prediction*, 2025 (arXiv:2502.15834)",
            "https://arxiv.org/abs/2502.15834")],
}
CATEGORY_COLUMN_NAMES = ("category", "categories", "label", "labels", "class", "topic")
IMAGE_DIR = "images"
IMAGE_PREFIX = "coreset_"
SELECTION_FILENAME = "coreset_selection.json"
QUALITY_FILENAME = "coreset_quality.json"
QUALITY_IMAGE = f"{IMAGE_DIR}/{IMAGE_PREFIX}quality.png"
DATA_DIR = "data"
PROTECTED_FILES = (".gitattributes",)  # files a fresh Hub repo starts with; a repo holding only these is "empty"
# Characters Markdown or HTML read as markup inside a line: code, emphasis, links, tags, entities, table cells.
MARKDOWN_MARKUP = re.compile(r"([\\`*_\[\]<>&|~])")
SPLIT_NAME = re.compile(r"\w+(\.\w+)*")  # what datasets accepts as a split name
# A Hub user token ("hf_" + letters and digits), and what replaces it in printed messages.
HUB_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
REDACTED = "hf_***"


class RepoExistsError(CoresetInputError):
    """The target repo already holds files and ``exist_ok`` was not set."""


@dataclass
class CoresetCard:
    """A rendered dataset card: the README.md text and its figures (path in repo -> PNG bytes).

    Example:
        >>> card = CoresetCard(text="---\\nlicense: unknown\\n---\\n# A coreset\\n", images={})
        >>> import tempfile; folder = card.save(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['README.md']
    """

    text: str
    images: dict[str, bytes] = field(default_factory=dict)

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write README.md and the figures (at their paths in the repo) under ``folder``, each file replaced at
        once; return the folder. A README.md or figure already there (your own README, say) is refused, and
        nothing written, unless ``overwrite=True``."""
        folder = Path(folder)
        write_files(folder, {"README.md": self.text.encode("utf-8"), **self.images}, overwrite=overwrite)
        return folder


# ----------------------------------------------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------------------------------------------


def push_to_hub(
    coreset: datasets.Dataset,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    exist_ok: bool = False,
    create_pr: bool = False,
    commit_message: str | None = None,
    category_column: str | None = None,
    source: datasets.Dataset | None = None,
    source_id: str | None = None,
    benchmark_figures: Mapping[str, str | Path | bytes] | None = None,
    report: CoresetReport | None = None,
    max_shard_size: int | str = "500MB",
) -> CommitInfo:
    """Upload a coreset as a Hub dataset repo: parquet shards, a dataset card and its figures, in ONE commit.

    The repo is created if needed (``private`` applies then). A repo that already holds files is refused unless
    ``exist_ok=True``; with it, the new commit replaces this split's shards, the card and its figures, and deletes
    the stale ones, all in the same commit. A repo holding only ``.gitattributes`` (e.g. left by a push whose commit
    failed) counts as empty. The token is only handed to ``huggingface_hub``: it is never logged nor written.

    Args:
        coreset: a dataset returned by ``select_coreset`` (or ``load_from_disk`` of one).
        repo_id: ``"namespace/name"`` of the dataset repo.
        private: create the repo private. Refused (with ``exist_ok``) if the existing repo is public.
        token: a Hub token with write access (default: the locally saved one, or ``HF_TOKEN``).
        revision: branch to commit to (created from ``main`` if missing); default ``main``.
        exist_ok: allow replacing the content of an existing, non-empty repo.
        create_pr: open a pull request with the commit instead of committing to the branch.
        commit_message: default ``"Upload <method> coreset (<rows out> of <rows in> rows)"``.
        category_column: column whose composition is plotted (default: the first of ``category``, ``label``,
            ... that holds strings or class labels).
        source: the full source dataset, to compare its composition with the coreset's.
        source_id: the source's Hub id (``"owner/name"`` or ``"owner/name@revision"``), for ``source_datasets``.
        benchmark_figures: ``{title: PNG path or bytes}`` shown under "Benchmarks".
        report: the :class:`~hf_coreset.CoresetReport` of ``hf_coreset.evaluate_coreset`` on this coreset: the card
            gets a "Quality check" section (verdict, table, bar chart) and the report goes up as
            ``coreset_quality.json``.
        max_shard_size: largest parquet shard (``"500MB"``, or bytes), as in ``datasets``.

    Returns:
        The ``huggingface_hub.CommitInfo`` of the commit (``.oid``, ``.commit_url``, ``.pr_url``).

    Example (needs a Hub account and network)::

        >>> import hf_coreset                                                    # doctest: +SKIP
        >>> from hf_coreset.integrations.hub import push_to_hub                  # doctest: +SKIP
        >>> core = hf_coreset.select_coreset(ds, "random", 0.1)                  # doctest: +SKIP
        >>> push_to_hub(core, "me/my-coreset", private=True).commit_url          # doctest: +SKIP
        'https://huggingface.co/datasets/me/my-coreset/commit/4f0c...'
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    result = _selection_of(coreset)
    split = check_split_name(str(coreset.split) if coreset.split is not None else "train")
    with tempfile.TemporaryDirectory(prefix="hf_coreset_push_") as staging:
        # Everything that can fail on bad input happens here, before the first request to the Hub.
        shards = _write_parquet_shards(coreset, Path(staging), split, max_shard_size)
        card = render_dataset_card(
            coreset, repo_id, category_column=category_column, source=source, source_id=source_id,
            benchmark_figures=benchmark_figures, split=split, result=result, report=report,
            download_size=sum(path.stat().st_size for path in shards.values()),
        )
        api = HfApi(token=token, library_name="hf-coreset")
        parent_commit, existing = _prepare_repo(api, repo_id, private=private, exist_ok=exist_ok, revision=revision)
        additions = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in shards.items()]
        additions += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=png) for name, png in card.images.items()]
        additions += [
            CommitOperationAdd(path_in_repo=SELECTION_FILENAME, path_or_fileobj=result.to_json(indent=1).encode()),
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.text.encode("utf-8")),
        ]
        if report is not None:
            additions.append(CommitOperationAdd(path_in_repo=QUALITY_FILENAME,
                                                path_or_fileobj=report.to_json(indent=1).encode()))
        deletions = _stale_files(existing, keep={op.path_in_repo for op in additions}, split=split)
        message = commit_message or (
            f"Upload {result.provenance.get('method', 'hf-coreset')} coreset "
            f"({result.provenance.get('rows_out', coreset.num_rows)} of {result.provenance.get('rows_in', '?')} rows)"
        )
        logger.info("Pushing %d file(s) to %s in one commit.", len(additions), repo_id)
        return api.create_commit(
            repo_id, operations=[*additions, *deletions], commit_message=message, repo_type="dataset",
            revision=revision, create_pr=create_pr, parent_commit=parent_commit,
        )


def render_dataset_card(
    coreset: datasets.Dataset,
    repo_id: str,
    *,
    category_column: str | None = None,
    source: datasets.Dataset | None = None,
    source_id: str | None = None,
    benchmark_figures: Mapping[str, str | Path | bytes] | None = None,
    split: str | None = None,
    result: SelectionResult | None = None,
    report: CoresetReport | None = None,
    download_size: int | None = None,
) -> CoresetCard:
    """Render the dataset card of a coreset (README.md text and PNG figures), without touching the network.

    This is the card ``push_to_hub`` uploads (it passes the parquet ``download_size`` once the shards are written).
    See :func:`push_to_hub` for the arguments.

    Example:
        >>> import datasets, hf_coreset
        >>> from hf_coreset.integrations.hub import render_dataset_card
        >>> ds = datasets.Dataset.from_dict({"x": list(range(50)), "category": ["a", "b"] * 25})
        >>> core = hf_coreset.select_coreset(ds, "random", 10, seed=0)
        >>> card = render_dataset_card(core, "me/tiny-coreset")
        >>> "tags:" in card.text, sorted(card.images)
        (True, ['images/coreset_composition.png', 'images/coreset_scores.png'])
    """
    result = result or _selection_of(coreset)
    split = check_split_name(split or (str(coreset.split) if coreset.split is not None else "train"))
    images = {f"{IMAGE_DIR}/{IMAGE_PREFIX}scores.png": _score_histogram_png(result)}
    column = _find_category_column(coreset, category_column)
    if column is not None:
        images[f"{IMAGE_DIR}/{IMAGE_PREFIX}composition.png"] = _composition_png(coreset, column, source)
    if report is not None:
        images[QUALITY_IMAGE] = report.plot()
    benchmarks = _benchmark_images(benchmark_figures or {})
    images.update({path: png for path, (_, png) in benchmarks.items()})
    fields = _card_fields(coreset, result, split, source_id)
    method = str(result.provenance.get("method", "unknown"))
    fields.update(
        yaml_header=_yaml_header(coreset, result, split, source_id, download_size).rstrip("\n"),
        title=markdown_text(f"{method} coreset of {_source_label(coreset, source_id) or 'a local dataset'}"),
        repo_id=python_string(repo_id), split=python_string(split),
        score_section=_score_section(result),
        composition_section=_composition_section(column, source),
        benchmark_section=_benchmark_section(benchmarks),
        quality_section=_quality_section(report),
    )
    return CoresetCard(text=_template("dataset_card.md").substitute(fields), images=images)


def render_trained_on_coreset_section(
    result: SelectionResult | datasets.Dataset, *, dataset_id: str | None = None
) -> str:
    """A "Trained on a coreset" model-card section (markdown) describing the selection behind the training set.

    A Trainer callback can append it to the model card (``trainer.create_model_card`` output or ``ModelCard.text``).

    Args:
        result: the :class:`SelectionResult` (or a coreset dataset carrying one).
        dataset_id: Hub id of the pushed coreset, linked from the section when given.

    Example:
        >>> import datasets, hf_coreset
        >>> ds = datasets.Dataset.from_dict({"x": list(range(40))})
        >>> core = hf_coreset.select_coreset(ds, "random", 0.25, seed=3)
        >>> from hf_coreset.integrations.hub import render_trained_on_coreset_section
        >>> section = render_trained_on_coreset_section(core, dataset_id="me/c")
        >>> section.splitlines()[0], "10 of its 40 rows" in section
        ('## Trained on a coreset', True)
    """
    coreset = result if isinstance(result, datasets.Dataset) else None
    if coreset is not None:
        result = _selection_of(coreset)
    fields = _card_fields(coreset, result, None, None)
    fields["dataset_link"] = (
        f"; the coreset is published as [{markdown_text(dataset_id)}]"
        f"(https://huggingface.co/datasets/{urllib.parse.quote(dataset_id, safe='/')})" if dataset_id else ""
    )
    return _template("trained_on_coreset.md").substitute(fields)


def redact_token(text: str, token: str | None = None) -> str:
    """``text`` with the Hub token removed, to print a server's error safely.

    Removes ``token`` (default: the active one, from ``HF_TOKEN`` or the saved login) and anything shaped like a
    Hub user token (``hf_`` and 30 or more letters and digits).

    Example:
        >>> redact_token("401: bad token hf_abcdefghijklmnopqrstuvwxyz0123456789 for hf_coreset", token="s3cret")
        '401: bad token hf_*** for hf_coreset'
        >>> redact_token("echo: s3cret", token="s3cret")
        'echo: hf_***'
    """
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if token:
        text = text.replace(token, REDACTED)
    return HUB_TOKEN_SHAPE.sub(REDACTED, text)


def is_connection_error(error: BaseException) -> bool:
    """True for a dropped or refused connection or a timeout, whichever HTTP library huggingface_hub uses
    (requests' ``ConnectionError``, httpx's ``TransportError`` such as ``RemoteProtocolError``)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(cls.__name__ in ("TransportError", "ConnectionError") for cls in type(error).__mro__)


# ----------------------------------------------------------------------------------------------------------------
# Repo handling
# ----------------------------------------------------------------------------------------------------------------


def _selection_of(coreset: Any) -> SelectionResult:
    if not isinstance(coreset, datasets.Dataset):
        raise CoresetInputError(
            f"push_to_hub needs the datasets.Dataset returned by select_coreset, got {type(coreset).__name__}."
        )
    try:
        return get_selection_result(coreset)
    except CoresetInputError:  # a record that is there but malformed: its own message says what is wrong
        raise
    except ValueError as err:
        raise CoresetInputError(
            "This dataset carries no hf_coreset selection, so there is nothing to write in a coreset card: push "
            "the dataset returned by select_coreset (or load_from_disk of a `hf-coreset select` output), or use "
            "datasets.Dataset.push_to_hub for a plain dataset."
        ) from err


def _prepare_repo(api: HfApi, repo_id: str, *, private: bool, exist_ok: bool, revision: str | None):
    """Create the repo or check that we may write to it. Returns (parent commit or None, files at the revision)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        _create_repo(api, repo_id, private)
        info = api.dataset_info(repo_id)
    existing = [s.rfilename for s in info.siblings or [] if s.rfilename not in PROTECTED_FILES]
    if existing and not exist_ok:
        raise RepoExistsError(
            f"The Hub dataset repo {repo_id} already holds {len(existing)} file(s); pass exist_ok=True "
            "(CLI: --exist-ok) to replace its data and card in one commit, or choose another repo_id."
        )
    if private and not info.private:
        raise CoresetInputError(
            f"{repo_id} exists and is public, but private=True was asked: make it private on the Hub first, "
            "or push to another repo_id."
        )
    if revision is None or revision == "main":
        return info.sha, existing
    if not revision.startswith("refs/pr/"):
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    try:
        branch = api.dataset_info(repo_id, revision=revision)
    except RevisionNotFoundError:
        return None, []
    return branch.sha, [s.rfilename for s in branch.siblings or [] if s.rfilename not in PROTECTED_FILES]


def _create_repo(api: HfApi, repo_id: str, private: bool) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_repo(repo_id, repo_type="dataset", private=private)
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code == 409:
            raise RepoExistsError(
                f"The Hub dataset repo {repo_id} exists but this token cannot read it: use a token with access "
                "to it, or choose another repo_id."
            ) from None
        raise


def _stale_files(existing: list[str], keep: set[str], split: str) -> list:
    """Delete operations for files a previous push of this split left and this push does not rewrite."""
    from huggingface_hub import CommitOperationDelete

    ours = re.compile(rf"^({DATA_DIR}/{re.escape(split)}-\d+-of-\d+\.parquet|{IMAGE_DIR}/{IMAGE_PREFIX}[^/]*\.png)$")
    return [CommitOperationDelete(path_in_repo=p) for p in existing if ours.match(p) and p not in keep]


def _write_parquet_shards(coreset: datasets.Dataset, folder: Path, split: str, max_shard_size: int | str):
    """Write ``data/<split>-0000i-of-0000n.parquet`` shards (images embedded as bytes); returns {path in repo: file}."""
    from datasets.features.features import require_decoding
    from datasets.table import embed_table_storage
    from datasets.utils.py_utils import convert_file_size_to_int

    embed = any(require_decoding(f, ignore_decode_attribute=True) for f in coreset.features.values())

    num_shards = math.ceil(_estimated_nbytes(coreset) / convert_file_size_to_int(max_shard_size))
    num_shards = min(max(num_shards, 1), max(coreset.num_rows, 1))
    shards = {}
    for index in range(num_shards):
        shard = coreset.shard(num_shards=num_shards, index=index, contiguous=True)
        if embed:  # image / audio paths become bytes inside the parquet, as datasets.push_to_hub does
            shard = shard.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
        name = f"{DATA_DIR}/{split}-{index:05d}-of-{num_shards:05d}.parquet"
        path = folder / f"{split}-{index:05d}.parquet"
        shard.with_format(None).to_parquet(str(path))
        shards[name] = path
    return shards


def _estimated_nbytes(coreset: datasets.Dataset) -> int:
    """Arrow bytes of the coreset's rows (its table may still hold every source row behind an indices mapping)."""
    return int(coreset.data.nbytes * coreset.num_rows / max(len(coreset.data), 1))


def _dataset_info_yaml(coreset: datasets.Dataset, split: str, download_size: int | None) -> dict[str, Any]:
    """The ``dataset_info`` card block (features, split sizes) that ``datasets`` reads back, as a YAML-ready dict."""
    nbytes = _estimated_nbytes(coreset)
    split_info = datasets.SplitInfo(name=split, num_bytes=nbytes, num_examples=coreset.num_rows)
    info = datasets.DatasetInfo(
        features=coreset.features, splits=datasets.SplitDict({split: split_info}),
        download_size=download_size, dataset_size=nbytes,
    )
    card_data: dict[str, Any] = {}
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return {k: v for k, v in card_data["dataset_info"].items() if v is not None}


# ----------------------------------------------------------------------------------------------------------------
# Card fields
# ----------------------------------------------------------------------------------------------------------------


def _template(name: str) -> string.Template:
    return string.Template(files("hf_coreset.model_cards").joinpath(name).read_text(encoding="utf-8"))


def _split_source_id(source_id: str | None) -> tuple[str | None, str | None]:
    """``"owner/name@rev"`` -> ``("owner/name", "rev")``."""
    if not source_id:
        return None, None
    name, _, revision = source_id.partition("@")
    return name, revision or None


def _source_label(coreset: datasets.Dataset | None, source_id: str | None) -> str | None:
    """How the card names the source: its Hub id, else the ``dataset_name`` in its info, else None."""
    hub_id, _ = _split_source_id(source_id)
    return hub_id or getattr(getattr(coreset, "info", None), "dataset_name", None)


def _card_fields(coreset, result: SelectionResult, split, source_id) -> dict[str, str]:
    """Fields shared by both templates, all as display strings: every value from the provenance, the dataset's
    info or the caller is escaped for where it lands (Markdown text, a code span, Python or JSON code)."""
    prov = result.provenance
    method = str(prov.get("method", "unknown"))
    hub_id, source_revision = _split_source_id(source_id)
    label = _source_label(coreset, source_id)
    fingerprint = prov.get("source_fingerprint") or "unknown"
    rows_in, rows_out = prov.get("rows_in"), prov.get("rows_out", len(result.indices))
    config = prov.get("config", {})
    return {
        "method": markdown_text(method),
        "method_line": _method_line(method),
        "score_meaning": (f"Scores: {markdown_text(str(prov['score_meaning']).rstrip('.'))}."
                          if prov.get("score_meaning") else ""),
        "source_name": markdown_code(label) if label else "a local dataset (not on the Hub)",
        "source_split": markdown_text(prov.get("source_split") or "unknown"),
        "source_revision": markdown_code(source_revision or f"fingerprint {fingerprint}"),
        "license": markdown_text(_license(coreset)),
        "rows_in": f"{rows_in:,}" if _is_int(rows_in) else "unknown",
        "rows_out": f"{rows_out:,}" if _is_int(rows_out) else "unknown",
        "fraction": f"{100 * rows_out / rows_in:.1f}%" if _is_int(rows_in) and rows_in and _is_int(rows_out)
                    else "unknown fraction",
        "rows_dropped": _describe_dropped(prov.get("rows_dropped", {})),
        "budget": markdown_text(prov.get("budget", "unknown")),
        "budget_rows": f"{prov['budget_rows']:,}" if _is_int(prov.get("budget_rows")) else "unknown",
        "seed": markdown_text(prov.get("seed", config.get("seed", "unknown"))),
        "config_json": json.dumps(config, indent=2, sort_keys=True, default=str),
        "reproduce": _reproduce_snippet(method, prov, hub_id, split),
        "timings": ", ".join(f"{markdown_text(k)} {v:.2f}" for k, v in prov.get("timings", {}).items()
                             if isinstance(v, (int, float))) or "unknown",
        "library_versions": ", ".join(f"{markdown_text(k)} {markdown_text(v)}"
                                      for k, v in prov.get("library_versions", {}).items()) or "unknown",
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def markdown_text(value: Any) -> str:
    r"""``value`` as literal Markdown text on one line: the characters that Markdown or HTML would read as
    markup (emphasis, code, links, tags, entities, table cells) are backslash-escaped.

    Example:
        >>> print(markdown_text("a *b* | <script>\nalert()"))
        a \*b\* \| \<script\> alert()
    """
    return MARKDOWN_MARKUP.sub(r"\\\1", " ".join(str(value).split()))


def markdown_code(value: Any) -> str:
    """``value`` as an inline code span on one line, whatever backticks or table pipes it holds.

    Example:
        >>> markdown_code("v1.0"), markdown_code("a`b")
        ('`v1.0`', '``a`b``')
    """
    text = " ".join(str(value).split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def python_string(value: Any) -> str:
    r"""A Python string literal of ``value`` on one line (the JSON spelling, which Python reads the same).

    Example:
        >>> print(python_string('train"); import os; ("'))
        "train\"); import os; (\""
    """
    return json.dumps(str(value))


def check_split_name(split: str) -> str:
    """Return ``split`` if it is a valid ``datasets`` split name (letters, digits, ``_``, ``.``), else raise:
    it names the parquet files and lands in the card."""
    if not SPLIT_NAME.fullmatch(split):
        raise CoresetInputError(
            f"Split name {split!r} is not a valid datasets split name (letters, digits, '_' and '.'): rename the "
            "split, e.g. with DatasetDict({'train': coreset})."
        )
    return split


def _method_line(method: str) -> str:
    papers = METHOD_PAPERS.get(method)
    name = markdown_code(method)
    if papers is None:
        return f"Method {name} (a method registered outside hf-coreset: no paper link known)."
    if not papers:
        return f"Method {name}: uniform sampling without replacement (the baseline every coreset should beat)."
    links = "; ".join(f"[{label}]({url})" for label, url in papers)
    return f"Method {name}, after {links}."


def _license(coreset: datasets.Dataset | None) -> str:
    license_ = getattr(getattr(coreset, "info", None), "license", None)
    return str(license_).strip() if license_ and str(license_).strip() else "unknown"


def _describe_dropped(dropped: Mapping[str, Any]) -> str:
    parts = [f"{markdown_text(info.get('count', 0))} ({markdown_text(reason)})" for reason, info in dropped.items()]
    return ", ".join(parts) if parts else "0"


def _reproduce_snippet(method: str, prov: Mapping[str, Any], source_name: str | None, split: str | None) -> str:
    """A select_coreset call in a Python code block: every value is a Python literal on one line, so nothing
    from the provenance can add code or close the block."""
    options = {k: v for k, v in prov.get("config", {}).items() if k != "seed"}
    named = {k: v for k, v in options.items() if isinstance(k, str) and k.isidentifier()}
    args = "".join(f", {k}={_python_literal(v)}" for k, v in named.items())
    if len(named) < len(options):
        args += f", **{_python_literal({k: v for k, v in options.items() if k not in named})}"
    source_split = prov.get("source_split") or split or "train"
    load = (f"source = datasets.load_dataset({python_string(source_name)}, split={python_string(source_split)})"
            if source_name else "source = ...  # the source dataset (its fingerprint is in the table above)")
    return (
        "import datasets, hf_coreset\n\n"
        f"{load}\n"
        f"coreset = hf_coreset.select_coreset(\n"
        f"    source, {python_string(method)}, {_python_literal(prov.get('budget'))}, "
        f"seed={_python_literal(prov.get('seed', 0))}{args},\n"
        "    # plus the same feature source as the original run: embedding_columns=[...] or image/text encoders\n"
        ")"
    )


def _python_literal(value: Any) -> str:
    """repr for the JSON values a config holds (str, numbers, bools, None, lists, dicts), on one line."""
    return " ".join(repr(value).splitlines())


def _size_category(n_rows: int) -> str:
    """The Hub's ``size_categories`` value for ``n_rows`` (``n<1K``, ``1K<n<10K``, ..., ``n>1T``)."""
    names = ["1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T"]
    for power, name in enumerate(names, start=3):
        if n_rows < 10**power:
            return f"{names[power - 4]}<n<{name}" if power > 3 else f"n<{name}"
    return "n>1T"


def _yaml_header(coreset, result: SelectionResult, split: str, source_id: str | None, download_size) -> str:
    import yaml

    method = " ".join(str(result.provenance.get("method", "unknown")).split())  # YAML quotes it; one line reads best
    source_name = _source_label(coreset, source_id)
    header: dict[str, Any] = {
        "license": _license(coreset),
        "pretty_name": " ".join(f"{method} coreset of {source_name or 'a local dataset'}".split()),
        "tags": list(dict.fromkeys(["coreset", "hf-coreset", method])),
        "size_categories": [_size_category(coreset.num_rows)],
    }
    if source_name and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source_name):  # a Hub-style id, not a description
        header["source_datasets"] = [source_name]
    header["configs"] = [{"config_name": "default",
                          "data_files": [{"split": split, "path": f"{DATA_DIR}/{split}-*"}]}]
    header["dataset_info"] = _dataset_info_yaml(coreset, split, download_size)
    return yaml.safe_dump(header, sort_keys=False, allow_unicode=True)


# ----------------------------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------------------------


def _score_histogram_png(result: SelectionResult) -> bytes:
    import numpy as np

    plt = pyplot()
    scores = np.asarray(result.scores, dtype=float)
    finite = scores[np.isfinite(scores)]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if finite.size:
        ax.hist(finite, bins=min(30, max(5, int(np.sqrt(finite.size)))), color="#4C72B0", edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no finite scores", ha="center", va="center", transform=ax.transAxes)
    skipped = scores.size - finite.size
    method = result.provenance.get("method", "?")
    ax.set_title(f"{method}: scores of the {scores.size} selected rows"
                 + (f" ({skipped} non-finite not shown)" if skipped else ""), fontsize=10)
    ax.set_xlabel("coreset score")
    ax.set_ylabel("rows")
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def _find_category_column(coreset: datasets.Dataset, column: str | None) -> str | None:
    if column is not None:
        if column not in coreset.column_names:
            raise MissingColumnError(
                f"category_column={column!r} is not a column of the coreset; its columns are {coreset.column_names}."
            )
        return column
    for name in CATEGORY_COLUMN_NAMES:
        feature = coreset.features.get(name)
        if isinstance(feature, datasets.ClassLabel) or (
            isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")
        ):
            return name
    return None


def _category_shares(dataset: datasets.Dataset, column: str) -> Counter:
    values = dataset[column]
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        values = [feature.int2str(v) for v in values]
    return Counter(str(v) for v in values)


def _composition_png(coreset: datasets.Dataset, column: str, source: datasets.Dataset | None) -> bytes:
    import numpy as np

    plt = pyplot()
    picked = _category_shares(coreset, column)
    full = _category_shares(source, column) if source is not None and column in source.column_names else None
    names = sorted((full or picked), key=lambda k: (-(full or picked)[k], k))
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.28 * len(names) + 1.2)))
    height = 0.4 if full else 0.7
    ax.barh(y - (height / 2 if full else 0), [100 * picked[n] / coreset.num_rows for n in names], height=height,
            color="#4C72B0", label=f"coreset ({coreset.num_rows:,} rows)")
    if full:
        ax.barh(y + height / 2, [100 * full[n] / source.num_rows for n in names], height=height,
                color="#BBBBBB", label=f"source ({source.num_rows:,} rows)")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"% of rows per {column}")
    ax.set_title(f"Composition by {column}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


def _benchmark_images(figures: Mapping[str, str | Path | bytes]) -> dict[str, tuple[str, bytes]]:
    """{path in repo: (title, PNG bytes)} for the benchmark figures given by title."""
    images = {}
    for title, figure in figures.items():
        png = figure if isinstance(figure, bytes) else Path(figure).read_bytes()
        if not png.startswith(b"\x89PNG"):
            raise CoresetInputError(f"benchmark figure {title!r} is not a PNG image; save it with format='png'.")
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or f"figure_{len(images)}"
        images[f"{IMAGE_DIR}/{IMAGE_PREFIX}benchmark_{slug}.png"] = (title, png)
    return images


def _score_section(result: SelectionResult) -> str:
    return (f"![Histogram of the coreset scores]({IMAGE_DIR}/{IMAGE_PREFIX}scores.png)\n\n"
            "Score of each selected row (what it means is given under Method); rows are listed in pick order "
            f"in `{SELECTION_FILENAME}`.")


def _composition_section(column: str | None, source: datasets.Dataset | None) -> str:
    if column is None:
        return "No category-like column (pass `category_column=` to plot one)."
    against = " against the source dataset" if source is not None else ""
    figure = f"![Share of rows per {markdown_text(column)}]({IMAGE_DIR}/{IMAGE_PREFIX}composition.png)"
    return f"{figure}\n\nShare of rows per {markdown_code(column)}{against}."


def _quality_section(report: CoresetReport | None) -> str:
    if report is None:
        return ""
    if report.method:  # a registered method's name is the user's text: keep it literal in the table
        report = replace(report, method=markdown_text(report.method))
    caption = f"{report.metric} of the coreset, of random subsets of the same size and of the full pool"
    figure = f"![{caption}]({QUALITY_IMAGE})"
    return (f"\n## Quality check\n\nDoes training on this coreset beat training on a random subset of the same "
            f"size? Measured with `hf_coreset.evaluate_coreset` on rows held out before the selection.\n\n"
            f"{report.to_markdown()}\n{figure}\n\nEvery run's scores: [`{QUALITY_FILENAME}`]({QUALITY_FILENAME}).\n")


def _benchmark_section(benchmarks: Mapping[str, tuple[str, bytes]]) -> str:
    if not benchmarks:
        return ""
    figures = "\n\n".join(f"### {markdown_text(title)}\n\n![{markdown_text(title)}]({path})"
                          for path, (title, _) in benchmarks.items())
    return f"\n## Benchmarks\n\n{figures}\n"
