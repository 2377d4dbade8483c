"""``method="ost"``: keep the rows whose one simulated training step helps the proxy most on an anchor set.

Two ways in:
- ``proxy=`` a model and ``collate_fn=``: the utilities are computed from the dataset rows (the
  :meth:`OSTSelector.features_from_dataset` hook), e.g. a small VLM with a LoRA adapter;
- no proxy, two ``embedding_columns`` (image, text): a light contrastive two-head proxy on those features.

Under ``accelerate launch`` the candidate rows are split across processes and the utilities gathered, so every
process selects the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...distributed import process_share
from ...errors import CoresetInputError
from ...selector import ComputedFeatures, FeatureSet, Selector
from ...validation import read_embedding_column
from .config import OSTConfig, resolve_defaults

# The proxy and the utilities need torch: imported on first use, so that `import hf_coreset` stays light.
if TYPE_CHECKING:
    from .utility import UtilityScores

UTILITY_BLOCK = "ost_utility"
SKETCH_BLOCK = "ost_gradient_sketch"


class OSTSelector(Selector):
    """Ranks rows by one-step utility ``U_i = L_V(theta) - L_V(theta - eta g_i)`` (highest first), or picks them
    greedily with a gradient-redundancy penalty (``redundancy=True``). ``U_i < 0`` rows are harmful: their
    count is in the diagnostics; :func:`hf_coreset.methods.ost.ost_utilities` lists them.

    Example:
        >>> import datasets, numpy as np, hf_coreset
        >>> rng = np.random.default_rng(0)
        >>> ds = datasets.Dataset.from_dict({"img": rng.normal(size=(60, 8)).tolist(),
        ...                                  "txt": rng.normal(size=(60, 4)).tolist()})
        >>> core = hf_coreset.select_coreset(ds, "ost", 0.25, embedding_columns=["img", "txt"])
        >>> core.num_rows, hf_coreset.get_selection_result(core).diagnostics["estimator"]
        (15, 'exact')
    """

    score_meaning = ("one-step utility: decrease of the proxy's anchor loss after one simulated step on the row "
                     "(negative: harmful)")
    config: OSTConfig

    def _select(self, features: FeatureSet, budget: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if UTILITY_BLOCK in features.blocks:  # computed from the rows by the proxy hook
            utilities = features.blocks[UTILITY_BLOCK][:, 0]
            sketches = features.blocks.get(SKETCH_BLOCK)
            diagnostics = dict(features.diagnostics)
        else:
            scores = score_embedding_pairs(features, self.config, show_progress=features.n_rows > 5000)
            utilities, sketches, diagnostics = scores.utilities, scores.sketches, scores.diagnostics
        if self.config.redundancy:
            indices, picked = redundancy_greedy(utilities, sketches, budget, diagnostics["learning_rate"])
        else:
            indices = np.argsort(-utilities, kind="stable")[:budget]  # ties: lower row first
            picked = utilities[indices]
        diagnostics.update(harmful_rows=int((utilities < 0).sum()), utility_mean=float(utilities.mean()),
                           redundancy=self.config.redundancy)
        return indices, picked, diagnostics

    @classmethod
    def features_from_dataset(cls, config: OSTConfig, dataset: Any, *, show_progress: bool = True,
                              **_: Any) -> ComputedFeatures | None:
        """With ``proxy=``: the utility (and gradient sketch) of every row, from the rows themselves."""
        if config.proxy is None:
            return None
        scores = score_dataset_rows(dataset, config, show_progress=show_progress)
        blocks = {UTILITY_BLOCK: scores.utilities[:, None]}
        if scores.sketches is not None:
            blocks[SKETCH_BLOCK] = scores.sketches
        return ComputedFeatures(blocks=blocks, diagnostics=scores.diagnostics)


def score_dataset_rows(dataset: Any, config: OSTConfig, *, show_progress: bool = True) -> UtilityScores:
    """Utilities of every row of ``dataset`` under ``config.proxy`` (rows -> ``config.collate_fn`` -> model)."""
    from .proxy import dataset_batches

    load = dataset_batches(dataset, config.collate_fn)
    if config.anchor is not None:
        load_anchor, anchor_rows = dataset_batches(config.anchor, config.collate_fn), np.arange(config.anchor.num_rows)
    else:
        load_anchor, anchor_rows = load, None
    return _score(config.proxy, load, dataset.num_rows, config, load_anchor=load_anchor, anchor_rows=anchor_rows,
                  show_progress=show_progress)


def score_embedding_pairs(features: FeatureSet, config: OSTConfig, *, show_progress: bool = False) -> UtilityScores:
    """Utilities of every row under the built-in contrastive proxy on the (image, text) feature blocks."""
    if len(features.blocks) != 2:
        raise CoresetInputError(
            f"ost without proxy= needs exactly two embedding columns (image, then text) for its contrastive "
            f"proxy, got {len(features.blocks)}: {list(features.blocks)}. Pass embedding_columns=[image, text], "
            "or proxy=<model> with collate_fn=."
        )
    from .proxy import build_pair_proxy, feature_batches

    images, texts = features.blocks.values()
    proxy = build_pair_proxy(images, texts, heads=config.heads, bank_size=config.bank_size, seed=config.seed)
    load = feature_batches(images, texts)
    load_anchor, anchor_rows = load, None
    if config.anchor is not None:  # a held-out (ideally clean) anchor with the same embedding columns
        anchor_blocks = [read_embedding_column(config.anchor, column) for column in features.blocks]
        load_anchor, anchor_rows = feature_batches(*anchor_blocks), np.arange(config.anchor.num_rows)
    return _score(proxy, load, features.n_rows, config, load_anchor=load_anchor, anchor_rows=anchor_rows,
                  show_progress=show_progress)


def _score(model, load_batch, n_rows: int, config: OSTConfig, *, load_anchor, anchor_rows,
           show_progress: bool) -> UtilityScores:
    """Draw the warm-up and anchor rows (seeded), shard the candidates across processes, score, gather."""
    from .utility import FunctionalProxy, one_step_utilities

    config = resolve_defaults(config, builtin_proxy=config.proxy is None)
    rng = np.random.default_rng(config.seed)
    warmup_rows = rng.permutation(n_rows)[: int(round(config.warmup_fraction * n_rows))]
    if anchor_rows is None:  # drawn from the pool; these rows stay candidates
        anchor_rows = np.sort(rng.permutation(n_rows)[: max(1, int(round(config.anchor_fraction * n_rows)))])
    candidates, gather, processes = process_share(np.arange(n_rows))
    proxy = FunctionalProxy(model, config.loss_fn, config.device)
    try:
        local = one_step_utilities(
            proxy, load_batch, candidates, load_anchor=load_anchor, anchor_rows=anchor_rows,
            warmup_rows=warmup_rows, estimator=config.estimator, learning_rate=config.learning_rate,
            preconditioner=config.preconditioner, batch_size=config.scoring_batch_size,
            warmup_learning_rate=config.warmup_learning_rate, warmup_batch_size=config.warmup_batch_size,
            per_sample_gradients=config.per_sample_gradients,
            sketch_dim=config.sketch_dim if config.redundancy else None, seed=config.seed,
            show_progress=show_progress,
        )
    finally:
        proxy.restore_mode()
    scores = _merge(gather(local), processes)
    scores.diagnostics.update(learning_rate=config.learning_rate, warmup_fraction=config.warmup_fraction)
    return scores


def _merge(parts: list[UtilityScores], processes: int) -> UtilityScores:
    """The shares' scores in row order (the shares are contiguous and come back in process order)."""
    from .utility import UtilityScores

    if len(parts) == 1:
        return parts[0]
    return UtilityScores(
        utilities=np.concatenate([p.utilities for p in parts]),
        sketches=None if parts[0].sketches is None else np.concatenate([p.sketches for p in parts]),
        diagnostics={**parts[0].diagnostics, "processes": processes},
    )


