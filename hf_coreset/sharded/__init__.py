"""Selection over data whose vectors do not fit one process: shard by shard, partition by partition, on Ray.

``pip install "hf-coreset[ray]"``, then either

* ``hf_coreset.select_coreset(ds, method, budget, embedding_columns=[...], engine="ray")`` for a
  ``datasets.Dataset`` (returns the subset, like every selection), or
* :func:`select_with_ray` for a ``Dataset`` or a folder of parquet files (returns the
  :class:`~hf_coreset.SelectionResult`; indices number the rows of the sorted files one after the other).

See ``docs/scaling.md`` for what each stage reads, writes and moves, and the measured throughput.
"""

from .partition import (
    assign_partitions,
    fit_partitions,
    interleave,
    merge_by_gain,
    partition_seed,
    proposal_counts,
    sample_rows,
)
from .ray_engine import select_with_ray
from .sources import DatasetSource, ParquetSource

__all__ = ["DatasetSource", "ParquetSource", "assign_partitions", "fit_partitions", "interleave", "merge_by_gain",
           "partition_seed", "proposal_counts", "sample_rows", "select_with_ray"]
