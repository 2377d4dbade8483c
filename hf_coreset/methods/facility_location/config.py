from dataclasses import dataclass

from ...config import EmbeddingSelectionConfig, check_choice, check_positive
from ...graph.knn import INDEXES


@dataclass
class FacilityLocationConfig(EmbeddingSelectionConfig):
    """Options of ``method="facility_location"``.

    Attributes:
        n_neighbors: each row can be represented by its ``n_neighbors`` most similar rows (and itself);
            ``None`` keeps every pair (exact, the objective of apricot-select's dense facility location, but
            O(N^2) memory: refused above 10k rows).
        index: kNN search backend, as for CAST: ``"auto"`` (exact up to 20k rows, hnswlib above),
            ``"exact"``, ``"hnswlib"``, ``"faiss"`` or ``"pynndescent"``.
        search_dims: approximate search runs on a PCA projection to this many dimensions, then re-scores
            exactly; ``None`` searches the full space.
    """

    n_neighbors: int | None = 100
    index: str = "auto"
    search_dims: int | None = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_neighbors is not None:
            check_positive("n_neighbors", self.n_neighbors)
        if self.search_dims is not None:
            check_positive("search_dims", self.search_dims)
        check_choice("index", self.index, INDEXES)
