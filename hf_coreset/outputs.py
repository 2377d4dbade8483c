"""The output folder of ``hf-coreset select``: checked before any work, written all at once, and replaced only
when it is an earlier hf-coreset output.

An hf-coreset output folder holds what ``Dataset.save_to_disk`` writes (``dataset_info.json``, ``state.json``,
``data-XXXXX-of-XXXXX.arrow``), ``selection.json``, the quality report of ``select --evaluate`` or ``evaluate``
(``report.md``, ``report.json``, ``report.png``, ``holdout.json``), and the ``cache-*.arrow`` files ``datasets`` adds
when the folder is loaded and mapped. ``--overwrite`` replaces such a folder and nothing else: not a folder holding any
other file, not the current folder or its parents, not the source or its parents, not the home folder.

The new output is written to a staging folder beside the target; the old one is renamed aside, the new one
renamed into place, and only then the old one deleted, so an interrupt at any point leaves either the old or
the new output (plus at most a hidden staging or aside folder beside it), never neither.

Example:
    >>> import datasets, tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp()) / "out"
    >>> subset = datasets.Dataset.from_dict({"x": [1, 2]})
    >>> write_atomically(subset, "{}", folder, overwrite=False)
    >>> is_coreset_output(folder), foreign_files(folder)
    (True, [])
    >>> write_atomically(subset, "{}", folder, overwrite=True)   # replaces the earlier output
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from .errors import CoresetInputError

logger = logging.getLogger(__name__)

SELECTION_FILE = "selection.json"
# Files of an hf-coreset output: selection.json, the quality report, what save_to_disk writes, and the caches of
# a later .map().
OUTPUT_FILE_PATTERN = re.compile(
    r"selection\.json|report\.(md|json|png)|holdout\.json|dataset_info\.json|state\.json|data-\d+-of-\d+\.arrow"
    r"|cache-[\w.-]+\.arrow"
)


def is_coreset_output(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a folder holding ``selection.json`` and ``dataset_info.json``, as every
    ``hf-coreset select`` output does."""
    folder = Path(folder)
    return folder.is_dir() and all((folder / name).is_file() for name in (SELECTION_FILE, "dataset_info.json"))


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """Names in ``folder`` that hf-coreset does not write (sub-folders included), sorted."""
    return sorted(entry.name for entry in Path(folder).iterdir()
                  if not (entry.is_file() and OUTPUT_FILE_PATTERN.fullmatch(entry.name)))


def check_output_target(output: str | os.PathLike, *, overwrite: bool,
                        source: str | os.PathLike | None = None) -> Path:
    """Refuse an output folder that cannot or must not be written, before any work; return it resolved.

    Refused: a file; a folder that exists without ``overwrite``; with ``overwrite``, anything but an earlier
    hf-coreset output holding only its own files; the filesystem root, the current folder, the home folder,
    the ``source`` and any parent of them; a place whose nearest existing folder is not writable.
    """
    path = Path(output).expanduser().resolve()
    if path.exists():
        if not path.is_dir():
            raise CoresetInputError(f"--output {output} is a file, not a folder: choose a folder path.")
        protected = _protected_reason(path, source)
        if protected:
            raise CoresetInputError(
                f"Refusing --output {output}: it is {protected}. --overwrite only ever replaces an earlier "
                "hf-coreset output; choose a new folder, e.g. --output coreset_out."
            )
        if not overwrite:
            raise CoresetInputError(
                f"{output} exists; pass --overwrite to replace it (only an earlier hf-coreset output is ever "
                "replaced), or choose another --output."
            )
        if not is_coreset_output(path):
            raise CoresetInputError(
                f"--overwrite refused: {output} is not an hf-coreset output (no {SELECTION_FILE} and "
                "dataset_info.json), so replacing it would delete files hf-coreset did not write. Choose "
                "another --output."
            )
        extra = foreign_files(path)
        if extra:
            shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
            raise CoresetInputError(
                f"--overwrite refused: {output} holds {len(extra)} file(s) hf-coreset did not write ({shown}); "
                "move them out, or choose another --output."
            )
    _check_writable(path, output)
    return path


def write_atomically(subset, selection_json: str, output: str | os.PathLike, *, overwrite: bool,
                     source: str | os.PathLike | None = None, extra_files: dict[str, bytes] | None = None) -> None:
    """Save ``subset``, ``selection.json`` and ``extra_files`` (``{name: content}``, e.g. the quality report) to
    ``output`` all at once (see the module docstring).

    The target is checked again (:func:`check_output_target`): it may have changed during the selection.
    Folders get the user's umask.
    """
    path = check_output_target(output, overwrite=overwrite, source=source)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "staging")
    staging.mkdir()  # mkdir honours the umask (tempfile.mkdtemp would make it 0700)
    try:
        subset.save_to_disk(str(staging))
        (staging / SELECTION_FILE).write_text(selection_json)
        for name, content in (extra_files or {}).items():
            (staging / name).write_bytes(content)
        if path.exists():
            _swap(staging, path)
        else:
            os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only left when something failed


def write_files(folder: Path, files: dict[str, bytes], overwrite: bool = True) -> None:
    """Write ``files`` (relative paths, subfolders allowed) into ``folder``, each one replaced at once (written
    beside, then renamed into place); with ``overwrite=False`` nothing is written if any of them exists."""
    existing = [name for name in files if (folder / name).exists()]
    if existing and not overwrite:
        raise CoresetInputError(f"{folder} already holds {existing}; pass --overwrite (overwrite=True in Python) "
                                "to replace them, or choose another folder.")
    for name, data in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, target)


def _swap(staging: Path, path: Path) -> None:
    """Old output aside, new one in, old one deleted: at every moment one complete output sits at ``path``
    or beside it."""
    aside = _sibling(path, "old")
    os.rename(path, aside)
    try:
        os.rename(staging, path)
    except BaseException:  # an interrupt included: put the old output back
        os.rename(aside, path)
        raise
    try:
        shutil.rmtree(aside)
    except OSError as err:
        logger.warning("The new output is in %s, but the previous one, moved to %s, could not be deleted (%s); "
                       "delete it yourself.", path, aside, err)


def _sibling(path: Path, role: str) -> Path:
    return path.parent / f".{path.name}.{role}-{uuid.uuid4().hex[:8]}"


def _protected_reason(path: Path, source: str | os.PathLike | None) -> str | None:
    """Why ``path`` must never be replaced (a description), or None."""
    if path.parent == path:
        return "the filesystem root"
    places = [("the current folder", Path.cwd()), ("your home folder", Path.home())]
    if source is not None and Path(source).expanduser().exists():
        places.append(("the source", Path(source)))
    for name, place in places:
        place = place.expanduser().resolve()
        if place == path:
            return name
        if place.is_relative_to(path):
            return f"a parent of {name}"
    return None


def _check_writable(path: Path, output: str | os.PathLike) -> None:
    """The nearest existing folder on the way to ``path`` must be a writable folder (renames happen there)."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CoresetInputError(f"--output {output}: {parent} is a file, not a folder; choose another --output.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CoresetInputError(
            f"Cannot write --output {output}: {parent} is not writable (permission denied). Choose a folder you "
            "can write to."
        )
