"""Past one machine: the Ray engine on a million CLIP-sized pairs, and the price of partitioning.

Commands (each measurement under the team lock ``flock /tmp/hf_heavy.lock``, one at a time):

    python -m benchmarks.scale_out generate          # 1,000,000 rows -> ~/.cache/hf_coreset/bench/scale_out_1m
    python -m benchmarks.scale_out ray --method herding   # item 3: one method, Ray engine, 2 workers
    python -m benchmarks.scale_out local --method herding --rows 100000   # the single-process path at a size
    python -m benchmarks.scale_out price --rows 100000 --methods kcenter herding facility_location
    python -m benchmarks.scale_out dq --dq-rows 10000 40000 100000   # item 5: DQ's GraphCut bins past 10k rows
    python -m benchmarks.scale_out dq --dq-rows 60000 --dq-dim 96 --reference-rows 0  # low-d rows: flat gains
    python -m benchmarks.scale_out dq-lazy --dq-rows 2000 5000 10000  # item 5's proposal: the lazy greedy
    python -m benchmarks.scale_out table                          # the tables of every run recorded so far

Data (``generate``): ``--rows`` pairs of a 512-d "image" and a 512-d "text" vector, float16, in parquet files of
100,000 rows with row groups of 50,000 (one Ray shard per row group). Both vectors of a row come from the same
point of a 32-d latent Gaussian mixture (1,000 clusters), each mapped to 512-d by its own random linear map,
plus noise and a common offset (CLIP embeddings are not centred): low intrinsic dimension and shared
image-text structure, like encoder outputs.

Memory (``ray`` and ``local``): a thread samples every 0.5 s the driver and all its descendant processes
(Ray's gcs_server, raylet with the object store, workers, agents) with psutil: the sum of their PSS
(proportional set size: shared pages such as the object store are split among the processes mapping them,
so the sum is the memory really used) and the sum of their RSS (counts shared pages once per process: an upper
bound). The peak of each sum and each process kind's own peak are reported. ``local`` also reports
``/usr/bin/time -v``'s maximum resident set of its one process.

Each run appends one JSON record to ``benchmarks/results/scale_out.json``; ``table`` prints the Markdown tables
(also written to ``benchmarks/results/scale_out.md``) with the command of every row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
RECORDS = RESULTS / "scale_out.json"
DEFAULT_DATA = Path.home() / ".cache" / "hf_coreset" / "bench" / "scale_out_1m"
COLUMNS = ["image_emb", "text_emb"]
FILE_ROWS, GROUP_ROWS, DIM, LATENT, CLUSTERS = 100_000, 50_000, 512, 32, 1000


# --- data ------------------------------------------------------------------------------------------------------

def synthetic_pairs(start: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows ``start .. start + n - 1`` of the synthetic pair set (each chunk seeded by its start row)."""
    structure = np.random.default_rng(seed)
    centres = structure.normal(size=(CLUSTERS, LATENT)).astype(np.float32)
    maps = {c: (structure.standard_normal((LATENT, DIM), dtype=np.float32) / np.sqrt(LATENT)) for c in COLUMNS}
    offsets = {c: structure.normal(size=DIM).astype(np.float32) for c in COLUMNS}
    rng = np.random.default_rng([seed, start])
    latent = centres[rng.integers(CLUSTERS, size=n)] + 0.5 * rng.standard_normal((n, LATENT), dtype=np.float32)
    return {c: (latent @ maps[c] + offsets[c] + 0.3 * rng.standard_normal((n, DIM), dtype=np.float32))
            .astype(np.float16) for c in COLUMNS}


def generate(rows: int, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, rows, FILE_ROWS):
        path = out / f"part-{start // FILE_ROWS:05d}.parquet"
        if path.exists():
            continue
        n = min(FILE_ROWS, rows - start)
        pairs = synthetic_pairs(start, n)
        table = pa.table({c: pa.FixedSizeListArray.from_arrays(pa.array(pairs[c].ravel()), DIM) for c in COLUMNS})
        pq.write_table(table, str(path) + ".tmp", row_group_size=GROUP_ROWS)
        os.replace(str(path) + ".tmp", path)  # a killed run leaves no half-written file
        print(f"wrote {path} ({n} rows)", flush=True)


