"""Output locations: checked before any work, so a run never computes for nothing and never
writes over what it reads."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

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


# ---------------------------------------------------------------- outputs apart from inputs

Located = Tuple[str, PathLike]  # (what the user called it: '--out', 'datasets.train.dataroot_ir', path)
_RELATIONS = {'same': 'is the same location as', 'inside': 'lies inside', 'contains': 'contains',
              'linked': 'is a hard link of a file in'}


def _chain(path: PathLike) -> List[Path]:
    """``path`` made absolute with symbolic links and ``..`` resolved, then its ancestors."""
    full = Path(path).expanduser().resolve()
    return [full, *full.parents]


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    """``(st_dev, st_ino)`` of an existing path (a hard link or a bind mount shares it)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    ida = _identity(a)
    return ida is not None and ida == _identity(b)


def _linked_into(file: Path, folder: Path) -> bool:
    """True when the existing file ``file`` is a hard link of a file directly in ``folder``."""
    try:
        st = file.stat()
        if st.st_nlink < 2 or not folder.is_dir():
            return False
        with os.scandir(folder) as entries:
            return any(e.is_file() and (e.stat().st_dev, e.stat().st_ino) == (st.st_dev, st.st_ino)
                       for e in entries)
    except OSError:
        return False


def overlap(output: PathLike, source: PathLike) -> Optional[str]:
    """How location ``output`` overlaps ``source``: ``'same'``, ``'inside'`` (output within
    the source folder), ``'contains'`` (source within the output folder), ``'linked'`` (output
    is a hard link of a file in the source folder), or None.

    Both are compared after resolving relative parts, ``..`` and symbolic links, and by
    ``(st_dev, st_ino)`` where they exist, so a hard link, a bind mount or another spelling of
    a folder on a case-insensitive file system is the same location.
    """
    out, src = _chain(output), _chain(source)
    if _same(out[0], src[0]):
        return 'same'
    if any(_same(parent, src[0]) for parent in out[1:]):
        return 'inside'
    if any(_same(out[0], parent) for parent in src[1:]):
        return 'contains'
    if out[0].is_file() and _linked_into(out[0], src[0]):
        return 'linked'
    return None


def overlap_problem(output: Located, sources: Iterable[Located]) -> Optional[str]:
    """The one-line problem (naming both locations) when ``output`` is, lies inside or
    contains one of ``sources``; None when it is apart from all of them. Sources given as
    None or empty are skipped."""
    out_what, out = output
    for src_what, src in sources:
        if src is None or str(src) in ('', 'auto', 'none'):
            continue
        relation = overlap(out, src)
        if relation is not None:
            return (f"{out_what} {out} {_RELATIONS[relation]} {src_what} {src}: an output may "
                    f"never be, contain or lie inside an input; choose another location")
    return None


def check_outputs_apart(outputs: Iterable[Located], sources: Iterable[Located]) -> None:
    """Refuse, before any work, an output location that is, contains or lies inside an input.

    Raises:
        OutputError: one line naming the output and the input, e.g. ``--out data/vis is the
            same location as --vis data/vis: ...``.
    """
    sources = list(sources)
    for output in outputs:
        problem = overlap_problem(output, sources)
        if problem is not None:
            raise OutputError(problem)
