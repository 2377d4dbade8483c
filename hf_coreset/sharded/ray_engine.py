"""Sharded selection on Ray: vectors that do not fit one process, on one machine or a cluster.

Stages (each a set of Ray tasks, at most ``num_workers`` running at a time; the driver holds only small
things: the shard list, a sample, the k-means centres, partition sizes and the picks):

1. **sample**: each shard task reads its shard and returns the embedding columns of the sampled rows
   (``sample_size`` rows drawn uniformly from the seed; for a second round, stage 6, also its reference: up
   to ``refine_rows`` rows drawn the same way).
2. **partition**: k-means on the sample's partition vectors in the driver (``num_partitions`` centres,
   scikit-learn); then each shard task reads its shard again, assigns every row to its nearest centre and
   returns one piece per partition (the rows' embedding columns as stored, e.g. float16, and their row
   numbers) into Ray's object store, plus the count per partition.
3. **budget**: ``budget_split="proportional"`` gives partition p ``budget * n_p / N`` rows (largest
   remainder); ``"equal"`` gives every partition the same count, and a partition smaller than its share
   gives all its rows, the rest going to the others (:mod:`hf_coreset.budget`). ``"gain"`` (the default,
   ``"auto"``, for methods whose scores are greedy marginal gains: facility location, CAST, k-center) asks
   every partition for twice its proportional share and lets the gains decide in the merge.
4. **select**: one task per partition gathers its pieces (in shard order, so rows stay in row order), runs
   the registered method on them with the seed ``partition_seed(seed, p)`` and returns its picks. The method
   also gets the rows of a reference sample (up to ``REFERENCE_ROWS`` rows of the sample) outside its partition
   (:attr:`~hf_coreset.FeatureSet.reference`): a partition is not the pool, and a method that judges a row
   against the pool needs the pool (CAST re-pairs a partition's images with the pool's captions to tell
   mismatched pairs; re-paired inside a k-means partition, clean pairs look mismatched).
5. **merge**: the partitions' picks are interleaved in proportion to their shares
   (:func:`~hf_coreset.sharded.partition.interleave`) into one :class:`~hf_coreset.SelectionResult`; under
   ``"gain"`` the proposals with the highest marginal gains are kept, highest first
   (:func:`~hf_coreset.sharded.partition.merge_by_gain`): the greedy over all partitions at once, as if no
   row could be represented by a row of another partition. Partitioning costs a coverage method less that
   way: a partition of spread-out rows gets more picks than one of near-duplicates of the same size.
6. **refine** (under ``"gain"``, for methods that pick among candidates: facility location, CAST): instead of
   the merge by gain, one task runs the method on a reference sample of the pool and all proposals together,
   picking the budget among the proposals (:func:`~hf_coreset.sharded.partition.refine_features`, GreeDi's
   second round): a row near a partition's border is then represented by a pick on either side, and the picks
   are chosen against each other. The reference is as large as ``refine_rows`` leaves beside the proposals
   (:func:`~hf_coreset.sharded.partition.round_reference_size`); the round runs when that is at least
   ``REFERENCE_ROWS_PER_PICK`` rows per pick.

For those methods a pool of at most ``refine_rows`` rows is not partitioned: a round over the whole pool would
be the one-process selection, only with its candidates narrowed to the proposals, so one task reads every shard
and runs the method on the pool: the one-process picks where the method's kNN is exact (up to 20,000 rows;
it ranks neighbours in float64, so a worker's one-thread BLAS finds the driver's; tested), and above that
too with the default index, whose graph is built in one thread (30,000 synthetic pairs: CAST's and facility
location's picks the same with 1 and 2 threads; they shared 1,261 and 1,382 of 1,500 when it was built with
every thread).

Where a method has an exact sharded form it is used instead (ScalSelect: :mod:`.exact`), and methods that
need no features (``random``) select in the driver from the row count alone; both give the single-process
indices. Nothing in the result depends on the number of workers: shards, sample, centres, partition seeds
and merge order are fixed by the data and the seed.

A task whose worker process dies is retried (``max_retries``) by Ray; one that still fails, or raises,
stops the selection with :class:`~hf_coreset.errors.CoresetEngineError` naming the shard or partition
(an input error inside a task, e.g. a NaN vector, is raised as itself, naming the row).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..budget import BUDGET_SPLITS, split_budget
from ..config import check_choice, check_non_negative, check_positive
from ..errors import CoresetEngineError, CoresetInputError
from ..registry import get_method
from ..result import SelectionResult
from ..selector import FeatureSet
from ..validation import resolve_budget
from . import exact
from .partition import (
    REFINE_ROWS,
    RowBlocks,
    assign_partitions,
    fit_partitions,
    interleave,
    merge_by_gain,
    partition_seed,
    partition_vectors,
    pool_reference,
    proposal_counts,
    reference_sample,
    refine_features,
    round_reference_size,
    sample_rows,
)
from .sources import check_embedding_columns, open_source

RAY_HINT = 'the Ray engine needs Ray: pip install "hf-coreset[ray]"'
# "auto": "gain" for methods whose scores are greedy marginal gains, else "proportional".
BUDGET_SPLIT_CHOICES = ("auto", "gain", *BUDGET_SPLITS)


def select_with_ray(
    data: Any,
    method: str,
    budget: int | float,
    *,
    embedding_columns: list[str],
    seed: int = 0,
    num_workers: int | None = None,
    num_partitions: int | None = None,
    rows_per_partition: int = 20_000,
    budget_split: str = "auto",
    refine_rows: int = REFINE_ROWS,
    one_task_when_it_fits: bool = True,
    sample_size: int | None = None,
    shard_rows: int = 65_536,
    max_retries: int = 3,
    show_progress: bool = True,
    **method_options: Any,
) -> SelectionResult:
    """Select ``budget`` rows of ``data`` with ``method``, shard by shard and partition by partition, on Ray.

    Args:
        data: a ``datasets.Dataset``, or parquet files (a folder, a file or a list); indices number the rows
            of the dataset, or of the sorted files one after the other.
        method: any registered method that works on ``embedding_columns``.
        budget: rows to keep, a count (int) or a fraction (float in (0, 1]).
        embedding_columns: columns of precomputed vectors, one per modality.
        seed: the same seed gives the same indices, whatever ``num_workers``.
        num_workers: tasks running at once (default: the CPUs of the Ray cluster). Starts a local Ray
            instance with that many CPUs if none is running; connect to a cluster first with ``ray.init``.
        num_partitions: k-means partitions (default ``ceil(rows / rows_per_partition)``); not used where the
            pool fits ``refine_rows`` and is selected in one task (facility location, CAST).
        rows_per_partition: the partition size aimed at when ``num_partitions`` is not given; it bounds the
            memory of one selection task (the method's own memory at that many rows).
        budget_split: ``"proportional"`` (to partition size), ``"equal"``, ``"gain"`` (each partition proposes
            twice its proportional share, the proposals with the highest marginal gains are kept; for methods
            whose scores are greedy gains) or ``"auto"``: ``"gain"`` where the method allows it, else
            ``"proportional"``.
        refine_rows: under ``"gain"``, for methods that can pick among candidates (facility location, CAST),
            the rows of the second round (one task): it selects the budget among all partitions' proposals at
            once, representing them and a uniform sample of the pool that fills the rest of these rows. It
            runs when that sample has at least 10 rows per pick (``REFERENCE_ROWS_PER_PICK``); otherwise, or
            with 0, the proposals with the highest gains are kept. More rows: a round closer to one process's
            objective, at the method's cost on that many rows. A pool of at most ``refine_rows`` rows is
            selected by these methods in one task, as in one process (no partitions).
        one_task_when_it_fits: False partitions such a pool anyway, into ``num_partitions``: the second round
            then represents the whole pool (GreeDi's two rounds exactly). It is never better than one task;
            it is there to measure what partitions cost (docs/scaling.md).
        sample_size: rows the k-means is fitted on (default ``max(10_000, 50 * num_partitions)``).
        shard_rows: rows per shard of a ``Dataset`` (a parquet shard is one row group).
        max_retries: how often Ray reruns a task whose worker process died.
        show_progress: progress bars per stage.
        **method_options: fields of the method's config.

    Returns:
        The :class:`~hf_coreset.SelectionResult`; its provenance holds ``engine`` (workers, partitions, their
        sizes and budgets, retries) next to the usual fields.

    Example:
        >>> import datasets, numpy as np, ray
        >>> from hf_coreset.sharded import select_with_ray
        >>> rows = np.random.default_rng(0).normal(size=(400, 8)).tolist()
        >>> ds = datasets.Dataset.from_dict({"emb": rows})
        >>> ray.init(num_cpus=2, include_dashboard=False)                    # doctest: +SKIP
        >>> result = select_with_ray(ds, "kcenter", 40, embedding_columns=["emb"],
        ...                          rows_per_partition=100)                    # doctest: +SKIP
        >>> len(result.indices), result.provenance["engine"]["num_partitions"]  # doctest: +SKIP
        (40, 4)
    """
    started = time.perf_counter()
    ray = _import_ray()
    spec = get_method(method)
    config = spec.build_config(seed, method_options)
    _check_options(spec, config, num_workers, num_partitions, rows_per_partition, budget_split, sample_size,
                   shard_rows, max_retries, refine_rows, one_task_when_it_fits)
    max_retries, refine_rows = int(max_retries), int(refine_rows)  # numpy integers pass the check; Ray wants ints
    source = open_source(data, shard_rows)
    shards = source.shards()
    n_rows = sum(shard.num_rows for shard in shards)
    n_budget = resolve_budget(budget, n_rows)
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=num_workers, include_dashboard=False, log_to_driver=False)
    workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    tasks = _Tasks(ray, workers, max_retries, show_progress)
    engine: dict[str, Any] = {"name": "ray", "ray_version": ray.__version__, "num_workers": workers,
                              "shards": len(shards), "max_retries": max_retries}

    if not spec.selector_class.needs_features:
        # Nothing to read: the method draws from the row count alone, exactly as in one process.
        selector = spec.selector_class(config).fit(FeatureSet(n_rows=n_rows), n_budget)
        indices, scores, diagnostics = selector.indices_, selector.scores_, selector.diagnostics_
        engine.update(strategy="driver (the method needs no features)", num_partitions=1)
    else:
        columns = check_embedding_columns(source, embedding_columns)
        source_ref = ray.put(source)
        if _is_scalselect(spec):
            indices, scores, diagnostics = _exact_leverage(tasks, source_ref, shards, columns, config, n_budget)
            engine.update(strategy="exact (covariance summed over shards, global top-M)", num_partitions=1)
        elif one_task_when_it_fits and _fits_one_task(spec, _resolve_budget_split(budget_split, spec), n_rows,
                                                      refine_rows):
            (indices, scores, diagnostics), = tasks.map(
                _select_pool, [(spec, config, n_budget, source_ref, shards, columns)], stage="select",
                names=[f"the whole pool ({n_rows} rows, {n_budget} picks)"])
            engine.update(strategy="one task (the pool fits refine_rows)", num_partitions=1)
        else:
            num_partitions = num_partitions or math.ceil(n_rows / rows_per_partition)
            budget_split = _resolve_budget_split(budget_split, spec)
            indices, scores, diagnostics, partitioning = _partitioned(
                tasks, source_ref, shards, columns, spec, config, n_budget, num_partitions, budget_split,
                sample_size or max(10_000, 50 * num_partitions), refine_rows)
            engine.update(strategy="partitioned", **partitioning)
    finished = time.perf_counter()
    provenance = spec.provenance(
        config, budget=budget, budget_rows=n_budget, rows_in=n_rows, rows_out=int(len(indices)), dropped={},
        source_fingerprint=source.fingerprint(), source_split=None,
        score_meaning=spec.selector_class.score_meaning + _score_scope(engine),
        timings={"total_s": finished - started, **tasks.timings}, extra_versions=("ray",), engine=engine,
    )
    return SelectionResult(indices=np.asarray(indices, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64),
                           diagnostics=diagnostics, provenance=provenance)


def _partitioned(tasks, source_ref, shards, columns, spec, config, n_budget, num_partitions, budget_split,
                 sample_size, refine_rows):
    n_rows = sum(shard.num_rows for shard in shards)
    by_gain = budget_split == "gain"
    # The second round's reference: its own uniform sample, read in the same pass as the k-means sample.
    round_size = (round_reference_size(n_rows, n_budget, num_partitions, refine_rows)
                  if by_gain and spec.selector_class.picks_among_candidates and num_partitions > 1 else 0)
    sample, round_reference = _read_samples(
        tasks, source_ref, shards, columns,
        [sample_rows(n_rows, sample_size, config.seed), sample_rows(n_rows, round_size, config.seed + 2)])
    centres = fit_partitions(partition_vectors(sample.blocks), num_partitions, config.seed)
    num_partitions = len(centres)
    reference = reference_sample(sample.rows, sample.blocks, config.seed)
    reference_rows, reference_ref = len(reference.rows), tasks.ray.put(reference)
    split = tasks.map(_split_shard, [(source_ref, shard, columns, centres) for shard in shards], stage="partition",
                      names=_shard_names(shards), num_returns=num_partitions + 1)
    pieces = [refs[:-1] for refs in split]  # pieces[shard][partition], left in the object store
    sizes = np.sum([tasks.ray.get(refs[-1]) for refs in split], axis=0)
    shares = split_budget(sizes, n_budget, "proportional" if by_gain else budget_split)
    asks = proposal_counts(sizes, shares) if by_gain else shares
    chosen = [p for p in range(num_partitions) if asks[p]]
    # The second round needs the proposals' vectors; round_reference_size left room for them in refine_rows.
    refine = round_size > 0 and len(chosen) > 1
    jobs = [(spec, dataclasses.replace(config, seed=partition_seed(config.seed, p)), int(asks[p]),
             reference_ref, n_rows, refine, *[shard_pieces[p] for shard_pieces in pieces]) for p in chosen]
    del split, pieces  # the pieces of a partition leave the object store once its task is done
    picks = tasks.map(_select_partition, jobs, stage="select",
                      names=[f"partition {p} ({sizes[p]} rows, {asks[p]} picks)" for p in chosen])
    by_partition = dict(zip(chosen, picks))
    if refine:
        merge = "refine"
        (indices, scores, refined), = tasks.map(
            _refine_selection, [(spec, config, n_budget, round_reference, *[by_partition[p][3] for p in chosen])],
            stage="refine", names=["the second round over all proposals"])
        partition_of = {int(row): p for p in chosen for row in by_partition[p][0]}
        kept = np.bincount([partition_of[int(row)] for row in indices], minlength=num_partitions)
    else:
        merge, refined = ("gain" if by_gain else "interleave"), None
        indices, scores, kept = _merge_picks(by_partition, chosen, asks, n_budget, by_gain, num_partitions)
    diagnostics = {"partitions": [{"partition": p, "rows": int(sizes[p]), "budget": int(kept[p]),
                                   **({"proposed": int(asks[p])} if by_gain else {}),
                                   "seed": partition_seed(config.seed, p), **by_partition[p][2]} for p in chosen],
                   **({"refine": refined} if refined else {})}
    partitioning = {"num_partitions": num_partitions, "partition_rows": sizes.tolist(),
                    "partition_budgets": kept.tolist(), "budget_split": budget_split, "merge": merge,
                    "sample_rows": int(len(sample.rows)), "reference_rows": reference_rows,
                    "round_reference_rows": int(round_size) if refine else 0}
    return indices, scores, diagnostics, partitioning


def _read_samples(tasks, source_ref, shards, columns, samples: list[np.ndarray]) -> list[RowBlocks]:
    """Stage 1: the embedding columns of every sample's rows (sorted row numbers), each shard read once."""
    read = np.unique(np.concatenate(samples))
    sampled = tasks.map(_sample_shard, [(source_ref, shard, columns, _rows_in(read, shard)) for shard in shards],
                        stage="sample", names=_shard_names(shards))
    blocks = {column: np.concatenate([shard_blocks[column] for shard_blocks in sampled]) for column in columns}
    return [RowBlocks(rows, {c: block[np.searchsorted(read, rows)] for c, block in blocks.items()})
            for rows in samples]


def _merge_picks(by_partition, chosen, asks, n_budget, by_gain, num_partitions):
    """Stage 5: the partitions' picks in one order (highest gains first under "gain", else interleaved by
    share); returns the rows, their scores and the picks kept per partition."""
    order = (merge_by_gain([by_partition[p][1] for p in chosen], n_budget) if by_gain
             else interleave([int(asks[p]) for p in chosen]))
    indices = np.array([by_partition[chosen[i]][0][rank] for i, rank in order], dtype=np.int64)
    scores = np.array([by_partition[chosen[i]][1][rank] for i, rank in order], dtype=np.float64)
    kept = np.zeros(num_partitions, dtype=np.int64)
    np.add.at(kept, [chosen[i] for i, _ in order], 1)
    return indices, scores, kept


def _exact_leverage(tasks, source_ref, shards, columns, config, n_budget):
    names = _shard_names(shards)
    sums = tasks.map(_shard_column_sum, [(source_ref, shard, columns) for shard in shards], stage="mean", names=names)
    mean = exact.merge_means(sums)
    covariances = tasks.map(_shard_covariance, [(source_ref, shard, columns, mean, config.chunk_size)
                                                for shard in shards], stage="covariance", names=names)
    subspace = exact.dominant_subspace(sum(covariances), mean, sum(n for _, n in sums), config.rho)
    candidates = tasks.map(_shard_top_leverage, [(source_ref, shard, columns, subspace, n_budget, config.chunk_size)
                                                 for shard in shards], stage="score", names=names)
    indices, scores = exact.merge_top(candidates, n_budget)
    diagnostics = {"k": subspace.k, "rho": config.rho, "energy": subspace.energy,
                   "leverage_mass": float(scores.sum() / subspace.k), "dim": int(len(mean))}
    return indices, scores, diagnostics


# --- task bodies (run in Ray workers; plain functions, so they are also easy to call directly) ---------------

def _shard_names(shards) -> list[str]:
    return [f"shard {shard.position} (rows {shard.start}-{shard.start + shard.num_rows - 1})" for shard in shards]


def _read(source, shard, columns):
    return source.read(shard, columns)


def _rows_in(sample: np.ndarray, shard) -> np.ndarray:
    low, high = np.searchsorted(sample, [shard.start, shard.start + shard.num_rows])
    return sample[low:high] - shard.start


def _sample_shard(source, shard, columns, positions):
    return {c: block[positions] for c, block in _read(source, shard, columns).items()}


def _split_shard(source, shard, columns, centres):
    blocks = _read(source, shard, columns)
    labels = assign_partitions(partition_vectors(blocks), centres)
    rows = shard.start + np.arange(shard.num_rows, dtype=np.int64)
    pieces = []
    for partition in range(len(centres)):
        members = labels == partition
        pieces.append(RowBlocks(rows[members], {c: block[members] for c, block in blocks.items()}))
    return (*pieces, np.bincount(labels, minlength=len(centres)))


def _select_partition(spec, config, share, reference, pool_rows, with_vectors, *pieces):
    rows = np.concatenate([piece.rows for piece in pieces])
    # The method sees float32 blocks, as from read_embedding_column in one process.
    blocks = {c: np.concatenate([piece.blocks[c] for piece in pieces]).astype(np.float32) for c in pieces[0].blocks}
    features = FeatureSet(n_rows=len(rows), blocks=blocks, reference=pool_reference(reference, rows, pool_rows))
    selector = spec.selector_class(config).fit(features, share)
    picked = selector.indices_
    proposals = RowBlocks(rows[picked], {c: block[picked] for c, block in blocks.items()}) if with_vectors else None
    return rows[picked], selector.scores_, selector.diagnostics_, proposals


def _select_pool(spec, config, budget, source, shards, columns):
    # As select_coreset reads them: every row, float32 blocks, in row order.
    read = [_read(source, shard, columns) for shard in shards]
    blocks = {c: np.concatenate([shard_blocks[c] for shard_blocks in read]).astype(np.float32) for c in columns}
    selector = spec.selector_class(config).fit(FeatureSet(n_rows=len(blocks[columns[0]]), blocks=blocks), budget)
    return selector.indices_, selector.scores_, selector.diagnostics_


def _refine_selection(spec, config, budget, reference, *proposals):
    rows, features = refine_features(reference, list(proposals))
    selector = spec.selector_class(config).fit(features, budget)
    diagnostics = {"rows": int(features.n_rows), "candidates": int(len(features.candidates)),
                   **selector.diagnostics_}
    return rows[selector.indices_], selector.scores_, diagnostics


def _shard_column_sum(source, shard, columns):
    return exact.column_sum(exact.representations(_read(source, shard, columns)))


def _shard_covariance(source, shard, columns, mean, chunk_size):
    return exact.centred_covariance(exact.representations(_read(source, shard, columns)), mean, chunk_size)


def _shard_top_leverage(source, shard, columns, subspace, m, chunk_size):
    x = exact.representations(_read(source, shard, columns))
    return exact.top_leverage(x, subspace, m, shard.start, chunk_size)


# --- running tasks ---------------------------------------------------------------------------------------------

class _Tasks:
    """Runs a task body over a list of argument tuples with at most ``num_workers`` tasks in flight; results come
    back in list order. Records each stage's wall time. A task whose worker dies is rerun by Ray (``max_retries``)."""

    def __init__(self, ray, num_workers: int, max_retries: int, show_progress: bool):
        self.ray, self.num_workers, self.max_retries, self.show_progress = ray, num_workers, max_retries, show_progress
        self.timings: dict[str, float] = {}

    def map(self, body, jobs: list[tuple], *, stage: str, names: list[str], num_returns: int = 1) -> list:
        """``body(*job)`` for every job (the list is emptied as the tasks start); with ``num_returns > 1`` the
        results are the tasks' lists of object refs, of which only the last one is waited for."""
        started = time.perf_counter()
        remote = self.ray.remote(body).options(num_cpus=1, max_retries=self.max_retries, num_returns=num_returns,
                                               name=f"hf_coreset.{stage}")
        results: list = [None] * len(jobs)
        waiting: dict = {}  # the ref that says a task is done -> its position
        progress = tqdm(total=len(jobs), desc=f"Ray: {stage}", disable=not self.show_progress)
        try:
            for position in range(len(jobs)):
                if len(waiting) >= self.num_workers:
                    self._collect_one(waiting, results, names, num_returns, progress)
                # Hand the arguments over: once the task is done, its input objects (a partition's pieces)
                # can leave the object store.
                args, jobs[position] = jobs[position], None
                refs = remote.remote(*args)
                del args
                waiting[refs if num_returns == 1 else refs[-1]] = position
                results[position] = refs
            while waiting:
                self._collect_one(waiting, results, names, num_returns, progress)
        except BaseException:
            for ref in waiting:  # stop what is still queued; a running task ends on its own (no worker kill)
                self.ray.cancel(ref)
            raise
        finally:
            progress.close()
        self.timings[f"{stage}_s"] = time.perf_counter() - started
        return results

    def _collect_one(self, waiting, results, names, num_returns, progress):
        (done,), _ = self.ray.wait(list(waiting), num_returns=1)
        position = waiting.pop(done)
        try:
            value = self.ray.get(done)
        except self.ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, CoresetInputError):
                raise cause from None
            raise CoresetEngineError(f"Ray task for {names[position]} failed: {err}") from err
        except self.ray.exceptions.RayError as err:  # the worker died more often than max_retries allows
            raise CoresetEngineError(
                f"Ray task for {names[position]} was lost: its worker died {self.max_retries + 1} times "
                f"({type(err).__name__}). Out of memory? Fewer rows per partition (rows_per_partition=) or fewer "
                "workers lower the memory per task; max_retries= allows more retries. Nothing was selected."
            ) from err
        if num_returns == 1:
            results[position] = value
        progress.update(1)


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError(RAY_HINT) from err
    return ray


def _score_scope(engine: dict) -> str:
    if engine.get("merge") == "refine":
        return " (in the second round, over the reference sample and every partition's proposals)"
    return " (within the row's partition)" if engine["strategy"] == "partitioned" else ""


def _resolve_budget_split(budget_split: str, spec) -> str:
    if budget_split != "auto":
        return budget_split
    return "gain" if spec.selector_class.scores_are_marginal_gains else "proportional"


def _fits_one_task(spec, budget_split: str, n_rows: int, refine_rows: int) -> bool:
    """Where the second round could hold the whole pool, it is the one-process selection over it, and the
    partitions could only have narrowed its candidates: select the pool in one task. (What forced partitions
    cost, with and without that round, is measured in docs/scaling.md.)"""
    return budget_split == "gain" and spec.selector_class.picks_among_candidates and n_rows <= refine_rows


def _is_scalselect(spec) -> bool:
    from ..methods.scalselect import ScalSelectSelector

    return issubclass(spec.selector_class, ScalSelectSelector)


def _check_options(spec, config, num_workers, num_partitions, rows_per_partition, budget_split, sample_size,
                   shard_rows, max_retries, refine_rows, one_task_when_it_fits) -> None:
    for name, value in (("num_workers", num_workers), ("num_partitions", num_partitions),
                        ("sample_size", sample_size)):
        if value is not None:
            check_positive(name, value)
    check_positive("rows_per_partition", rows_per_partition)
    check_positive("shard_rows", shard_rows)
    check_non_negative("max_retries", max_retries)
    check_non_negative("refine_rows", refine_rows)
    check_choice("budget_split", budget_split, BUDGET_SPLIT_CHOICES)
    if not isinstance(one_task_when_it_fits, (bool, np.bool_)):
        raise CoresetInputError(f"one_task_when_it_fits must be True or False, got {one_task_when_it_fits!r}.")
    if budget_split == "gain" and not spec.selector_class.scores_are_marginal_gains:
        raise CoresetInputError(
            f'budget_split="gain" needs scores that are greedy marginal gains; method={spec.name!r} scores mean '
            f'"{spec.selector_class.score_meaning}". Use "proportional" or "equal" (or "auto").'
        )
    live = [name for name in config.object_fields if getattr(config, name, None) is not None]
    if live:
        raise CoresetInputError(
            f"method={spec.name!r} with {', '.join(live)} computes its own features from the rows; the Ray "
            "engine reads precomputed embedding_columns. Compute the representations first (e.g. under "
            "accelerate launch) and select on them, or select in one process."
        )
    if getattr(config, "group_column", None) is not None:
        raise CoresetInputError(
            f"group_column is not supported by the Ray engine: groups could span partitions. Select "
            f"method={spec.name!r} with groups in one process, or give one row per group."
        )
