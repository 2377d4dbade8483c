"""``method="scalselect"``: leverage in the dominant subspace of VLM-attention representations.

Stage A (optional, with ``model=`` and ``processor=``) turns each conversation + image into one vector with
:mod:`hf_coreset.features.vlm_attention`; stage B (:mod:`.leverage`) scores every vector by its leverage and
keeps the top M. Without a model, stage B runs on precomputed ``embedding_columns`` (one column, or several
concatenated as they are).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import CoresetInputError
from ...features.aggregate import reduce_dimensions
from ...selector import ComputedFeatures, FeatureSet, Selector
from .config import ScalSelectConfig
from .leverage import accelerate_reduce, leverage_scores, top_m

REPRESENTATION_BLOCK = "vlm_representation"


class ScalSelectSelector(Selector):
    """Keeps the rows with the highest leverage in the subspace holding ``rho`` of the variance.

    Diagnostics: ``k`` (subspace dimension), ``energy`` (variance fraction it holds), ``leverage_mass``
    (sum of the selected scores / k: the share of the subspace the coreset spans, 1.0 at most) and, when
    stage A ran, the kept visual-token counts.

    Example:
        >>> import datasets, numpy as np, hf_coreset
        >>> rows = np.random.default_rng(0).normal(size=(50, 6)).tolist()
        >>> ds = datasets.Dataset.from_dict({"r": rows})
        >>> hf_coreset.select_coreset(ds, "scalselect", 5, embedding_columns=["r"]).num_rows
        5
    """

    score_meaning = "leverage of the row in the dominant principal subspace (in [0, 1]; all rows sum to k)"
    config: ScalSelectConfig

    def _select(self, features: FeatureSet, budget: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        x = reduce_dimensions(_representations(features), self.config.reduce, self.config.seed)
        result = leverage_scores(x, rho=self.config.rho, chunk_size=self.config.chunk_size)
        indices, scores = top_m(result.scores, budget)
        diagnostics: dict[str, Any] = {
            "k": result.k,
            "rho": self.config.rho,
            "energy": result.energy,
            "leverage_mass": float(scores.sum() / result.k),
            "dim": int(x.shape[1]),
        }
        diagnostics.update(features.diagnostics)  # stage A's kept-token summary, when it ran
        return indices, scores, diagnostics

    @classmethod
    def features_from_dataset(
        cls,
        config: ScalSelectConfig,
        dataset: Any,
        *,
        image_column: str | None = None,
        batch_size: int = 8,
        cache_dir: str | None = None,
        show_progress: bool = True,
        on_error: str = "report",
        **_: Any,
    ) -> ComputedFeatures | None:
        """Stage A over ``dataset`` when the config holds a model (representations, failed rows, kept-token
        summary), else None.

        ``select_coreset`` calls this hook (when the selector class has it) instead of reading
        ``embedding_columns``; the failed rows (no image, unreadable image, ...) are dropped and reported.
        """
        if not config.uses_model:
            return None
        from ...features.vlm_attention import extract_representations

        extraction = extract_representations(
            dataset, config.model, config.processor,
            conversation_column=config.conversation_column, image_column=image_column, tau=config.tau,
            batch_size=batch_size, device=config.device, cache_dir=cache_dir, show_progress=show_progress,
            on_error=on_error,
        )
        return ComputedFeatures(blocks={REPRESENTATION_BLOCK: extraction.representations},
                                dropped_rows=extraction.failed_rows, diagnostics=extraction.kept_token_summary())


def _representations(features: FeatureSet) -> np.ndarray:
    """The one representation block; several embedding columns are concatenated as they are (the method
    centres but never rescales, so the columns' own scales weigh them)."""
    if not features.blocks:
        raise CoresetInputError(
            "scalselect needs representations: pass embedding_columns=[...] or model= and processor=."
        )
    blocks = list(features.blocks.values())
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


@dataclass
class DistributedSelection:
    """What :func:`select_with_accelerate` returns on every process.

    ``indices`` are dataset rows in pick order (score descending), ``scores`` their leverage,
    ``failed_rows`` the rows without a representation (by reason), ``diagnostics`` as for the selector.
    """

    indices: np.ndarray
    scores: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)
    failed_rows: dict[str, list[int]] = field(default_factory=dict)


def select_with_accelerate(
    dataset: Any,
    budget: int,
    model: Any,
    processor: Any,
    accelerator: Any,
    *,
    rho: float = 0.9,
    tau: float = 0.9,
    conversation_column: str | None = None,
    image_column: str | None = None,
    batch_size: int = 8,
    chunk_size: int | None = None,
    cache_dir: str | None = None,
    show_progress: bool = True,
) -> DistributedSelection:
    """ScalSelect under ``accelerate launch``: every process runs stage A on its contiguous shard of rows,
    the covariance sums of stage B are reduced across processes, and the per-row scores are gathered in row
    order so that every process picks the same top ``budget`` rows as a single process would.

    Run it with ``accelerate launch --num_processes 2 script.py`` (add ``--cpu`` without GPUs); with one
    process it is plain ScalSelect. See ``tests/accelerate_check.py``.

    Example:
        >>> from accelerate import Accelerator                                       # doctest: +SKIP
        >>> out = select_with_accelerate(ds, 100, model, processor, Accelerator())    # doctest: +SKIP
        >>> out.indices[:3], out.diagnostics["k"]                                     # doctest: +SKIP
    """
    from accelerate.utils import gather_object

    from ...features.vlm_attention import extract_representations

    config = ScalSelectConfig(rho=rho, tau=tau, model=model, processor=processor,
                              conversation_column=conversation_column,
                              **({} if chunk_size is None else {"chunk_size": chunk_size}))
    local = extract_representations(
        dataset, model, processor, conversation_column=conversation_column, image_column=image_column, tau=tau,
        batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress, accelerator=accelerator,
        gather=False,
    )
    good = np.isfinite(local.representations).all(axis=1)
    result = leverage_scores(local.representations[good], rho=config.rho, chunk_size=config.chunk_size,
                             reduce=accelerate_reduce(accelerator))
    shard = {"rows": local.row_offset + np.flatnonzero(good), "scores": result.scores,
             "failed": local.failed_rows,
             "kept": local.kept_tokens[good], "visual": local.visual_tokens[good]}
    parts = gather_object([shard])  # rank order = row order: the shards are contiguous
    rows = np.concatenate([part["rows"] for part in parts])
    scores = np.concatenate([part["scores"] for part in parts])
    if budget > len(rows):
        raise CoresetInputError(f"budget={budget} rows but only {len(rows)} rows have a representation.")
    picks, picked = top_m(scores, budget)
    failed: dict[str, list[int]] = {}
    for part in parts:
        for reason, failed_rows in part["failed"].items():
            failed.setdefault(reason, []).extend(failed_rows)
    kept = np.concatenate([part["kept"] for part in parts])
    visual = np.concatenate([part["visual"] for part in parts])
    diagnostics = {"k": result.k, "rho": config.rho, "energy": result.energy,
                   "leverage_mass": float(picked.sum() / result.k), "dim": int(local.representations.shape[1]),
                   "processes": accelerator.num_processes, "kept_tokens_mean": float(kept.mean()),
                   "kept_fraction_mean": float((kept / visual).mean())}
    return DistributedSelection(indices=rows[picks], scores=picked, diagnostics=diagnostics, failed_rows=failed)
