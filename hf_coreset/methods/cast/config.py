from dataclasses import dataclass

from ...config import SelectionConfig
from ...errors import CoresetInputError

SCALE_SCHEDULES = ("coarse_to_fine", "all")
INDEXES = ("auto", "exact", "hnswlib", "faiss", "pynndescent")


def _positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CoresetInputError(f"{name} must be an int >= {minimum}, got {value!r}.")


def _non_negative_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise CoresetInputError(f"{name} must be a non-negative number, got {value!r}.")


@dataclass
class CASTConfig(SelectionConfig):
    """Options of ``method="cast"``; every switch of the method is one argument, for ablations.

    Attributes:
        k: neighbours per row in every kNN graph and in the fused graph.
        levels: J, the number of diffusion-wavelet band-pass scales (``Psi_0 .. Psi_J`` plus ``Phi_J``).
        beta: sharpness of the modality trust ``softmax(-beta * collapse)``.
        hubness_reduction: re-rank neighbour candidates by CSLS before weighting.
        collapse_refinement: weight modalities by local-collapse trust; off = equal weights everywhere.
        consensus_boost: factor on edges found in every modality's graph (1 = no boost).
        matching: use the multi-scale discrepancy term.
        coverage: use the soft relational coverage term.
        scale_schedule: ``"coarse_to_fine"`` (coarse scales first, finer ones switched on as the subset
            grows) or ``"all"`` (every scale from the first pick).
        hutchinson_probes: random probes for the kernel diagonals ``K_ii``.
        index: kNN search: ``"auto"`` (exact up to 20k rows, hnswlib above), ``"exact"``, ``"hnswlib"``,
            ``"faiss"`` or ``"pynndescent"`` (the approximate ones need their package installed).
        search_dims: approximate search runs on a PCA projection to this many dimensions (candidates are
            then re-scored exactly in the original space); ``None`` searches the original space.
        stochastic_eps: stochastic greedy: each step scores ``(N / budget) log(1 / eps)`` random
            candidates (used when N exceeds ``exact_greedy_max_rows``).
        exact_greedy_max_rows: up to this many rows every remaining row is scored at every step.
        refresh_every: picks between exact recomputations of ``K 1_S`` (between them the local part of
            ``K`` updates it); ``None`` chooses: 1 for small problems, ``budget / 32`` for large ones.
        self_loop: weight of the self-loop added to every node of the fused graph.
        group_column: several captions per image: rows sharing a value of this column form one node
            (image feature, mean caption feature) and the row with the medoid caption is emitted; the budget
            then counts groups (images), not rows.
    """

    k: int = 10
    levels: int = 5
    beta: float = 5.0
    hubness_reduction: bool = True
    collapse_refinement: bool = True
    consensus_boost: float = 2.0
    matching: bool = True
    coverage: bool = True
    scale_schedule: str = "coarse_to_fine"
    hutchinson_probes: int = 32
    index: str = "auto"
    search_dims: int | None = 128
    stochastic_eps: float = 0.01
    exact_greedy_max_rows: int = 10_000
    refresh_every: int | None = None
    self_loop: float = 1e-3
    group_column: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("k", self.k, 2)
        _positive_int("levels", self.levels, 0)
        _positive_int("hutchinson_probes", self.hutchinson_probes)
        _positive_int("exact_greedy_max_rows", self.exact_greedy_max_rows, 0)
        if self.search_dims is not None:
            _positive_int("search_dims", self.search_dims)
        if self.refresh_every is not None:
            _positive_int("refresh_every", self.refresh_every)
        for name in ("beta", "consensus_boost", "self_loop"):
            _non_negative_number(name, getattr(self, name))
        if not 0 < self.stochastic_eps < 1:
            raise CoresetInputError(f"stochastic_eps must be in (0, 1), got {self.stochastic_eps!r}.")
        if self.scale_schedule not in SCALE_SCHEDULES:
            raise CoresetInputError(f"scale_schedule must be one of {list(SCALE_SCHEDULES)}, got "
                                    f"{self.scale_schedule!r}.")
        if self.index not in INDEXES:
            raise CoresetInputError(f"index must be one of {list(INDEXES)}, got {self.index!r}.")
        if not (self.matching or self.coverage):
            raise CoresetInputError("matching and coverage are both off: CAST would have nothing to optimise; "
                                    "turn one on (or use method='random').")
        if self.self_loop <= 0:
            raise CoresetInputError(f"self_loop must be > 0 (it keeps every degree positive), got {self.self_loop!r}.")
