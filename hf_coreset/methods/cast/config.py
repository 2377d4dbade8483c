from dataclasses import dataclass

from ...config import SelectionConfig, check_choice
from ...errors import CoresetInputError
from ...graph.fusion import FUSIONS
from ...graph.knn import INDEXES

SCALE_SCHEDULES = ("resolution", "constant")
RELIABILITIES = ("topology", "none")
FINE_SCALE_TRUSTS = ("collapse", "equal")


def _positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CoresetInputError(f"{name} must be an int >= {minimum}, got {value!r}.")


def _non_negative_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise CoresetInputError(f"{name} must be a non-negative number, got {value!r}.")


@dataclass
class CASTConfig(SelectionConfig):
    """Options of ``method="cast"``; every component of the method is one argument away, for ablations.

    Attributes:
        k: neighbours per row in every modality's kNN graph and in the fused graph (the graph's resolution).
        similarity_neighbors: each row can be represented by its ``similarity_neighbors`` nearest rows in
            every modality (the union of those lists is the support of the fine-scale similarity).
        levels: diffusion scales of the fused graph added to the objective: ``T, T^2, ..., T^(2^(levels-1))``;
            0 = the fine, feature-level scale only.
        scale_weight: weight of each diffusion scale (the fine scale weighs 1) at the first pick.
        scale_schedule: ``"resolution"``: the diffusion scales fade out linearly and are gone once the picks
            could cover every ``k``-neighbourhood (pick ``N / k``): with few picks the graph's layout is what
            can be matched, with many the fine similarity decides; ``"constant"``: they keep ``scale_weight``.
        fusion: how the modalities' cosines combine in the fine similarity: ``"product"`` (both modalities
            must agree: ``(cos_image cos_text)^2`` at equal trust) or ``"sum"`` (the squared cosine of the
            concatenation).
        reliability: ``"topology"``: weight every pair by the probability that its image and caption
            belong together, from the agreement of their two neighbourhoods (``hf_coreset.graph.reliability``);
            an unreliable pair is neither picked nor counted as a row to represent. ``"none"``: every pair 1.
        reliability_draws: random re-pairings simulated for the reliability's null distribution.
        fine_scale_trust: the modality weights of the fine-scale similarity: ``"equal"`` (every modality counts
            the same) or ``"collapse"`` (the rows' collapse-aware trust, as in the fused graph). Collapse makes a
            modality's neighbour lists arbitrary (many near-identical vectors tie), so it is discounted where
            the graph is built; it does not make its similarities wrong: two rows with the same caption are
            alike in text, and a pick with another caption does not represent them.
        beta: sharpness of the modality trust ``softmax(-beta * collapse)``.
        collapse_refinement: weight modalities by local-collapse trust; off = equal weights everywhere.
        hubness_reduction: re-rank neighbour candidates by CSLS before weighting the graph's edges.
        consensus_boost: factor on fused-graph edges found in every modality's graph (1 = no boost).
        diffusion_keep: entries kept per row of each diffusion power (memory O(N diffusion_keep)).
        index: kNN search: ``"auto"`` (exact up to 20k rows, hnswlib above), ``"exact"``, ``"hnswlib"``,
            ``"faiss"`` or ``"pynndescent"`` (the approximate ones need their package installed).
        search_dims: approximate search runs on a PCA projection to this many dimensions (candidates are
            then re-scored exactly in the original space); ``None`` searches the original space.
        self_loop: weight of the self-loop added to every node of the fused graph.
        group_column: several captions per image: rows sharing a value of this column form one node
            (image feature, mean caption feature) and the row with the medoid caption is emitted; the budget
            then counts groups (images), not rows.
    """

    k: int = 10
    similarity_neighbors: int = 50
    levels: int = 3
    scale_weight: float = 0.5
    scale_schedule: str = "resolution"
    fusion: str = "product"
    reliability: str = "topology"
    reliability_draws: int = 3
    fine_scale_trust: str = "equal"
    beta: float = 5.0
    collapse_refinement: bool = True
    hubness_reduction: bool = True
    consensus_boost: float = 2.0
    diffusion_keep: int = 32
    index: str = "auto"
    search_dims: int | None = 128
    self_loop: float = 1e-3
    group_column: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("k", self.k, 2)
        _positive_int("similarity_neighbors", self.similarity_neighbors)
        _positive_int("levels", self.levels, 0)
        _positive_int("reliability_draws", self.reliability_draws)
        _positive_int("diffusion_keep", self.diffusion_keep, 2)
        if self.search_dims is not None:
            _positive_int("search_dims", self.search_dims)
        for name in ("scale_weight", "beta", "consensus_boost", "self_loop"):
            _non_negative_number(name, getattr(self, name))
        check_choice("scale_schedule", self.scale_schedule, SCALE_SCHEDULES)
        check_choice("fusion", self.fusion, FUSIONS)
        check_choice("reliability", self.reliability, RELIABILITIES)
        check_choice("fine_scale_trust", self.fine_scale_trust, FINE_SCALE_TRUSTS)
        check_choice("index", self.index, INDEXES)
        if self.self_loop <= 0:
            raise CoresetInputError(f"self_loop must be > 0 (it keeps every degree positive), got {self.self_loop!r}.")
