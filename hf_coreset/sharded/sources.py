"""Where the embedding vectors of a sharded selection come from, one shard at a time.

A source lists its shards (cheap: metadata only) and reads the embedding columns of one shard; the driver
never reads vectors. Two kinds:

* :class:`ParquetSource`: a folder (or list) of parquet files; one shard per row group. Rows are numbered
  in the order of the sorted file paths, then row order: that numbering is what the indices refer to.
* :class:`DatasetSource`: a ``datasets.Dataset``; shards are ranges of ``shard_rows`` rows. A dataset
  backed by Arrow files on disk (``load_dataset``, ``load_from_disk``) pickles as file paths, so a worker
  memory-maps its range instead of receiving it.

Both are small, picklable objects: they travel to the workers.

Example:
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"emb": [[float(i), 1.0] for i in range(10)]})
    >>> source = DatasetSource(ds, shard_rows=4)
    >>> [(s.start, s.num_rows) for s in source.shards()]
    [(0, 4), (4, 4), (8, 2)]
    >>> source.read(source.shards()[1], ["emb"])["emb"][:, 0].tolist()
    [4.0, 5.0, 6.0, 7.0]
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CoresetInputError, MissingColumnError
from ..validation import embedding_matrix


@dataclass(frozen=True)
class Shard:
    """Rows ``start .. start + num_rows - 1`` of the source (``part``: a row group of file ``path``)."""

    position: int
    start: int
    num_rows: int
    path: str | None = None
    part: int | None = None


class ParquetSource:
    """Parquet files, read row group by row group with pyarrow.

    Args:
        paths: a folder (every ``*.parquet`` below it), one file, or a list of files.
    """

    def __init__(self, paths: str | os.PathLike | list[str | os.PathLike]):
        self.paths = _parquet_files(paths)

    def shards(self) -> list[Shard]:
        import pyarrow.parquet as pq

        shards, start = [], 0
        for path in self.paths:
            metadata = pq.ParquetFile(path).metadata
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    shards.append(Shard(len(shards), start, rows, path, group))
                    start += rows
        return shards

    def column_names(self) -> list[str]:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.paths[0]).schema_arrow.names

    def read(self, shard: Shard, columns: list[str]) -> dict[str, np.ndarray]:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(shard.path).read_row_group(shard.part, columns=columns)
        return {c: embedding_matrix(table.column(c), c, shard.start, dtype=None) for c in columns}

    def fingerprint(self) -> str:
        """A hash of the files' paths, sizes and modification times."""
        digest = hashlib.sha256()
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:16]


class DatasetSource:
    """A ``datasets.Dataset`` in ranges of ``shard_rows`` rows."""

    def __init__(self, dataset, shard_rows: int = 65_536):
        self.dataset = dataset
        self.shard_rows = shard_rows

    def shards(self) -> list[Shard]:
        starts = range(0, self.dataset.num_rows, self.shard_rows)
        return [Shard(i, start, min(self.shard_rows, self.dataset.num_rows - start)) for i, start in enumerate(starts)]

    def column_names(self) -> list[str]:
        return self.dataset.column_names

    def read(self, shard: Shard, columns: list[str]) -> dict[str, np.ndarray]:
        table = self.dataset.with_format("arrow", columns=columns)[shard.start : shard.start + shard.num_rows]
        return {c: embedding_matrix(table.column(c), c, shard.start, dtype=None) for c in columns}

    def fingerprint(self) -> str:
        return self.dataset._fingerprint


def open_source(data, shard_rows: int = 65_536):
    """A :class:`DatasetSource` for a ``datasets.Dataset``, a :class:`ParquetSource` for paths."""
    import datasets

    if isinstance(data, datasets.Dataset):
        if data.num_rows == 0:
            raise CoresetInputError("The dataset is empty (0 rows): there is nothing to select from.")
        return DatasetSource(data, shard_rows)
    if isinstance(data, (str, os.PathLike, list, tuple)):
        return ParquetSource(data)
    raise CoresetInputError(
        f"A sharded selection reads a datasets.Dataset or parquet files (a folder, a file or a list), "
        f"got {type(data).__name__}."
    )


def check_embedding_columns(source, columns) -> list[str]:
    """The embedding columns as a list, each present in the source (else the usual clear errors)."""
    if not columns or isinstance(columns, str):
        raise CoresetInputError(
            "A sharded selection runs on precomputed vectors: pass embedding_columns=[...] "
            "(a list of column names, one per modality)."
        )
    names = source.column_names()
    for column in columns:
        if column not in names:
            raise MissingColumnError(f"Column {column!r} is not in the data. Its columns are: {names}.")
    return list(columns)


def _parquet_files(paths) -> list[str]:
    if isinstance(paths, (list, tuple)):
        files = [str(p) for p in paths]
    elif Path(paths).is_dir():
        files = sorted(str(p) for p in Path(paths).rglob("*.parquet"))
    else:
        files = [str(paths)]
    missing = [f for f in files if not Path(f).is_file()]
    if not files or missing:
        raise CoresetInputError(
            f"No parquet file at {missing[0] if missing else paths!r}: pass a folder holding *.parquet files, "
            "a parquet file, or a list of them."
        )
    return files
