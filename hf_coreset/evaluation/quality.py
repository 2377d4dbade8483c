"""``evaluate_coreset``: does training on this coreset beat training on a random subset of the same size?

Trains a light proxy (``hf_coreset.evaluation.runs``) on the coreset, on one random subset of the same size per
seed drawn from the same pool, and on the whole pool, scores every run on a held-out test set and returns a
:class:`~hf_coreset.evaluation.report.CoresetReport` with the verdict.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
from datasets.utils.tqdm import tqdm

from ..config import check_choice, check_positive
from ..errors import CoresetInputError
from ..result import SelectionResult, get_selection_result
from ..validation import check_columns_exist, read_embedding_column
from .report import CORESET, FULL, RANDOM, CoresetReport
from .runs import PROXIES, ProxyData, get_proxy, train_and_score

logger = logging.getLogger(__name__)

BASELINES = (RANDOM, FULL)
DEFAULT_MISMATCH_COLUMN = "is_mismatched"  # the flag column of hf_coreset.noise.add_caption_noise


def evaluate_coreset(
    pool: datasets.Dataset,
    coreset: datasets.Dataset | SelectionResult | Sequence[int],
    *,
    test: datasets.Dataset,
    image_column: str | None = None,
    text_column: str | None = None,
    image_encoder: Any = None,
    text_encoder: Any = None,
    embedding_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    proxy: str = "dual_encoder",
    baselines: Sequence[str] = BASELINES,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 500,
    heads: str = "mlp",
    batch_size: int = 128,
    mismatch_column: str | None = None,
    id_column: str | None = None,
    duplicates: str = "raise",
    num_threads: int | None = 1,
    cache_dir: str | None = None,
    show_progress: bool = True,
) -> CoresetReport:
    """Train a proxy on the coreset, on random subsets of the same size and on the full pool; score on ``test``.

    For every seed, three runs of ``steps`` optimisation steps each (the same number whatever the subset size):
    the coreset, a random subset of the same size drawn from ``pool`` with ``numpy.random.default_rng(seed)``,
    and the whole pool. The report holds every run's scores and the verdict: "beats random", "no better than
    random" or "worse than random" when the margin over random exceeds 2 pooled standard deviations
    ``sqrt(std_coreset^2 + std_random^2)`` (sample std over seeds).

    ``test`` must be rows the selection never saw. Split first, select on the pool::

        split = dataset.train_test_split(test_size=0.2, seed=0)
        coreset = split["train"].select_coreset("dq", 0.1, ...)
        report = evaluate_coreset(split["train"], coreset, test=split["test"], ...)

    Args:
        pool: the dataset the coreset was selected from.
        coreset: the dataset returned by ``select_coreset`` (its rows are read from its ``SelectionResult``), the
            ``SelectionResult`` itself, or row indices into ``pool``.
        test: held-out rows, with the same feature columns (and ``label_column``). Refused if it is the pool, or
            if any of its rows equals a pool row (same features, or the same ``id_column`` value).
        image_column, text_column, image_encoder, text_encoder: encode the rows (cached by fingerprint), as in
            ``select_coreset``.
        embedding_columns: precomputed vectors instead, one column per modality (image first for the dual encoder).
        label_column: classes for ``proxy="linear_probe"``; for ``"dual_encoder"``, optional class-level relevance
            (test pairs with equal labels count as matches, e.g. captions built from class names).
        proxy: ``"dual_encoder"`` (image and text heads, symmetric InfoNCE, retrieval recall r_mean) or
            ``"linear_probe"`` (a linear classifier on the concatenated L2-normalised features, accuracy).
        baselines: any of ``"random"`` and ``"full"``.
        seeds: one run per arm and seed; at least 2 for a verdict.
        steps, heads, batch_size: the training recipe (``heads``: ``"mlp"`` or ``"linear"``, dual encoder only).
        mismatch_column: a boolean pool column flagging known-mismatched pairs (default: ``is_mismatched`` when
            present); the report then gives their share in the coreset and in the random subsets.
        id_column: a column of row ids present in both datasets; a shared id is an overlap.
        duplicates: ``"raise"`` (default) refuses test rows identical to pool rows; ``"drop"`` scores without
            them and says so in the report's notes.
        num_threads: torch threads while training (None: leave torch's setting).
        cache_dir: feature cache folder (default: under the datasets cache).
        show_progress: progress bars (encoding, and one tick per training run).

    Returns:
        A :class:`CoresetReport` (``to_markdown()``, ``to_json()``, ``plot()``, ``verdict``).

    Example:
        >>> import datasets, numpy as np, hf_coreset
        >>> rng = np.random.default_rng(0)
        >>> data = datasets.Dataset.from_dict({"img": rng.normal(size=(120, 8)).tolist(),
        ...                                    "txt": rng.normal(size=(120, 4)).tolist()})
        >>> split = data.train_test_split(test_size=40, seed=0)
        >>> core = hf_coreset.select_coreset(split["train"], "kcenter", 0.25, embedding_columns=["img", "txt"])
        >>> report = hf_coreset.evaluate_coreset(split["train"], core, test=split["test"], seeds=(0, 1),
        ...                                      embedding_columns=["img", "txt"], steps=5, show_progress=False)
        >>> report.coreset_rows, sorted(report.runs), report.verdict in ("beats random", "no better than random",
        ...                                                             "worse than random")
        (20, ['coreset', 'full', 'random'], True)
    """
    options = {name: value for name, value in locals().items() if name not in ("pool", "coreset")}  # the keywords
    return evaluate_coresets(pool, {None: coreset}, **options)[None]


def evaluate_coresets(
    pool: datasets.Dataset,
    coresets: Mapping[str | None, datasets.Dataset | SelectionResult | Sequence[int]],
    *,
    test: datasets.Dataset,
    image_column: str | None = None,
    text_column: str | None = None,
    image_encoder: Any = None,
    text_encoder: Any = None,
    embedding_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    proxy: str = "dual_encoder",
    baselines: Sequence[str] = BASELINES,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 500,
    heads: str = "mlp",
    batch_size: int = 128,
    mismatch_column: str | None = None,
    id_column: str | None = None,
    duplicates: str = "raise",
    num_threads: int | None = 1,
    cache_dir: str | None = None,
    show_progress: bool = True,
) -> dict[str | None, CoresetReport]:
    """:func:`evaluate_coreset` for several coresets of the same pool (e.g. one per method), sharing the baselines.

    The random subsets (per coreset size and seed) and the full pool are trained once and appear in every
    report, so comparing ``k`` methods costs ``k + 2`` runs per seed instead of ``3 k``. ``coresets`` maps a name
    (used as the report's ``method`` when the coreset carries none) to a coreset; the arguments are those of
    :func:`evaluate_coreset`.

    Example:
        >>> import datasets, numpy as np, hf_coreset
        >>> from hf_coreset.evaluation import evaluate_coresets
        >>> rng = np.random.default_rng(0)
        >>> data = datasets.Dataset.from_dict({"img": rng.normal(size=(120, 8)).tolist(),
        ...                                    "txt": rng.normal(size=(120, 4)).tolist()})
        >>> split = data.train_test_split(test_size=40, seed=0)
        >>> cores = {m: split["train"].select_coreset(m, 0.25, embedding_columns=["img", "txt"])
        ...          for m in ("kcenter", "herding")}
        >>> reports = evaluate_coresets(split["train"], cores, test=split["test"], seeds=(0, 1), steps=5,
        ...                             embedding_columns=["img", "txt"], show_progress=False)
        >>> reports["kcenter"].runs["random"] == reports["herding"].runs["random"]
        True
    """
    _check_options(proxy, baselines, seeds, steps, heads, batch_size, duplicates, label_column)
    for name, dataset in (("pool", pool), ("test", test)):
        if not isinstance(dataset, datasets.Dataset) or dataset.num_rows == 0:
            raise CoresetInputError(f"{name} must be a non-empty datasets.Dataset, got {_describe(dataset)}.")
    if not coresets:
        raise CoresetInputError("coresets is empty: pass {name: coreset} for at least one coreset.")
    chosen = {name: _coreset_rows(coreset, pool) for name, coreset in coresets.items()}
    _check_not_the_pool(pool, test, id_column)

    notes: list[str] = []
    sources = {"image_column": image_column, "text_column": text_column, "image_encoder": image_encoder,
               "text_encoder": text_encoder, "embedding_columns": embedding_columns, "cache_dir": cache_dir,
               "show_progress": show_progress}
    pool_blocks, pool_failed = _feature_blocks(pool, "pool", **sources)
    test_blocks, test_failed = _feature_blocks(test, "test", **sources)
    usable = np.setdiff1d(np.arange(pool.num_rows), pool_failed)
    if len(pool_failed):
        notes.append(f"{len(pool_failed)} pool row(s) could not be featurised and take part in no run.")
        _check_featurised(chosen, pool_failed)
    keep_test = np.setdiff1d(np.arange(test.num_rows), test_failed)
    if len(test_failed):
        notes.append(f"{len(test_failed)} test row(s) could not be featurised and are not scored.")
    keep_test = _without_duplicates(pool_blocks, usable, test_blocks, keep_test, duplicates, notes)

    pool_labels, test_labels = _labels(pool, test, label_column)
    pool_data = ProxyData(pool_blocks, pool_labels)
    test_data = ProxyData({name: block[keep_test] for name, block in test_blocks.items()},
                          None if test_labels is None else test_labels[keep_test])
    flags, mismatch_column = _mismatch_flags(pool, mismatch_column)

    # Every distinct training run once: each coreset per seed, random subsets per size and seed, the full pool.
    jobs: dict[tuple, np.ndarray] = {}
    for seed in seeds:
        for name, (rows, _) in chosen.items():
            jobs[(CORESET, name, seed)] = rows
        if RANDOM in baselines:
            for size in sorted({len(rows) for rows, _ in chosen.values()}):
                jobs[(RANDOM, size, seed)] = _random_rows(usable, size, seed)
        if FULL in baselines:
            jobs[(FULL, None, seed)] = usable
    records = {}
    with tqdm(total=len(jobs), desc="Training proxies", disable=not show_progress) as progress:
        for (arm, key, seed), rows in jobs.items():
            scores = train_and_score(proxy, pool_data, rows, test_data, steps=steps, seed=seed, heads=heads,
                                     batch_size=batch_size, num_threads=num_threads)
            records[(arm, key, seed)] = {"seed": int(seed), "rows": len(rows), **scores}
            if flags is not None:
                records[(arm, key, seed)]["mismatched_selected"] = int(flags[rows].sum())
            progress.update()

    reports = {}
    for name, (rows, method) in chosen.items():
        arm_keys = {CORESET: name, RANDOM: len(rows), FULL: None}
        runs = {arm: [records[(arm, arm_keys[arm], seed)] for seed in seeds] for arm in [CORESET, *baselines]}
        reports[name] = CoresetReport(
            proxy=proxy, metric=PROXIES[proxy].metric, runs=runs, method=method or name, pool_rows=len(usable),
            test_rows=len(keep_test), steps=steps, heads=heads if proxy == "dual_encoder" else None,
            batch_size=batch_size, mismatch_column=mismatch_column, notes=list(notes),
        )
    return reports


# ------------------------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------------------------


def _check_options(proxy, baselines, seeds, steps, heads, batch_size, duplicates, label_column) -> None:
    get_proxy(proxy)
    for baseline in baselines:
        check_choice("each of baselines", baseline, BASELINES)
    if len(set(baselines)) != len(baselines):
        raise CoresetInputError(f"baselines lists a baseline twice: {list(baselines)}.")
    if len(seeds) == 0 or len(set(seeds)) != len(seeds):
        raise CoresetInputError(f"seeds must be distinct and at least one (3 for a verdict to trust), got {seeds!r}.")
    check_positive("steps", steps)
    check_positive("batch_size", batch_size)
    check_choice("heads", heads, ("mlp", "linear"))
    check_choice("duplicates", duplicates, ("raise", "drop"))
    if proxy == "linear_probe" and label_column is None:
        raise CoresetInputError("proxy='linear_probe' trains a classifier: pass label_column=... (the class).")


def _describe(value: Any) -> str:
    if isinstance(value, datasets.Dataset):
        return "an empty Dataset (0 rows)"
    return type(value).__name__


def _coreset_rows(coreset: Any, pool: datasets.Dataset) -> tuple[np.ndarray, str | None]:
    """The coreset's pool rows (sorted: row order does not change what is trained on) and its method."""
    method = None
    if isinstance(coreset, (datasets.Dataset, SelectionResult)):
        if isinstance(coreset, datasets.Dataset):
            try:
                coreset = get_selection_result(coreset)
            except ValueError:
                raise CoresetInputError(
                    "The coreset dataset carries no hf_coreset selection, so its pool rows are unknown: pass the "
                    "Dataset returned by select_coreset (or load_from_disk of one), its SelectionResult, or the "
                    "pool row indices."
                ) from None
        provenance = coreset.provenance
        method = provenance.get("method")
        rows_in = provenance.get("rows_in")
        if rows_in is not None and rows_in != pool.num_rows:
            raise CoresetInputError(
                f"The coreset was selected from a dataset of {rows_in} rows, but pool has {pool.num_rows}: pass "
                "the dataset it was selected from as pool."
            )
        fingerprint = provenance.get("source_fingerprint")
        if fingerprint and fingerprint != pool._fingerprint:
            logger.warning("The coreset was selected from a dataset with fingerprint %s, pool has %s: check that "
                           "pool is the dataset it was selected from.", fingerprint, pool._fingerprint)
        indices = coreset.indices
    else:
        indices = coreset
    rows = np.asarray(indices)
    if rows.ndim != 1 or len(rows) == 0 or not np.issubdtype(rows.dtype, np.integer):
        raise CoresetInputError("coreset must hold at least one integer row index into pool.")
    if rows.min() < 0 or rows.max() >= pool.num_rows:
        raise CoresetInputError(f"coreset row indices must be in 0..{pool.num_rows - 1} (pool rows), got "
                                f"{int(rows.min())}..{int(rows.max())}.")
    if len(np.unique(rows)) != len(rows):
        raise CoresetInputError("coreset row indices repeat a row; a coreset holds each pool row at most once.")
    return np.sort(rows), method


def _check_not_the_pool(pool: datasets.Dataset, test: datasets.Dataset, id_column: str | None) -> None:
    """Refuse, before any encoding, a test set that is the pool or shares row ids with it."""
    if test._fingerprint == pool._fingerprint:
        raise CoresetInputError(
            "test is the pool itself (same fingerprint): scores on rows the selection saw say nothing. Split "
            "before selecting: split = dataset.train_test_split(test_size=0.2, seed=0), select on split['train'] "
            "and pass test=split['test']."
        )
    if id_column is not None:
        check_columns_exist(pool, [id_column])
        check_columns_exist(test, [id_column])
        shared = sorted(set(pool[id_column]) & set(test[id_column]), key=str)
        if shared:
            raise CoresetInputError(
                f"{len(shared)} {id_column} value(s) are in both pool and test (e.g. {shared[:5]}): the test rows "
                "must be rows the selection never saw. Split before selecting (dataset.train_test_split)."
            )


def _check_featurised(chosen: dict, failed: np.ndarray) -> None:
    for rows, _ in chosen.values():
        unusable = np.intersect1d(rows, failed)
        if len(unusable):
            raise CoresetInputError(
                f"Coreset rows {unusable[:10].tolist()} could not be featurised here ({len(unusable)} in all): "
                "evaluate with the feature source used for the selection, or fix those rows."
            )


def _feature_blocks(dataset, name, *, image_column, text_column, image_encoder, text_encoder, embedding_columns,
                    cache_dir, show_progress) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-modality float32 blocks of every row, and the rows that could not be featurised."""
    if embedding_columns:
        if isinstance(embedding_columns, str):
            raise CoresetInputError(f"embedding_columns must be a list, e.g. [{embedding_columns!r}].")
        return {column: read_embedding_column(dataset, column) for column in embedding_columns}, np.array([], int)
    if image_column is None and text_column is None:
        raise CoresetInputError(
            "evaluate_coreset needs features: pass embedding_columns=[...], or image_column / text_column with "
            "image_encoder / text_encoder (the same as for the selection)."
        )
    from ..features import encode_dataset

    encoded = encode_dataset(dataset, image_column=image_column, text_column=text_column,
                             image_encoder=image_encoder, text_encoder=text_encoder, cache_dir=cache_dir,
                             show_progress=show_progress)
    failed = sorted({row for rows in encoded.failed_rows.values() for row in rows})
    if failed:
        logger.warning("%s: %d row(s) could not be featurised (%s).", name, len(failed), dict(encoded.failed_rows))
    return encoded.embeddings, np.asarray(failed, dtype=np.int64)


def _row_digests(blocks: dict[str, np.ndarray], rows: np.ndarray) -> list[bytes]:
    """A digest of each row's features (all blocks), to find test rows that are copies of pool rows."""
    joined = np.ascontiguousarray(np.concatenate([block[rows] for block in blocks.values()], axis=1))
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in joined]


def _without_duplicates(pool_blocks, usable, test_blocks, keep_test, duplicates: str, notes: list[str]) -> np.ndarray:
    """The test rows to score: ``keep_test`` less any row whose features equal a pool row's (refused by default)."""
    seen = set(_row_digests(pool_blocks, usable))
    copies = np.array([d in seen for d in _row_digests(test_blocks, keep_test)], dtype=bool)
    if not copies.any():
        return keep_test
    rows = keep_test[copies]
    if duplicates == "raise":
        raise CoresetInputError(
            f"{len(rows)} test row(s) have the same features as a pool row (test rows {rows[:10].tolist()}): a "
            "proxy trained on the pool would be scored on rows it may have seen. Split before selecting "
            "(dataset.train_test_split), deduplicate the source, or pass duplicates='drop' to score without them."
        )
    notes.append(f"{len(rows)} test row(s) identical to pool rows were left out of scoring (duplicates='drop').")
    if len(rows) == len(keep_test):
        raise CoresetInputError("Every test row is a copy of a pool row: nothing is left to score on.")
    return keep_test[~copies]


def _labels(pool, test, label_column) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Class ids (0..K-1, one vocabulary for pool and test) of ``label_column``, or (None, None)."""
    if label_column is None:
        return None, None
    check_columns_exist(pool, [label_column])
    check_columns_exist(test, [label_column])
    values = list(pool[label_column]) + list(test[label_column])
    if any(v is None for v in values):
        raise CoresetInputError(f"label_column {label_column!r} has missing values; fill or drop those rows.")
    _, ids = np.unique(np.asarray(values), return_inverse=True)
    return ids[: pool.num_rows], ids[pool.num_rows:]


def _mismatch_flags(pool, column: str | None) -> tuple[np.ndarray | None, str | None]:
    if column is None:
        if DEFAULT_MISMATCH_COLUMN not in pool.column_names:
            return None, None
        column = DEFAULT_MISMATCH_COLUMN
    check_columns_exist(pool, [column])
    return np.asarray(pool[column], dtype=bool), column


def _random_rows(usable: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The random baseline of ``seed``: ``size`` usable pool rows drawn without replacement, sorted."""
    return np.sort(np.random.default_rng(seed).choice(usable, size=size, replace=False))
