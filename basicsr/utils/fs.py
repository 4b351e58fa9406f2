"""Output locations: checked before any work, so a run never computes for nothing."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Union

from basicsr.utils.errors import OutputError

PathLike = Union[str, os.PathLike]


def ensure_writable_dir(path: PathLike, what: str = 'output folder') -> Path:
    """Create folder ``path`` (with parents) and check that a file can be written in it.

    Raises :class:`OutputError` with one line naming ``what`` and the path when the location
    is a file, cannot be created, or is not writable. Returns the path.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{uuid.uuid4().hex}"
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what} {folder} is not writable: {exc.strerror or exc}") from None
    return folder


def ensure_writable_file(path: PathLike, what: str = 'output file') -> Path:
    """Check that file ``path`` can be written (its folder is created and probed; an existing
    folder at ``path`` itself is refused). Returns the path."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{what} {target} is a folder, expected a file path")
    ensure_writable_dir(target.parent if str(target.parent) else Path('.'), f"folder of {what}")
    return target


def check_output_dir(path: PathLike, what: str = 'output folder') -> Path:
    """Check, without creating anything, that folder ``path`` could be created and written.

    The folder itself, or else its nearest existing ancestor, must be a writable folder; a
    file anywhere on the way is refused. For ``--dry-run``-style checks before any work;
    :func:`ensure_writable_dir` then creates and probes it for real.
    """
    folder = Path(path)
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link cannot be created through
            raise OutputError(f"{what} {folder}: {probe} is a broken symbolic link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = '' if probe == folder else f" ({probe} is a file)"
        raise OutputError(f"{what} {folder} cannot be created: exists and is not a folder{where}"
                          if probe == folder else f"{what} {folder} cannot be created{where}")
    target = probe if probe.exists() else Path('.')
    if not os.access(target, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {folder} is not writable ({target}: permission denied)")
    return folder
