"""The record a distillation leaves in its output dataset: learned student lr, objective curve, provenance.

It is stored as JSON in ``Dataset.info.description`` under its own key (next to the source's description),
the same way ``select_coreset`` stores a :class:`~hf_coreset.SelectionResult`, so it survives
``save_to_disk`` / ``load_from_disk`` and the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..result import _jsonable, attach_record, read_record

DESCRIPTION_KEY = "hf_coreset_distillation"


@dataclass
class DistillationResult:
    """How a distilled dataset was made.

    Attributes:
        student_lr: the learned learning rate of the student's AdamW steps in the trajectory matching (it starts
            at the experts' and absorbs the scale difference between synthetic and real gradients;
            ``train_on_distilled`` trains with its own ``lr``).
        objective: the matching objective at every distillation iteration (normalised parameter distance).
        diagnostics: method-specific figures (e.g. how many pairs the noise estimate deemed clean).
        provenance: method, space, full config, seed, source fingerprint, rows in / out, columns, timings
            (wall and CPU seconds) and library versions.
    """

    student_lr: float
    objective: list[float] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({"student_lr": self.student_lr, "objective": self.objective,
                          "diagnostics": self.diagnostics, "provenance": self.provenance})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillationResult:
        return cls(student_lr=float(data["student_lr"]), objective=[float(v) for v in data["objective"]],
                   diagnostics=data.get("diagnostics", {}), provenance=data.get("provenance", {}))


def attach_distillation(description: str | None, result: DistillationResult) -> str:
    """A ``DatasetInfo.description`` carrying ``result`` and keeping the source's description."""
    return attach_record(description, DESCRIPTION_KEY, result.to_dict())


def get_distillation_result(dataset: Any) -> DistillationResult:
    """Read back the :class:`DistillationResult` of a dataset returned by ``distill`` (or saved from one).

    Raises:
        ValueError: the dataset was not produced by ``distill``.
    """
    return DistillationResult.from_dict(read_record(dataset, DESCRIPTION_KEY, "hf_coreset.distill.distill"))