def redundancy_greedy(utilities: np.ndarray, sketches: np.ndarray, budget: int,
                      learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy ``argmax_i U_i - eta^2 sum_{j in S} <g_i, g_j>``: one matrix-vector product per pick."""
    picked_sum = np.zeros(sketches.shape[1])
    available = np.ones(len(utilities), dtype=bool)
    indices, gains = np.empty(budget, dtype=np.int64), np.empty(budget)
    for step in range(budget):
        gain = np.where(available, utilities - learning_rate ** 2 * (sketches @ picked_sum), -np.inf)
        pick = int(np.argmax(gain))
        indices[step], gains[step], available[pick] = pick, gain[pick], False
        picked_sum += sketches[pick]
    return indices, gains


@dataclass
class OSTUtilities:
    """Every row's one-step utility, the rows that are harmful (``U_i < 0``) and the scoring diagnostics."""

    utilities: np.ndarray
    harmful_rows: list[int]
    diagnostics: dict[str, Any]


def ost_utilities(dataset: Any, *, embedding_columns: list[str] | None = None, seed: int = 0,
                  show_progress: bool = True, **options: Any) -> OSTUtilities:
    """Score every row of ``dataset`` as ``method="ost"`` would (same options), without selecting.

    Example:
        >>> import datasets, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ds = datasets.Dataset.from_dict({"img": rng.normal(size=(40, 8)).tolist(),
        ...                                  "txt": rng.normal(size=(40, 4)).tolist()})
        >>> scores = ost_utilities(ds, embedding_columns=["img", "txt"], show_progress=False)
        >>> scores.utilities.shape, len(drop_harmful(ds, scores.utilities)) == 40 - len(scores.harmful_rows)
        ((40,), True)
    """
    config = OSTConfig(seed=seed, **options)
    if config.proxy is not None:
        scores = score_dataset_rows(dataset, config, show_progress=show_progress)
    else:
        if not embedding_columns:
            raise CoresetInputError("Pass embedding_columns=[image, text], or proxy=<model> with collate_fn=.")
        blocks = {column: read_embedding_column(dataset, column) for column in embedding_columns}
        scores = score_embedding_pairs(FeatureSet(dataset.num_rows, blocks), config, show_progress=show_progress)
    return OSTUtilities(scores.utilities, np.flatnonzero(scores.utilities < 0).tolist(), scores.diagnostics)


class KeepNonNegative:
    """A picklable ``Dataset.filter`` predicate (``with_indices=True, batched=True``) keeping rows whose
    utility is >= 0; datasets fingerprints it by the utilities it holds, so the filter's cache works."""

    def __init__(self, utilities: np.ndarray):
        self.utilities = np.asarray(utilities, dtype=np.float64)

    def __call__(self, batch: dict, indices: list[int]) -> list[bool]:
        return (self.utilities[np.asarray(indices)] >= 0).tolist()


def drop_harmful(dataset: Any, utilities: np.ndarray, **filter_kwargs: Any):
    """``dataset`` without its harmful rows (utility < 0), through ``Dataset.filter``."""
    if len(utilities) != dataset.num_rows:
        raise CoresetInputError(
            f"{len(utilities)} utilities for a dataset of {dataset.num_rows} rows: score this very dataset with "
            "ost_utilities(dataset, ...) first."
        )
    return dataset.filter(KeepNonNegative(utilities), with_indices=True, batched=True, **filter_kwargs)