# --- memory of a process tree ----------------------------------------------------------------------------------

class TreeMemory:
    """Samples the PSS and RSS of this process and all its descendants every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5):
        import psutil

        self.root, self.interval = psutil.Process(), interval
        self.peak_pss = self.peak_rss = 0
        self.per_kind: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        import psutil

        total_pss = total_rss = 0
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                info = process.memory_full_info()
                kind = _kind(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total_pss, total_rss = total_pss + info.pss, total_rss + info.rss
            self.per_kind[kind] = max(self.per_kind.get(kind, 0), info.pss)
        self.peak_pss, self.peak_rss = max(self.peak_pss, total_pss), max(self.peak_rss, total_rss)


def _kind(process) -> str:
    if process.pid == os.getpid():
        return "driver"
    name = " ".join(process.cmdline()[:3])
    for kind in ("gcs_server", "raylet", "dashboard", "runtime_env", "log_monitor", "monitor.py"):
        if kind in name:
            return kind
    return "worker" if "default_worker" in name or process.name().startswith("ray::") else process.name()


GIB = 2**30


# --- runs ------------------------------------------------------------------------------------------------------

def run_ray(args) -> dict:
    import ray

    from hf_coreset.sharded import select_with_ray

    with TreeMemory() as memory:
        started = time.perf_counter()
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 object_store_memory=int(args.object_store_gib * GIB),
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
        refine = {} if args.refine_rows is None else {"refine_rows": args.refine_rows[0]}
        result = select_with_ray(args.data, args.method, args.budget, embedding_columns=COLUMNS, seed=0,
                                 num_workers=args.workers, rows_per_partition=args.rows_per_partition,
                                 show_progress=False, **refine)
        seconds = time.perf_counter() - started
        memory.sample()
        ray.shutdown()
    provenance = result.provenance
    return {"kind": "ray", "method": args.method, "rows": provenance["rows_in"], "budget": provenance["budget_rows"],
            "workers": args.workers, "partitions": provenance["engine"]["num_partitions"],
            "budget_split": split_label(provenance["engine"]), "seconds": seconds,
            "stages_s": provenance["timings"], "peak_pss_gib": memory.peak_pss / GIB,
            "peak_rss_sum_gib": memory.peak_rss / GIB,
            "peak_pss_by_kind_gib": {k: v / GIB for k, v in sorted(memory.per_kind.items())},
            "rows_per_s": provenance["rows_in"] / seconds, "unique": len(set(result.indices.tolist())),
            "indices_sha": _digest(result.indices)}


def run_local(args) -> dict:
    """One process: the rows as a Dataset (the parquet files' first ``--rows``), ``select_coreset``."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "benchmarks.scale_out", "local-child",
               "--method", args.method, "--rows", str(args.rows), "--budget", str(args.budget),
               "--data", str(args.data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    max_rss = next((int(line.split()[-1]) for line in done.stderr.splitlines() if "Maximum resident" in line), 0)
    if done.returncode != 0:
        return {"kind": "local", "method": args.method, "rows": args.rows, "failed": done.stderr[-1500:],
                "max_rss_gib": max_rss * 1024 / GIB}
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return {**record, "max_rss_gib": max_rss * 1024 / GIB}


def local_child(args) -> None:
    import datasets
    import pyarrow.parquet as pq

    import hf_coreset

    datasets.disable_progress_bars()
    files = sorted(Path(args.data).glob("*.parquet"))
    table = pq.read_table([str(f) for f in files][: -(-args.rows // FILE_ROWS)]).slice(0, args.rows)
    dataset = datasets.Dataset(table)
    with TreeMemory() as memory:
        started = time.perf_counter()
        core = hf_coreset.select_coreset(dataset, args.method, args.budget, embedding_columns=COLUMNS,
                                         show_progress=False)
        seconds = time.perf_counter() - started
    result = hf_coreset.get_selection_result(core)
    print(json.dumps({"kind": "local", "method": args.method, "rows": args.rows, "budget": len(result.indices),
                      "seconds": seconds, "peak_pss_gib": memory.peak_pss / GIB, "rows_per_s": args.rows / seconds}))


def run_price(args) -> list[dict]:
    """Item 4: global vs partitioned selection on the same rows; the method's objective and the mean distance of
    every row to its nearest selected row (both on the concat vectors the methods see)."""
    import datasets
    import pyarrow.parquet as pq
    import ray

    import hf_coreset
    from hf_coreset.features.aggregate import aggregate_blocks
    from hf_coreset.methods.cast import CASTConfig
    from hf_coreset.methods.cast.selector import cast_objective
    from hf_coreset.sharded import select_with_ray

    datasets.disable_progress_bars()
    files = sorted(str(f) for f in Path(args.data).glob("*.parquet"))
    table = pq.read_table(files[: -(-args.rows // FILE_ROWS)]).slice(0, args.rows)
    dataset = datasets.Dataset(table)
    blocks = {c: np.asarray(table.column(c).combine_chunks().flatten()).reshape(args.rows, DIM).astype(np.float32)
              for c in COLUMNS}
    x = aggregate_blocks(blocks, "concat")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
    records = []
    for method in args.methods:
        # CAST's own objective, on the one-process graph (built once for every selection of this method).
        cast_value = cast_objective(blocks, CASTConfig(seed=0)) if method == "cast" else None
        for partitions, refine_rows in [(1, None)] + [(args.partitions, r) for r in args.refine_rows or [None]]:
            started = time.perf_counter()
            if partitions == 1:
                core = hf_coreset.select_coreset(dataset, method, args.budget, embedding_columns=COLUMNS,
                                                 show_progress=False)
                result, split = hf_coreset.get_selection_result(core), None
            else:
                refine = {} if refine_rows is None else {"refine_rows": refine_rows}
                result = select_with_ray(dataset, method, args.budget, embedding_columns=COLUMNS, num_workers=2,
                                         num_partitions=partitions, show_progress=False, **refine)
                split = split_label(result.provenance["engine"])
            seconds = time.perf_counter() - started
            engine = result.provenance.get("engine", {})
            records.append({"kind": "price", "method": method, "rows": args.rows, "budget": len(result.indices),
                            "partitions": engine.get("num_partitions", partitions), "budget_split": split,
                            "seconds": seconds, "round_reference_rows": engine.get("round_reference_rows"),
                            **objectives(method, x, result.indices),
                            **({"cast_objective": cast_value(result.indices)} if cast_value else {})})
            print(json.dumps(records[-1]), flush=True)
    ray.shutdown()
    return records


def split_label(engine: dict) -> str | None:
    """The budget split of a Ray run, and ", refine" when the second round chose among all proposals; "one
    task" when the pool fitted refine_rows (no partitions)."""
    if engine.get("strategy", "").startswith("one task"):
        return "one task (the pool fits refine_rows)"
    split = engine.get("budget_split")
    if split is None or engine.get("merge") != "refine":
        return split
    rows = engine.get("round_reference_rows")  # absent before the round had its own reference
    return split + ", refine" + (f" ({rows:,} reference rows)" if rows else "")


def objectives(method: str, x: np.ndarray, indices: np.ndarray, block: int = 8192) -> dict:
    """Mean and max distance of every row to its nearest pick, the picks' mean gap and the dense facility-location
    value ``mean_i max_j cos(x_i, x_j)^2`` (on unit-normalised rows)."""
    from hf_coreset.vectors import l2_normalize

    picked = x[indices]
    picked_sq = np.einsum("ij,ij->i", picked, picked)
    unit, unit_picked = l2_normalize(x), l2_normalize(picked)
    nearest, best_cos2 = np.empty(len(x)), np.empty(len(x))
    for start in range(0, len(x), block):
        rows = x[start : start + block]
        squared = np.einsum("ij,ij->i", rows, rows)[:, None] - 2 * rows @ picked.T + picked_sq
        nearest[start : start + block] = np.sqrt(np.maximum(squared.min(axis=1), 0))
        best_cos2[start : start + block] = ((unit[start : start + block] @ unit_picked.T) ** 2).max(axis=1)
    return {"mean_nearest": float(nearest.mean()), "covering_radius": float(nearest.max()),
            "mean_gap": float(np.linalg.norm(picked.mean(axis=0) - x.mean(axis=0))),
            "facility_location": float(best_cos2.mean())}


def clustered_rows(n: int, dim: int = 768, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Item 5's data: ``n`` rows around 50 Gaussian centres in ``dim`` dimensions (noise as large as the centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, dim))


def timed(function, *args):
    """``(function(*args), seconds)``."""
    started = time.perf_counter()
    return function(*args), time.perf_counter() - started


def same_bins(bins: list[np.ndarray], other: list[np.ndarray]) -> bool:
    return len(bins) == len(other) and all(np.array_equal(a, b) for a, b in zip(bins, other))


def run_dq(args) -> list[dict]:
    """Item 5: DQ's GraphCut binning (K = 10) at each size; up to ``--reference-rows`` also the exact float64 greedy
    with one matrix-vector product per pick (``matvec_graphcut_bins``), and whether the bins are equal."""
    from hf_coreset.methods.dq import graphcut_bins, matvec_graphcut_bins

    records = []
    for n in args.dq_rows:
        x = clustered_rows(n, dim=args.dq_dim)
        (bins, _), seconds = timed(graphcut_bins, x, 10)
        entry = {"kind": "dq", "rows": n, "dim": x.shape[1], "bins": 10, "seconds": seconds}
        if n <= args.reference_rows:
            (reference, _), entry["reference_seconds"] = timed(matvec_graphcut_bins, x, 10)
            entry["same_bins"] = same_bins(bins, reference)
        records.append(entry)
        print(json.dumps(entry), flush=True)
    return records


def lazy_graphcut_bins(x: np.ndarray, num_bins: int, graphcut_lambda: float = 1.0):
    """The lazy (Minoux) greedy item 5 proposes, on the reference kernel ``0.5 + 0.5 cos``: each row keeps the gain
    it had when last evaluated, an upper bound of its gain now (every pick lowers a gain by ``1 + cos >= 0``);
    the row with the highest bound is re-evaluated (O(d), with the running sum of the picks) until the top of
    the heap is fresh. Exact; returns ``(bins, re_evaluations, pool_sizes)``, the last summed over picks."""
    import heapq

    from hf_coreset.methods.dq.selector import bin_sizes
    from hf_coreset.vectors import l2_normalize

    pool = l2_normalize(np.asarray(x, dtype=np.float64))
    remaining = np.arange(len(pool))
    bins, re_evaluations, pool_sizes = [], 0, 0
    for size in bin_sizes(len(pool), num_bins):
        # gain(e) = lambda sum_pool (0.5 + 0.5 c) - 2 sum_picks (0.5 + 0.5 c) = constant - k + <x_e, target>
        constant = 0.5 * graphcut_lambda * len(pool)
        target = 0.5 * graphcut_lambda * pool.sum(axis=0)
        heap = [(-(constant + g), e, 0) for e, g in enumerate(pool @ target)]
        heapq.heapify(heap)
        picks = []
        for k in range(size):
            while True:
                _, e, evaluated_at = heapq.heappop(heap)
                if evaluated_at == k:
                    break
                re_evaluations += 1
                heapq.heappush(heap, (-(constant - k + pool[e] @ target), e, k))
            picks.append(e)
            target -= pool[e]
            pool_sizes += len(pool) - k
        bins.append(remaining[picks])
        kept = np.ones(len(pool), dtype=bool)
        kept[picks] = False
        remaining, pool = remaining[kept], pool[kept]
    return bins, re_evaluations, pool_sizes


def run_lazy(args) -> list[dict]:
    """Item 5's proposal measured: the lazy greedy's re-evaluations per pick, and its bins against the fast path's."""
    from hf_coreset.methods.dq import graphcut_bins

    records = []
    for n in args.dq_rows:
        x = clustered_rows(n)
        (bins, re_evaluations, pool_sizes), seconds = timed(lazy_graphcut_bins, x, 10)
        (fast, _), fast_seconds = timed(graphcut_bins, x, 10)
        entry = {"kind": "dq-lazy", "rows": n, "dim": x.shape[1], "bins": 10, "seconds": seconds,
                 "re_evaluations": re_evaluations, "re_evaluations_per_pick": re_evaluations / n,
                 "share_of_pool_per_pick": re_evaluations / pool_sizes, "fast_seconds": fast_seconds,
                 "same_bins": same_bins(bins, fast)}
        records.append(entry)
        print(json.dumps(entry), flush=True)
    return records


# What each method optimises, as measured by ``objectives`` (None: no single objective).
OBJECTIVE = {"kcenter": ("covering_radius", "lower"), "herding": ("mean_gap", "lower"),
             "facility_location": ("facility_location", "higher"), "dq": None,
             "cast": ("cast_objective", "higher")}


def _digest(indices: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:12]


# --- tables ----------------------------------------------------------------------------------------------------

def tables(records: list[dict]) -> str:
    lines = ["## Ray engine (item 3)", "",
             "| method | rows | budget | workers | partitions | budget split | time (s) | rows/s "
             "| peak PSS, all processes (GiB) | peak RSS sum (GiB) | peak PSS by process kind (GiB) | command |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|"]
    for r in records:
        if r["kind"] == "ray":
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in r["peak_pss_by_kind_gib"].items() if v > 0.05)
            # Records from before budget_split="gain" existed were proportional.
            lines.append(f"| {r['method']} | {r['rows']:,} | {r['budget']:,} | {r['workers']} | {r['partitions']} "
                         f"| {r.get('budget_split', 'proportional')} "
                         f"| {r['seconds']:.0f} | {r['rows_per_s']:,.0f} | {r['peak_pss_gib']:.2f} "
                         f"| {r['peak_rss_sum_gib']:.2f} | {kinds} | `{r['command']}` |")
    lines += ["", "## Single process (item 3)", "",
              "| method | rows | time (s) | rows/s | max RSS, /usr/bin/time (GiB) | command |",
              "|---|---:|---:|---:|---:|---|"]
    for r in records:
        if r["kind"] == "local":
            cells = ("failed", "", f"{r['max_rss_gib']:.2f}") if "failed" in r else (
                f"{r['seconds']:.0f}", f"{r['rows_per_s']:,.0f}", f"{r['max_rss_gib']:.2f}")
            lines.append(f"| {r['method']} | {r['rows']:,} | {' | '.join(cells)} | `{r['command']}` |")
    lines += ["", "## Price of partitioning (item 4)", "",
              "| method | rows | budget | partitions | budget split | time (s) | objective (what it optimises) "
              "| ratio to global | mean distance to nearest pick | ratio to global | command |",
              "|---|---:|---:|---:|---|---:|---|---:|---:|---:|---|"]
    prices = [r for r in records if r["kind"] == "price"]
    for r in prices:
        # The global selection of the same run (the method's defaults may have changed between runs).
        glob = next((g for g in prices if g["method"] == r["method"] and g["rows"] == r["rows"]
                     and g["partitions"] == 1 and g["command"] == r["command"]), r)
        target = OBJECTIVE.get(r["method"])
        objective = (("n/a (no single objective)", "") if not target else
                     ("n/a (not measured in that run)", "") if target[0] not in r or target[0] not in glob else
                     (f"{target[0]} {r[target[0]]:.4f} ({target[1]} is better)",
                      f"{r[target[0]] / glob[target[0]]:.3f}"))
        split = r.get("budget_split") or ("" if r["partitions"] == 1 else "proportional")
        lines.append(f"| {r['method']} | {r['rows']:,} | {r['budget']:,} | {r['partitions']} | {split} "
                     f"| {r['seconds']:.0f} "
                     f"| {objective[0]} | {objective[1]} | {r['mean_nearest']:.4f} "
                     f"| {r['mean_nearest'] / glob['mean_nearest']:.3f} | `{r['command']}` |")
    lines += ["", "## DQ GraphCut bins on one machine (item 5)", "",
              "50-cluster data (`clustered_rows`), K = 10 bins, float64. Reference: the exact greedy with one "
              "matrix-vector product per pick. Rows without a date predate the windows of tracked rows "
              "(2026-12-03: every pick's similarity row against the whole pool); this machine's speed varies about "
              "2x from night to night, so compare rows of the same date.", "",
              "| rows | d | time (s) | reference time (s) | ratio | same bins as the reference | date | command |",
              "|---:|---:|---:|---:|---:|---|---|---|"]
    for r in records:
        if r["kind"] == "dq":
            reference = (f"{r['reference_seconds']:.1f} | {r['reference_seconds'] / r['seconds']:.1f}x | "
                         f"{'yes' if r['same_bins'] else 'NO'}") if "reference_seconds" in r else "not run | | "
            lines.append(f"| {r['rows']:,} | {r['dim']} | {r['seconds']:.1f} | {reference} | {r.get('date', '')} "
                         f"| `{r['command']}` |")
    lines += ["", "The lazy (Minoux) greedy on the reference kernel 0.5 + 0.5 cos (`lazy_graphcut_bins`), same data: "
              "re-evaluations (O(d) each) per pick, and their share of the rows left in the pool.", "",
              "| rows | time (s) | re-evaluations per pick | share of the pool per pick | fast path (s) "
              "| same bins as the fast path | command |",
              "|---:|---:|---:|---:|---:|---|---|"]
    for r in records:
        if r["kind"] == "dq-lazy":
            lines.append(f"| {r['rows']:,} | {r['seconds']:.1f} | {r['re_evaluations_per_pick']:,.0f} "
                         f"| {r['share_of_pool_per_pick']:.1%} | {r['fast_seconds']:.1f} "
                         f"| {'yes' if r['same_bins'] else 'NO'} | `{r['command']}` |")
    return "\n".join(lines)


def record(entries: list[dict], command: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    saved = json.loads(RECORDS.read_text()) if RECORDS.exists() else []
    today = time.strftime("%Y-%m-%d")
    saved += [{**entry, "command": command, "date": today} for entry in entries]
    RECORDS.write_text(json.dumps(saved, indent=1))
    (RESULTS / "scale_out.md").write_text(tables(saved) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["generate", "ray", "local", "local-child", "price", "dq", "dq-lazy",
                                                        "table"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--method", default="herding")
    parser.add_argument("--methods", nargs="+", default=["kcenter", "herding", "facility_location"])
    parser.add_argument("--budget", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows-per-partition", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--refine-rows", type=int, nargs="+", default=None,
                        help="the Ray engine's refine_rows (default: the engine's); price: one partitioned run each")
    parser.add_argument("--dq-rows", type=int, nargs="+", default=[10_000, 40_000, 100_000])
    parser.add_argument("--reference-rows", type=int, default=10_000)
    parser.add_argument("--dq-dim", type=int, default=768, help="dq: dimension of the 50-cluster rows")
    parser.add_argument("--object-store-gib", type=float, default=4.0)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.scale_out " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command == "generate":
        generate(args.rows, args.data)
    elif args.command == "ray":
        entry = run_ray(args)
        print(json.dumps(entry))
        record([entry], command)
    elif args.command == "local":
        entry = run_local(args)
        print(json.dumps(entry))
        record([entry], command)
    elif args.command == "local-child":
        local_child(args)
    elif args.command == "price":
        record(run_price(args), command)
    elif args.command == "dq":
        record(run_dq(args), command)
    elif args.command == "dq-lazy":
        record(run_lazy(args), command)
    elif args.command == "table" and RECORDS.exists():  # rewrite the Markdown from the records (after a table change)
        (RESULTS / "scale_out.md").write_text(tables(json.loads(RECORDS.read_text())) + "\n")
    if args.command != "local-child":
        print(tables(json.loads(RECORDS.read_text())) if RECORDS.exists() else "no runs recorded yet")


if __name__ == "__main__":
    main()
