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
