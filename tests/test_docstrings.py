"""The runnable examples in the public docstrings run and print what they say (cheap modules only; the
offline-encoder examples load real weights and run in the slow suite)."""

from __future__ import annotations

import doctest
import importlib

import pytest

CHEAP_MODULES = [
    "hf_coreset",
    "hf_coreset.api",
    "hf_coreset.result",
    "hf_coreset.registry",
    "hf_coreset.validation",
    "hf_coreset.outputs",
    "hf_coreset.features.cache",
    "hf_coreset.integrations.hub",
    "hf_coreset.config",
    "hf_coreset.budget",
    "hf_coreset.sharded.sources",
    "hf_coreset.sharded.partition",
    "hf_coreset.sharded.exact",
    "hf_coreset.noise",
    "hf_coreset.features.aggregate",
    "hf_coreset.metrics.coverage",
    "hf_coreset.metrics.retrieval",
    "hf_coreset.proxies.training",
    "hf_coreset.proxies.dual_heads",
    "hf_coreset.proxies.linear_probe",
    "hf_coreset.evaluation.runs",
    "hf_coreset.evaluation.report",
    "hf_coreset.evaluation.quality",
    "hf_coreset.plotting",
    "hf_coreset.data",
    "hf_coreset.methods.scalselect.leverage",
    "hf_coreset.methods.scalselect.config",
    "hf_coreset.methods.scalselect.selector",
    "hf_coreset.features.vlm_attention",
    "hf_coreset.methods.ost.config",
    "hf_coreset.methods.ost.selector",
    "hf_coreset.data.llava",
    "hf_coreset.vectors",
    "hf_coreset.graph.knn",
    "hf_coreset.graph.fusion",
    "hf_coreset.graph.wavelets",
    "hf_coreset.graph.reliability",
    "hf_coreset.graph.facility_location",
    "hf_coreset.methods.facility_location.selector",
    "hf_coreset.methods.cast.selector",
]


# The register_method example registers a method: take it out again after each test.
pytestmark = pytest.mark.usefixtures("restore_registry")


@pytest.mark.parametrize("name", CHEAP_MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0, f"{name} has no example"
    assert failures == 0


@pytest.mark.slow
def test_offline_encoder_examples():
    module = importlib.import_module("hf_coreset.features.pretrained")
    assert doctest.testmod(module).failed == 0
