"""The feature cache: one Arrow file per (data, column, encoder, ...), that is fresh, whole, and built once.

* **Fresh.** The caller's key covers the data's fingerprint, which for a column of image *paths* covers the path
  strings only. :func:`image_file_state` adds each such file's size and modification time, so an image replaced
  at the same path is encoded again (at the cost of one ``stat`` per file and call).
* **Whole.** :func:`read_cache` reads a cache file back only if it opens, validates, and has the expected rows
  and columns; a truncated or corrupt file is named in a warning, deleted and built again.
* **Resumable.** :func:`cached_map` writes checkpoints (``CHECKPOINT_ROWS`` rows, whole batches) into a work
  folder beside the cache file, ``<cache file>.partial/``, and the cache file appears in one rename when every
  row is done. A run that is killed or interrupted leaves only that folder; the next run with the same key
  resumes after the last checkpoint, then deletes it. A run stopped by an input error (an unreadable image with
  ``on_error="raise"``, an encoder returning the wrong shape) deletes it at once: fixing the data or the
  encoder changes the key, so those checkpoints could never be resumed. Processes building the same file take
  turns (a lock file inside the work folder), so the work is done once.

Example:
    >>> import datasets, tempfile, os
    >>> features = datasets.Features({"length": datasets.Value("int64")})
    >>> lengths = lambda batch, rows: {"length": [len(t) for t in batch["text"]]}
    >>> rows = datasets.Dataset.from_dict({"text": ["a", "bb", "ccc"]})
    >>> path = os.path.join(tempfile.mkdtemp(), "lengths.arrow")
    >>> list(cached_map(rows, lengths, path, features=features, batch_size=2)[0]["length"])
    [1, 2, 3]
    >>> cached_map(rows, lengths, path, features=features, batch_size=2)[1]   # second call: a cache hit
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets.utils import tqdm as hf_tqdm
from filelock import FileLock

from ..errors import CoresetInputError

logger = logging.getLogger(__name__)

# Rows per checkpoint (rounded up to whole batches): a killed run loses at most this much work.
CHECKPOINT_ROWS = 256
_CHECKPOINT_NAME = re.compile(r"(\d{12})-(\d{12})\.arrow")
_LOCK_NAME = "lock"


def cached_map(
    rows: datasets.Dataset,
    function: Callable[[dict, list[int]], dict],
    cache_file: str,
    *,
    features: datasets.Features,
    batch_size: int,
    desc: str | None = None,
) -> tuple[datasets.Dataset, bool]:
    """``function(batch, row_indices) -> columns`` over ``rows`` in batches, written to ``cache_file``; or the
    cache file itself when it is already there and whole. Returns (the dataset read from the file, cache hit)."""
    cached = read_cache(cache_file, rows.num_rows, features)
    if cached is not None:
        return cached, True
    work = f"{cache_file}.partial"
    os.makedirs(work, exist_ok=True)
    with FileLock(os.path.join(work, _LOCK_NAME)):
        hit = read_cache(cache_file, rows.num_rows, features) is not None  # another process may have built it
        if not hit:
            try:
                _build(rows, function, work, cache_file, features, batch_size, desc)
            except CoresetInputError:  # the data or the encoder must change, and with them the key
                shutil.rmtree(work, ignore_errors=True)
                raise
        shutil.rmtree(work, ignore_errors=True)
    cached = read_cache(cache_file, rows.num_rows, features)
    if cached is None:
        raise CoresetInputError(f"The feature cache file {cache_file} was just written but does not read back.")
    return cached, hit


def read_cache(cache_file: str, n_rows: int, features: datasets.Features) -> datasets.Dataset | None:
    """The cache file as a dataset; None when it does not exist, or when it is truncated or corrupt (then it is
    named in a warning and deleted, so that it is built again)."""
    if not os.path.exists(cache_file):
        return None
    try:
        cached = datasets.Dataset.from_file(cache_file)
        cached.data.table.validate(full=True)
        problem = (f"{cached.num_rows} rows instead of {n_rows}" if cached.num_rows != n_rows
                   else f"columns {cached.features} instead of {features}" if cached.features != features
                   else None)
    except (pa.ArrowException, OSError, ValueError) as err:  # truncated or overwritten with something else
        problem = f"{type(err).__name__}: {err}"
    if problem is None:
        return cached
    logger.warning("The feature cache file %s is corrupt (%s): deleting it and encoding again.", cache_file, problem)
    try:
        os.remove(cache_file)
    except OSError as err:
        raise CoresetInputError(
            f"The feature cache file {cache_file} is corrupt ({problem}) and cannot be deleted ({err}): delete it, "
            "or pass another cache_dir."
        ) from err
    return None


def image_file_state(dataset: datasets.Dataset, column: str) -> str | None:
    """A hash of (path, size, modification time) of every image file ``column`` refers to by path only (no
    bytes stored), over the dataset's whole underlying table; None when no cell refers to a file.

    Example:
        >>> import datasets
        >>> image_file_state(datasets.Dataset.from_dict({"image": [b"raw bytes"]}), "image") is None
        True
    """
    paths = _path_only_cells(dataset.data.column(column))
    if not paths:
        return None
    hasher = hashlib.blake2b(digest_size=16)
    for path in paths:
        try:
            stat = os.stat(path)
            hasher.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:  # a missing file is part of the state too (it is reported as unreadable)
            hasher.update(f"{path}\0missing\n".encode())
    return hasher.hexdigest()


def _path_only_cells(cells: pa.ChunkedArray) -> list[str]:
    """Paths of the cells that hold a file path and no bytes (an Image feature's struct, or plain strings),
    also inside list cells (several images per row)."""
    if pa.types.is_list(cells.type) or pa.types.is_large_list(cells.type):
        return _path_only_cells(pa.chunked_array([pc.list_flatten(chunk) for chunk in cells.chunks],
                                                 type=cells.type.value_type))
    if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
        return [path for path in cells.to_pylist() if path is not None]
    if not pa.types.is_struct(cells.type) or cells.type.get_field_index("path") < 0:
        return []
    paths = pc.struct_field(cells, "path")
    if cells.type.get_field_index("bytes") >= 0:
        paths = pc.if_else(pc.is_null(pc.struct_field(cells, "bytes")), paths, None)
    return [path for path in paths.to_pylist() if path is not None]


def _build(rows, function, work: str, cache_file: str, features: datasets.Features, batch_size: int,
           desc: str | None) -> None:
    """Encode the rows after the last checkpoint in ``work``, a checkpoint file at a time, then join them all
    into ``cache_file`` with one rename."""
    schema = features.arrow_schema
    rows = rows.with_format(None)
    done = _resume_point(work, schema)
    step = batch_size * -(-CHECKPOINT_ROWS // batch_size)  # whole batches, at least CHECKPOINT_ROWS rows
    with hf_tqdm(total=rows.num_rows, initial=done, unit=" examples", desc=desc) as progress:
        for start in range(done, rows.num_rows, step):
            stop = min(start + step, rows.num_rows)
            batches = []
            for first in range(start, stop, batch_size):
                last = min(first + batch_size, stop)
                columns = function(rows[first:last], list(range(first, last)))
                batches.append(pa.RecordBatch.from_pydict(columns, schema=schema))
                progress.update(last - first)
            _write_stream(os.path.join(work, f"{start:012d}-{stop:012d}.arrow"), schema, batches)
    _write_stream(cache_file, schema, (batch for name in _checkpoints(work) for batch in _read_stream(name)),
                  staging=os.path.join(work, "joined.tmp"))


def _resume_point(work: str, schema: pa.Schema) -> int:
    """Rows already encoded by whole, readable checkpoints from row 0 on; anything else in ``work`` (a checkpoint
    being written when the run stopped, one that does not follow on, one that does not read) is deleted."""
    done = 0
    for path in _checkpoints(work):
        start, stop = (int(part) for part in _CHECKPOINT_NAME.fullmatch(os.path.basename(path)).groups())
        try:
            readable = start == done and pa.ipc.open_stream(path).read_all().num_rows == stop - start
        except (pa.ArrowException, OSError):
            readable = False
        if readable:
            done = stop
        else:
            os.remove(path)
    for name in os.listdir(work):
        if name != _LOCK_NAME and not _CHECKPOINT_NAME.fullmatch(name):
            os.remove(os.path.join(work, name))
    if done:
        logger.info("Resuming the encoding after row %d from the checkpoints in %s.", done, work)
    return done


def _checkpoints(work: str) -> list[str]:
    return sorted(os.path.join(work, name) for name in os.listdir(work) if _CHECKPOINT_NAME.fullmatch(name))


def _read_stream(path: str):
    yield from pa.ipc.open_stream(path)


def _write_stream(path: str, schema: pa.Schema, batches, staging: str | None = None) -> None:
    """Write an Arrow stream file under a temporary name, then rename it: ``path`` is whole or absent."""
    staging = staging or f"{path}.tmp"
    with pa.OSFile(staging, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    os.replace(staging, path)
