"""CAST's selector: fused collapse-aware graph, then a greedy trade-off of coverage and matching.

A reconstruction of the published abstract (arXiv 2605.11705), following ``METHODS.md`` §3.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...errors import CoresetInputError
from ...graph.coverage import SoftCoverage, relation_matrix
from ...graph.fusion import ModalityGraph, fuse_graphs, modality_graph, trust_weights
from ...graph.wavelets import (
    MultiScaleMatcher,
    diffusion_operator,
    discrepancy_per_scale,
    equal_contribution_weights,
    scale_diagonals,
    scale_names,
)
from ...selector import FeatureSet, Selector
from .config import CASTConfig
from .grouping import group_nodes

# Exact K-column updates after every pick while N * budget stays below this; batched refreshes above.
EXACT_UPDATE_MAX_WORK = 4_000_000
BATCHED_REFRESHES = 32


@dataclass
class CASTGraph:
    """The fused graph and what went into it.

    Attributes:
        t: the diffusion operator ``T`` of the fused graph (sparse, symmetric).
        modalities: per modality name, its :class:`ModalityGraph`.
        trust: ``(N, M)`` trust weights of the modalities (columns in the order of ``modalities``).
        seconds: time of each stage.
    """

    t: sp.csr_matrix
    modalities: dict[str, ModalityGraph]
    trust: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)


def build_cast_graph(blocks: dict[str, np.ndarray], config: CASTConfig) -> CASTGraph:
    """Per-modality graphs, collapse-aware trust, fusion and ``T``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> g = build_cast_graph({"img": rng.normal(size=(60, 8)), "txt": rng.normal(size=(60, 4))}, CASTConfig())
        >>> g.t.shape, g.trust.shape
        ((60, 60), (60, 2))
    """
    started = time.perf_counter()
    graphs = {name: modality_graph(x, config.k, config.index, config.seed, config.hubness_reduction,
                                   config.search_dims)
              for name, x in blocks.items()}
    knn_done = time.perf_counter()
    collapse = np.stack([g.collapse for g in graphs.values()], axis=1)
    trust = (trust_weights(collapse, config.beta) if config.collapse_refinement
             else np.full(collapse.shape, 1.0 / collapse.shape[1]))
    fused = fuse_graphs([g.weights for g in graphs.values()], trust, config.k, config.consensus_boost,
                        config.self_loop)
    t = diffusion_operator(fused)
    seconds = {"knn_graphs": knn_done - started, "fusion": time.perf_counter() - knn_done}
    return CASTGraph(t, graphs, trust, seconds)


def active_scales(progress: float, levels: int, schedule: str) -> np.ndarray:
    """Which of ``psi_0 .. psi_J, phi_J`` are on after a fraction ``progress`` of the budget.

    ``"coarse_to_fine"`` starts with the two coarsest (``phi_J``, ``psi_J``) and switches the finer ones on
    one after another, linearly, all of them by half the budget: with few picks only the coarse layout of
    the data can be matched; fine detail becomes matchable as the subset grows.

    Example:
        >>> active_scales(0.0, 5, "coarse_to_fine").astype(int).tolist()
        [0, 0, 0, 0, 0, 1, 1]
    """
    n_scales = levels + 2
    if schedule == "all":
        return np.ones(n_scales, dtype=bool)
    n_on = min(n_scales, 2 + int(min(1.0, 2.0 * progress) * (n_scales - 2)))
    on = np.zeros(n_scales, dtype=bool)
    on[n_scales - n_on :] = True
    return on


def min_max(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (all zeros when every value is equal)."""
    spread = values.max() - values.min()
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)


class CandidatePool:
    """Rows not yet picked; draws the candidates of a greedy step (all of them, or a random sample)."""

    def __init__(self, n: int, sample_size: int, rng: np.random.Generator):
        self.free, self.position = np.arange(n), np.arange(n)
        self.size, self.sample_size, self.rng = n, sample_size, rng

    def draw(self) -> np.ndarray:
        if self.sample_size >= self.size:
            return self.free[: self.size].copy()
        # Drawing with replacement and dropping repeats is O(sample) instead of O(N) per step.
        return self.free[np.unique(self.rng.integers(self.size, size=self.sample_size))]

    def remove(self, i: int) -> None:
        """Swap-remove row ``i``: O(1)."""
        p, last = self.position[i], self.free[self.size - 1]
        self.free[p], self.position[last] = last, p
        self.size -= 1


def _sample_size(n: int, budget: int, config: CASTConfig) -> int:
    if n <= config.exact_greedy_max_rows:
        return n
    return math.ceil(n / budget * math.log(1.0 / config.stochastic_eps))


def _refresh_every(n: int, budget: int, config: CASTConfig) -> int:
    if config.refresh_every is not None:
        return config.refresh_every
    return 1 if n * budget <= EXACT_UPDATE_MAX_WORK else max(1, math.ceil(budget / BATCHED_REFRESHES))


