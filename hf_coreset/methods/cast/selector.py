"""CAST's selector: reliable, collapse-aware multimodal similarity at several diffusion scales, then facility
location.

A reconstruction of the published abstract (arXiv 2605.11705), following ``METHODS.md`` §3 where it helps
and departing from it where the benchmark showed a better way (``benchmarks/results/retrieval_*`` and the
README's CAST section say which and why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...errors import CoresetInputError
from ...graph.facility_location import facility_location_greedy
from ...graph.fusion import (
    ModalityGraph,
    fuse_graphs,
    fused_similarity,
    modality_graph,
    prepare_features,
    trust_weights,
    unit_mean,
)
from ...graph.knn import knn
from ...graph.reliability import PairReliability, pair_reliability
from ...graph.wavelets import (
    diffusion_correlation,
    diffusion_operator,
    discrepancy_per_scale,
    dyadic_powers,
    scale_names,
)
from ...selector import FeatureSet, PoolReference, Selector
from .config import CASTConfig
from .grouping import group_nodes

# A pair that looks mismatched still weighs this much: where every pair looks mismatched (unrelated columns),
# the weights are then uniform again instead of all zero, and the selection stays a representative one.
RELIABILITY_FLOOR = 0.01
# Above this estimated share of mismatched pairs the diagnostics warn that the columns may not belong together.
IMPLAUSIBLE_MISMATCHED_SHARE = 0.9


@dataclass
class CASTGraph:
    """The fused graph and what went into it.

    Attributes:
        t: the diffusion operator ``T`` of the fused graph (sparse, symmetric).
        modalities: per modality name, its :class:`ModalityGraph` (candidate lists ``similarity_neighbors`` wide).
        trust: ``(N, M)`` trust weights of the modalities (columns in the order of ``modalities``).
        reliability: the pairs' :class:`PairReliability`, or None (``reliability="none"``, or one modality).
        seconds: time of each stage.
    """

    t: sp.csr_matrix
    modalities: dict[str, ModalityGraph]
    trust: np.ndarray
    reliability: PairReliability | None
    seconds: dict[str, float] = field(default_factory=dict)


def equal_trust(shape: tuple[int, int]) -> np.ndarray:
    """``(N, M)`` trust weights that give every one of the M modalities the same weight in every row."""
    return np.full(shape, 1.0 / shape[1])


def build_cast_graph(blocks: dict[str, np.ndarray], config: CASTConfig,
                     reference: PoolReference | None = None) -> CASTGraph:
    """Per-modality graphs, collapse-aware trust, pair reliability, fusion and ``T``.

    ``reference``: the rest of the pool when ``blocks`` are only a part of it
    (:attr:`~hf_coreset.FeatureSet.reference`); the pairs' reliability is then judged against the pool.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> g = build_cast_graph({"img": rng.normal(size=(60, 8)), "txt": rng.normal(size=(60, 4))}, CASTConfig())
        >>> g.t.shape, g.trust.shape, g.reliability.reliability.shape
        ((60, 60), (60, 2), (60,))
    """
    started = time.perf_counter()
    prepared = {name: prepare_features(x) for name, x in blocks.items()}
    graphs = {name: modality_graph(x, config.k, config.index, config.seed, config.hubness_reduction,
                                   config.search_dims, n_candidates=config.similarity_neighbors)
              for name, x in prepared.items()}
    knn_done = time.perf_counter()
    collapse = np.stack([g.collapse for g in graphs.values()], axis=1)
    trust = trust_weights(collapse, config.beta) if config.collapse_refinement else equal_trust(collapse.shape)
    reliability = None
    if config.reliability == "topology" and len(graphs) >= 2:
        names = list(graphs)[:2]
        image_graph, text_graph = graphs[names[0]], graphs[names[1]]
        k = min(config.k, image_graph.candidates.shape[1])
        judged = ({"image": prepared[names[0]], "text": prepared[names[1]],
                   "image_neighbours": image_graph.candidates[:, :k], "text_neighbours": text_graph.candidates[:, :k]}
                  if reference is None else against_reference(blocks, reference, names, k, config))
        reliability = pair_reliability(**judged, null_draws=config.reliability_draws,
                                       rng=np.random.default_rng(config.seed))
    reliability_done = time.perf_counter()
    fused = fuse_graphs([g.weights for g in graphs.values()], trust, config.k, config.consensus_boost,
                        config.self_loop)
    seconds = {"knn_graphs": knn_done - started, "reliability": reliability_done - knn_done,
               "fusion": time.perf_counter() - reliability_done}
    return CASTGraph(diffusion_operator(fused), graphs, trust, reliability, seconds)


def against_reference(blocks: dict[str, np.ndarray], reference: PoolReference, names: list[str], k: int,
                      config: CASTConfig) -> dict[str, Any]:
    """:func:`~hf_coreset.graph.reliability.pair_reliability`'s inputs when ``blocks`` are only a part of the
    pool and ``reference`` rows stand for the rest of it.

    A k-means partition judged on its own misleads both ways: re-paired with each other, its alike captions
    agree with any of its images (clean pairs look mismatched), and a caption from elsewhere finds as its
    nearest captions in the partition only other misplaced captions, whose images are the partition's (a
    mismatched pair looks matched). So the part's pairs are judged among the part and the reference together
    (centred on the pool's centre, neighbours among both), against re-pairings with a caption of the pool: one
    of the part's with the part's share of the pool, else one of the reference's.
    """
    n, n_reference = len(blocks[names[0]]), len(reference.blocks[names[0]])
    share = min(1.0, n / reference.pool_rows)
    prepared = []
    for name in names:
        centre = share * unit_mean(blocks[name]) + (1.0 - share) * unit_mean(reference.blocks[name])
        prepared.append(prepare_features(np.concatenate([blocks[name], reference.blocks[name]]), centre))
    image_neighbours, text_neighbours = [knn(x, k, index=config.index, seed=config.seed,
                                             search_dims=config.search_dims)[0] for x in prepared]
    weights = np.concatenate([np.full(n, share / n), np.full(n_reference, (1.0 - share) / n_reference)])
    return {"image": prepared[0], "text": prepared[1], "image_neighbours": image_neighbours[:n],
            "text_neighbours": text_neighbours, "null_captions": np.arange(n + n_reference),
            "null_weights": weights / weights.sum()}


def multiscale_similarity(graph: CASTGraph, blocks: dict[str, np.ndarray], config: CASTConfig
                          ) -> tuple[sp.csc_matrix, np.ndarray]:
    """The stacked similarity facility location maximises, and the scale of each of its rows.

    Rows ``0 .. N-1`` hold the fine scale, :func:`~hf_coreset.graph.fusion.fused_similarity` of the
    modalities' cosines on the union of their candidate lists; the next ``levels`` blocks of
    ``N`` rows hold :func:`~hf_coreset.graph.wavelets.diffusion_correlation` of ``T, T^2, T^4, ...``.
    Column ``j`` says how well pair ``j`` represents every row at every scale.
    """
    graphs = list(graph.modalities.values())
    trust = graph.trust if config.fine_scale_trust == "collapse" else equal_trust(graph.trust.shape)
    scales = [fused_similarity(list(blocks.values()), [g.candidates for g in graphs], trust, config.fusion,
                               [g.candidate_similarities for g in graphs])]
    scales += [diffusion_correlation(p) for p in dyadic_powers(graph.t, config.levels, config.diffusion_keep)]
    n = graph.t.shape[0]
    return sp.vstack(scales, format="csc"), np.repeat(np.arange(len(scales)), n)


def scale_weights_at(n: int, config: CASTConfig) -> Callable[[int], np.ndarray]:
    """Weights of ``[fine, T, T^2, ...]`` at pick ``step``: the fine scale 1, each diffusion scale
    ``scale_weight``, fading linearly to 0 at pick ``N / k`` under ``scale_schedule="resolution"``.

    Example:
        >>> weights = scale_weights_at(100, CASTConfig(k=10, levels=2, scale_weight=0.5))
        >>> weights(0).tolist(), weights(5).tolist(), weights(20).tolist()
        ([1.0, 0.5, 0.5], [1.0, 0.25, 0.25], [1.0, 0.0, 0.0])
    """
    resolution_picks = n / config.k

    def weights(step: int) -> np.ndarray:
        fade = 1.0 if config.scale_schedule == "constant" else max(0.0, 1.0 - step / resolution_picks)
        return np.array([1.0] + [config.scale_weight * fade] * config.levels)

    return weights


def node_weights(graph: CASTGraph) -> np.ndarray:
    """Each node's weight in the objective: its pair reliability, at least ``RELIABILITY_FLOOR`` (1 where the
    graph has no reliability)."""
    if graph.reliability is None:
        return np.ones(graph.t.shape[0])
    return np.maximum(graph.reliability.reliability, RELIABILITY_FLOOR)


def cast_objective(blocks: dict[str, np.ndarray], config: CASTConfig) -> Callable[[np.ndarray], float]:
    """CAST's objective on ``blocks`` as a function of the picks (row indices), the graph built once: the sum
    over scales and rows of reliability x scale weight x best similarity to a pick, with the scale weights of
    the first pick. (The greedy also fades the coarse scales as picks accumulate and weighs each gain by the
    pick's reliability; this is the value it starts raising.) For comparing picks made elsewhere, e.g. by
    partitions (:mod:`hf_coreset.sharded`), on the one-process graph.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> blocks = {"img": rng.normal(size=(60, 8)), "txt": rng.normal(size=(60, 4))}
        >>> value = cast_objective(blocks, CASTConfig(seed=0))
        >>> picks = CASTSelector(CASTConfig(seed=0)).fit(FeatureSet(60, blocks), 6).indices_
        >>> bool(value(picks) > value(np.arange(6)))
        True
    """
    graph = build_cast_graph(blocks, config)
    similarity, row_scales = multiscale_similarity(graph, blocks, config)
    n = graph.t.shape[0]
    row_weights = np.tile(node_weights(graph), config.levels + 1) * scale_weights_at(n, config)(0)[row_scales]

    def value(picks: np.ndarray) -> float:
        return float(row_weights @ similarity[:, np.asarray(picks)].max(axis=1).toarray().ravel())

    return value


class CASTSelector(Selector):
    """CAST: facility location on a reliable, collapse-aware multimodal similarity at several diffusion scales.

    1. Per modality, a kNN graph on centred cosines (CSLS hubness reduction, self-tuning weights) and a
       local-collapse score; modalities are trusted by ``softmax(-beta * collapse)`` and fused into one graph.
    2. Every pair gets a reliability: the probability that its image and caption belong together, from the
       agreement of their neighbourhoods against simulated mismatched pairs.
    3. The objective is facility location, ``sum_scales w_s sum_i r_i max_{j in S} s^(scale)_ij``, each pick
       weighted by its own reliability: the fine scale is the product of the modalities' cosines on each
       row's nearest neighbours, the coarser ones are diffusion correlations of the fused graph; the
       coarse scales count most while the picks are too few to resolve the graph (``scale_schedule``).

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

    scores_are_marginal_gains = True
    picks_among_candidates = True
    score_meaning = ("CAST facility-location gain when picked: increase of the reliability-weighted, multi-scale "
                     "sum over rows of their best similarity to the picked rows, times the pick's reliability")

    def _select(self, features: FeatureSet, budget: int):
        blocks, emitted_rows = self._nodes(features)
        n = len(next(iter(blocks.values())))
        if budget > n:
            raise CoresetInputError(f"budget={budget} but there are only {n} groups (one node per group).")
        if n < 3:  # no graph to speak of: keep the rows in order
            return emitted_rows[:budget], np.zeros(budget), {"k": 0, "note": "fewer than 3 nodes, no graph"}
        config = self.config
        graph = build_cast_graph(blocks, config, features.reference)
        started = time.perf_counter()
        similarity, row_scales = multiscale_similarity(graph, blocks, config)
        similarity_done = time.perf_counter()
        reliability = node_weights(graph)
        # Every node counts as a row to represent; only the candidates (all nodes by default) may be picked.
        indices, gains = facility_location_greedy(
            similarity, budget, row_weights=np.tile(reliability, config.levels + 1), candidate_weights=reliability,
            row_blocks=row_scales, block_weights=scale_weights_at(n, config), candidates=features.candidates)
        seconds = {**graph.seconds, "similarity": similarity_done - started,
                   "greedy": time.perf_counter() - similarity_done}
        diagnostics = self._diagnostics(graph, similarity, indices, seconds)
        return emitted_rows[indices], gains, diagnostics

    def _nodes(self, features: FeatureSet) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Feature blocks per graph node and the row each node emits (itself, or its medoid caption)."""
        if not features.blocks:
            raise CoresetInputError("CAST needs features: pass embedding_columns or image/text encoders.")
        if self.config.group_column is None:
            return features.blocks, np.arange(features.n_rows)
        if features.candidates is not None:
            raise CoresetInputError("group_column merges rows into nodes: candidates (rows) cannot be combined "
                                    "with it; leave one of them unset.")
        if features.groups is None:  # only when the selector is fitted by hand, outside select_coreset
            raise CoresetInputError(
                f"group_column={self.config.group_column!r} needs FeatureSet.groups: the group of every row."
            )
        return group_nodes(features.groups, features.blocks)

    def _diagnostics(self, graph: CASTGraph, similarity: sp.csc_matrix, indices: np.ndarray,
                     seconds: dict[str, float]) -> dict[str, Any]:
        config, n = self.config, graph.t.shape[0]
        best = similarity[:, indices].max(axis=1).toarray().ravel().reshape(config.levels + 1, n)
        random_subset = np.random.default_rng(config.seed + 1).choice(n, size=len(indices), replace=False)
        names = scale_names(config.levels)
        reliability = graph.reliability
        return {
            "k": config.k,
            "levels": config.levels,
            "index_used": {name: g.index_used for name, g in graph.modalities.items()},
            "graph_edges": int(graph.t.nnz),
            "similarity_entries": int(similarity.nnz),
            "mean_best_similarity": dict(zip(["fine"] + [f"diffusion_T^{2**j}" for j in range(config.levels)],
                                             best.mean(axis=1).round(4).tolist())),
            "diffusion_scales_off_at_pick": None if config.scale_schedule == "constant" or not config.levels
            else int(np.ceil(n / config.k)),
            "reliability": None if reliability is None else {
                "estimated_mismatched_share": round(reliability.mismatched_share, 4),
                "mean": round(float(reliability.reliability.mean()), 4),
                "pairs_below_one_half": int((reliability.reliability < 0.5).sum()),
                "selected_below_one_half": int((reliability.reliability[indices] < 0.5).sum()),
                **({"warning": "almost every pair looks like a random pairing of an image and a caption: are the "
                               "two embedding columns of the same rows? (weights are floored at 0.01)"}
                   if reliability.mismatched_share > IMPLAUSIBLE_MISMATCHED_SHARE else {}),
            },
            "wavelet_discrepancy_per_scale": {
                "random_subset_same_size": dict(zip(names, discrepancy_per_scale(graph.t, random_subset,
                                                                                 config.levels).tolist())),
                "selected": dict(zip(names, discrepancy_per_scale(graph.t, indices, config.levels).tolist())),
            },
            "collapse_histogram": {
                "bin_edges": np.linspace(0.0, 1.0, 11).round(2).tolist(),
                **{name: np.histogram(g.collapse, bins=10, range=(0.0, 1.0))[0].tolist()
                   for name, g in graph.modalities.items()},
            },
            "mean_trust": dict(zip(graph.modalities, graph.trust.mean(axis=0).round(4).tolist())),
            "seconds": {stage: round(s, 3) for stage, s in seconds.items()},
        }