def cast_greedy(t: sp.csr_matrix, budget: int, config: CASTConfig, rng: np.random.Generator,
                relations: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Greedy picks maximising ``min_max(coverage gain) - min_max(D(S + i))`` over each step's candidates.

    Returns ``(indices, scores, info)``; ``relations`` is :func:`relation_matrix` of ``t`` (needed when
    ``config.coverage``).
    """
    n, levels = t.shape[0], config.levels
    matcher, base_weights, on = None, None, None
    if config.matching:
        diagonals = scale_diagonals(t, levels, config.hutchinson_probes, rng)
        base_weights = equal_contribution_weights(t, levels, budget, rng=rng)
        on = active_scales(0.0, levels, config.scale_schedule)
        matcher = MultiScaleMatcher(t, levels, diagonals, base_weights * on)
    coverage = SoftCoverage(relations) if config.coverage else None
    pool = CandidatePool(n, _sample_size(n, budget, config), rng)
    refresh_every = _refresh_every(n, budget, config)
    indices, scores = np.empty(budget, dtype=np.int64), np.empty(budget)
    switched_on, since_refresh = [], 0
    for step in range(budget):
        if matcher is not None:
            now_on = active_scales(step / budget, levels, config.scale_schedule)
            if not np.array_equal(now_on, on):
                on, since_refresh = now_on, 0
                matcher.set_weights(base_weights * on)
                switched_on.append({"pick": step, "scales_on": int(on.sum())})
            elif refresh_every > 1 and since_refresh >= refresh_every:
                matcher.refresh()
                since_refresh = 0
        candidates = pool.draw()
        score = np.zeros(len(candidates))
        if coverage is not None:
            score += min_max(coverage.gains(candidates))
        if matcher is not None:
            score -= min_max(matcher.after_adding(candidates))
        best = int(np.argmax(score))
        pick = int(candidates[best])
        indices[step], scores[step] = pick, score[best]
        pool.remove(pick)
        if coverage is not None:
            coverage.add(pick)
        if matcher is not None:
            matcher.add(pick, exact=refresh_every == 1)
            since_refresh += 1
    info = {
        "candidates_per_step": int(min(pool.sample_size, n)),
        "refresh_every": refresh_every,
        "scale_weights": None if base_weights is None else base_weights.tolist(),
        "scales_on_at_end": None if on is None else [name for name, o in zip(scale_names(levels), on) if o],
        "scale_switches": switched_on,
        "coverage_reached": None if coverage is None else coverage.value() / n,
    }
    return indices, scores, info


class CASTSelector(Selector):
    """CAST: collapse-aware fusion of per-modality kNN graphs, then a greedy that trades soft relational
    coverage against multi-scale diffusion-wavelet distribution matching.

    A reconstruction of the published abstract (arXiv 2605.11705), not the official implementation.

    Example:
        >>> import numpy as np
        >>> from hf_coreset.selector import FeatureSet
        >>> rng = np.random.default_rng(0)
        >>> features = FeatureSet(80, {"img": rng.normal(size=(80, 8)), "txt": rng.normal(size=(80, 4))})
        >>> selector = CASTSelector(CASTConfig(seed=0)).fit(features, 8)
        >>> len(set(selector.indices_.tolist())), selector.diagnostics_["k"]
        (8, 10)
    """

    score_meaning = ("CAST greedy score when picked: min-max-normalised soft-coverage gain minus "
                     "min-max-normalised multi-scale discrepancy after adding the row, among that step's candidates")

    def _select(self, features: FeatureSet, budget: int):
        blocks, emitted_rows = self._nodes(features)
        n = len(next(iter(blocks.values())))
        if budget > n:
            raise CoresetInputError(f"budget={budget} but there are only {n} groups (one node per group).")
        if n < 3:  # no graph to speak of: keep the rows in order
            return emitted_rows[:budget], np.zeros(budget), {"k": 0, "note": "fewer than 3 nodes, no graph"}
        config = self.config
        graph = build_cast_graph(blocks, config)
        started = time.perf_counter()
        relations = relation_matrix(graph.t, min(config.k, n - 1)) if config.coverage else None
        relations_done = time.perf_counter()
        indices, scores, info = cast_greedy(graph.t, budget, config, self.make_rng(), relations)
        seconds = {**graph.seconds, "coverage_relations": relations_done - started,
                   "greedy": time.perf_counter() - relations_done}
        diagnostics = self._diagnostics(graph, indices, info, seconds)
        return emitted_rows[indices], scores, diagnostics

    def _nodes(self, features: FeatureSet) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Feature blocks per graph node and the row each node emits (itself, or its medoid caption)."""
        if not features.blocks:
            raise CoresetInputError("CAST needs features: pass embedding_columns or image/text encoders.")
        if self.config.group_column is None:
            return features.blocks, np.arange(features.n_rows)
        if features.groups is None:  # only when the selector is fitted by hand, outside select_coreset
            raise CoresetInputError(
                f"group_column={self.config.group_column!r} needs FeatureSet.groups: the group of every row."
            )
        return group_nodes(features.groups, features.blocks)

    def _diagnostics(self, graph: CASTGraph, indices: np.ndarray, info: dict[str, Any],
                     seconds: dict[str, float]) -> dict[str, Any]:
        config, n = self.config, graph.t.shape[0]
        random_subset = np.random.default_rng(config.seed + 1).choice(n, size=len(indices), replace=False)
        names = scale_names(config.levels)
        selected_d = discrepancy_per_scale(graph.t, indices, config.levels)
        random_d = discrepancy_per_scale(graph.t, random_subset, config.levels)
        return {
            "k": config.k,
            "levels": config.levels,
            "index_used": {name: g.index_used for name, g in graph.modalities.items()},
            "graph_edges": int(graph.t.nnz),
            "scales": names,
            **info,
            "discrepancy_per_scale": {
                "random_subset_same_size": dict(zip(names, random_d.tolist())),
                "selected": dict(zip(names, selected_d.tolist())),
            },
            "collapse_histogram": {
                "bin_edges": np.linspace(0.0, 1.0, 11).round(2).tolist(),
                **{name: np.histogram(g.collapse, bins=10, range=(0.0, 1.0))[0].tolist()
                   for name, g in graph.modalities.items()},
            },
            "mean_trust": dict(zip(graph.modalities, graph.trust.mean(axis=0).round(4).tolist())),
            "seconds": {stage: round(s, 3) for stage, s in seconds.items()},
        }
