"""Fetch the public visible/infrared sets this project reports on, laid out as the option files expect.

``python scripts/download_data.py roadscene tno vifb [--to datasets] [--from MIRROR]`` (also the
console command ``dgfusion-download``) fetches every file listed in the shipped manifest
(``basicsr/data/manifest/public_sets.csv``) from its GitHub repository at a pinned commit
(``https://raw.githubusercontent.com/<repository>/<commit>/<path>``), checks its size and
SHA-256, and writes it under ``--to``:

* ``roadscene``: ``RoadScene/{train,val}/{vis,ir}/`` (179 + 20 pairs, this project's split);
* ``tno``: ``TNO/{vis,ir}/`` (10 pairs) and ``TNO/fused/SeAFusion/`` (that method's results);
* ``vifb``: ``VIFB/{vis,ir}/`` (21 pairs) and ``VIFB/fused/<method>/`` for IFCNN, SeAFusion,
  U2Fusion and VSMWLS.

Each file is written to a hidden temporary name beside its target and renamed into place only
once its hash is right, so an interrupted or failed transfer never leaves a partial file; a rerun
skips the files already present with the right hash and fetches the rest. ``--from DIR`` copies
from a local mirror instead of the network: a folder laid out like the upstream snapshot
(``roadscene/``, ``tno/``, ``vifb/``, ``vifb_fused/``: the manifest's ``mirror_path``) or like
``--to`` itself. The environment variable ``DGFUSION_DOWNLOAD_BASE_URL`` replaces the
``https://raw.githubusercontent.com`` prefix (a local test server or an HTTP mirror).

Exit status: 0 every file in place; 1 some files failed (each named on stderr, the others are
kept); 2 bad arguments (unknown set, unusable ``--to`` or ``--from``); 130 interrupted (the
files already verified are kept; run the same command again to resume).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, List, Optional, Sequence, Tuple, Union

from basicsr.utils.cli import run_main
from basicsr.utils.errors import (EXIT_ITEMS_FAILED, EXIT_OK, ConfigError, DataError,
                                  Interrupted)
from basicsr.utils.fs import ensure_writable_dir
from basicsr.utils.logger import console
from basicsr.utils.registry import unknown_name

logger = logging.getLogger(__name__)

MANIFEST = Path(__file__).resolve().parent / 'manifest' / 'public_sets.csv'
MANIFEST_COLUMNS = ('set', 'path', 'mirror_path', 'repository', 'commit', 'source_path',
                    'sha256', 'bytes')
DEFAULT_ROOT = 'datasets'
DEFAULT_BASE_URL = 'https://raw.githubusercontent.com'
BASE_URL_ENV = 'DGFUSION_DOWNLOAD_BASE_URL'
COMMAND = 'python scripts/download_data.py'
TIMEOUT_S = 60.0
CHUNK = 1 << 16
MAX_UNREACHABLE = 3  # consecutive files without any answer from the server stop the run

PathLike = Union[str, os.PathLike]
Opener = Callable[['Entry'], BinaryIO]


class FetchError(Exception):
    """One file could not be fetched or verified; the message says why (one line)."""


class Unreachable(FetchError):
    """The server could not be reached at all (no HTTP answer): likely every file fails so."""


@dataclass(frozen=True)
class Entry:
    """One file of a public set: where it goes (``path``, relative to the data root), where it
    is in a local mirror (``mirror_path``) and upstream (``repository`` at ``commit``,
    ``source_path``), and what it must be (``sha256``, ``size`` in bytes)."""

    set: str
    path: str
    mirror_path: str
    repository: str
    commit: str
    source_path: str
    sha256: str
    size: int

    def url(self, base: str = DEFAULT_BASE_URL) -> str:
        """``<base>/<repository>/<commit>/<source_path>`` with the path percent-encoded."""
        return '/'.join([base.rstrip('/'), self.repository, self.commit,
                         urllib.parse.quote(self.source_path)])


def read_manifest(path: PathLike = MANIFEST) -> List[Entry]:
    """The manifest's entries, in file order.

    Raises:
        DataError: the file is missing, lacks a column, or a row has a bad hash, size or path
            (named by line number).
    """
    path = Path(path)
    try:
        with open(path, newline='', encoding='utf-8') as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(enumerate(reader, start=2))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the download manifest ({exc.strerror or exc})") from None
    entries = []
    for line, row in rows:
        digest, size, target = row['sha256'].lower(), row['bytes'], PurePosixPath(row['path'])
        if (len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest)
                or not size.isdigit() or target.is_absolute() or '..' in target.parts):
            raise DataError(f"{path}:{line}: expected a 64-digit SHA-256, a byte count and a "
                            f"relative path, got {row['sha256']!r}, {size!r}, {row['path']!r}")
        entries.append(Entry(row['set'], row['path'], row['mirror_path'], row['repository'],
                             row['commit'], row['source_path'], digest, int(size)))
    return entries


def set_names(entries: Sequence[Entry]) -> List[str]:
    """The set names of ``entries``, in first-seen order."""
    return list(dict.fromkeys(e.set for e in entries))


def select(entries: Sequence[Entry], names: Sequence[str]) -> List[Entry]:
    """The entries of the named sets (``all``: every set); ConfigError for an unknown name."""
    known = set_names(entries)
    for name in names:
        if name != 'all' and name not in known:
            raise ConfigError(unknown_name('set', name, known + ['all']))
    chosen = set(known) if 'all' in names else set(names)
    return [e for e in entries if e.set in chosen]


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def is_present(entry: Entry, root: Path) -> bool:
    """Whether ``root/entry.path`` exists with the entry's size and SHA-256."""
    target = root / entry.path
    return (target.is_file() and target.stat().st_size == entry.size
            and file_sha256(target) == entry.sha256)


def download_hint(folder: PathLike, entries: Optional[Sequence[Entry]] = None) -> Optional[str]:
    """The command that provides a data folder of the manifest's layout, else None.

    ``datasets/TNO/vis`` -> ``python scripts/download_data.py tno``; a folder under another
    root gets ``--to``: ``/data/TNO/vis`` -> ``... tno --to /data``.
    """
    parts = Path(folder).parts
    if not parts:
        return None
    try:
        entries = read_manifest() if entries is None else entries
    except DataError:
        return None
    for start in range(len(parts)):
        tail = parts[start:]
        for entry in entries:
            if PurePosixPath(entry.path).parts[:len(tail)] == tail and len(tail) < len(
                    PurePosixPath(entry.path).parts):
                root = Path(*parts[:start]) if start else Path('.')
                to = '' if root == Path(DEFAULT_ROOT) else f" --to {root}"
                return f"{COMMAND} {entry.set}{to}"
    return None


# ---------------------------------------------------------------- where the bytes come from

def mirror_opener(mirror: Path) -> Opener:
    """Open an entry's file in a local mirror laid out like the upstream snapshot
    (``mirror_path``) or like the data root (``path``)."""
    def open_entry(entry: Entry) -> BinaryIO:
        for rel in (entry.mirror_path, entry.path):
            candidate = mirror / rel
            if rel and candidate.is_file():
                try:
                    return open(candidate, 'rb')
                except OSError as exc:
                    raise FetchError(f"cannot read {candidate}: {exc.strerror or exc}") from None
        raise FetchError(f"not in the mirror {mirror} (looked for {entry.mirror_path} and {entry.path})")
    return open_entry


def http_opener(base: str, timeout: float = TIMEOUT_S) -> Opener:
    """Open an entry's URL under ``base`` (http or https only)."""
    def open_entry(entry: Entry) -> BinaryIO:
        url = entry.url(base)
        try:
            return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (scheme checked)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise FetchError(f"HTTP {exc.code} {exc.reason} from {url}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, 'reason', None) or exc
            raise Unreachable(f"cannot fetch {url}: {reason}") from None
    return open_entry


def base_url() -> str:
    """The URL prefix: ``DGFUSION_DOWNLOAD_BASE_URL`` or raw.githubusercontent.com."""
    base = os.environ.get(BASE_URL_ENV, '').strip() or DEFAULT_BASE_URL
    if urllib.parse.urlsplit(base).scheme not in ('http', 'https'):
        raise ConfigError(f"{BASE_URL_ENV}: expected an http:// or https:// URL, got {base!r}")
    return base


# ---------------------------------------------------------------- one file

def remove_partial_files(target: Path) -> None:
    """Delete the temporary files that a killed run left beside ``target``."""
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{target.name}.*.part"):
            stale.unlink(missing_ok=True)


def copy_verified(source: BinaryIO, out: BinaryIO, entry: Entry,
                  progress: Callable[[int], object]) -> None:
    """Copy ``source`` to ``out`` in chunks; FetchError unless exactly ``entry.size`` bytes
    with ``entry.sha256`` arrived."""
    digest, received = hashlib.sha256(), 0
    while True:
        try:
            chunk = source.read(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"transfer interrupted after {received} of {entry.size} bytes "
                             f"({type(exc).__name__})") from None
        if not chunk:
            break
        received += len(chunk)
        if received > entry.size:
            raise FetchError(f"more than the expected {entry.size} bytes")
        out.write(chunk)
        digest.update(chunk)
        progress(len(chunk))
    if received != entry.size:
        raise FetchError(f"transfer interrupted after {received} of {entry.size} bytes")
    if digest.hexdigest() != entry.sha256:
        raise FetchError(f"SHA-256 mismatch: expected {entry.sha256}, got {digest.hexdigest()}")


def fetch(entry: Entry, root: Path, opener: Opener, progress: Callable[[int], object]) -> None:
    """Copy one entry from ``opener`` to ``root/entry.path`` through a temporary file, checking
    its size and SHA-256 before the rename; ``progress(n)`` is called per chunk of n bytes.
    Folders are created only once the source answers.

    Raises:
        FetchError: the source failed, the transfer was cut short or ran long, or the hash
            differs; nothing is left at the target's temporary name.
    """
    target = root / entry.path
    remove_partial_files(target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        with closing(opener(entry)) as source:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, 'xb') as out:
                copy_verified(source, out, entry, progress)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- a whole download

@dataclass
class Summary:
    """What a download did: files fetched, files already in place, and failures (path, why)."""

    fetched: int = 0
    present: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)


def download(entries: Sequence[Entry], root: PathLike, opener: Opener,
             show_progress: Optional[bool] = None) -> Summary:
    """Put every entry under ``root``: skip those present with the right hash, fetch the rest.

    A failed file is reported (``failed: <path>: <why>`` on stderr) and the others continue,
    unless ``MAX_UNREACHABLE`` files in a row got no answer at all (no network): then the rest
    are reported as not tried. Ctrl-C removes the file in transfer and raises
    :class:`Interrupted`.
    """
    from tqdm import tqdm
    root = Path(root)
    summary = Summary()
    todo = []
    for entry in entries:
        if is_present(entry, root):
            summary.present += 1
        else:
            todo.append(entry)
    bar = tqdm(total=sum(e.size for e in todo), unit='B', unit_scale=True, unit_divisor=1024,
               desc='download', disable=None if show_progress is None else not show_progress)
    unreachable = 0
    try:
        for k, entry in enumerate(todo):
            if unreachable >= MAX_UNREACHABLE:
                rest = todo[k:]
                summary.failed += [(e.path, 'not tried') for e in rest]
                bar.write(f"failed: {len(rest)} more file(s) not tried: the server did not answer "
                          f"{unreachable} times in a row", file=sys.stderr)
                break
            bar.set_postfix_str(entry.path, refresh=False)
            try:
                fetch(entry, root, opener, bar.update)
                summary.fetched += 1
                unreachable = 0
            except FetchError as exc:
                unreachable = unreachable + 1 if isinstance(exc, Unreachable) else 0
                summary.failed.append((entry.path, str(exc)))
                bar.write(f"failed: {entry.path}: {exc}", file=sys.stderr)
            except OSError as exc:  # the target side: disk full, permissions
                summary.failed.append((entry.path, f"cannot write: {exc.strerror or exc}"))
                bar.write(f"failed: {entry.path}: cannot write: {exc.strerror or exc}",
                          file=sys.stderr)
    except KeyboardInterrupt:
        raise Interrupted(f"{summary.present + summary.fetched} of {len(entries)} files verified "
                          f"under {root}; run the same command again to resume") from None
    finally:
        bar.close()
    return summary


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='download_data.py', description=__doc__.splitlines()[0],
        epilog='Licences and citations of each set: datasets/README.md.')
    parser.add_argument('sets', nargs='+', metavar='SET',
                        help="sets to fetch: roadscene, tno, vifb, or all")
    parser.add_argument('--to', default=DEFAULT_ROOT,
                        help=f"data root the option files read (default: {DEFAULT_ROOT})")
    parser.add_argument('--from', dest='mirror', default=None, metavar='DIR',
                        help='copy from this local mirror instead of the network')
    parser.add_argument('--manifest', default=str(MANIFEST),
                        help='file list with hashes (default: the one shipped with the package)')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """The command's work; exit status 0 or 1 (setup problems raise)."""
    entries = select(read_manifest(args.manifest), args.sets)
    if args.mirror is not None:
        mirror = Path(args.mirror)
        if not mirror.is_dir():
            raise ConfigError(f"--from: {mirror} is not a folder (expected a local mirror of the sets)")
        opener, where = mirror_opener(mirror), str(mirror)
    else:
        base = base_url()
        opener, where = http_opener(base), base
    root = ensure_writable_dir(args.to, '--to folder')
    names = set_names(entries)
    console(f"{len(entries)} files of {', '.join(names)} from {where} into {root}")
    summary = download(entries, root, opener)
    console(f"{summary.fetched} fetched, {summary.present} already in place, "
            f"{len(summary.failed)} failed")
    if summary.failed:
        console(f"{len(summary.failed)} file(s) failed: "
                + ', '.join(path for path, _ in summary.failed[:10])
                + (' ...' if len(summary.failed) > 10 else '')
                + '; run the same command again to retry them', err=True)
        return EXIT_ITEMS_FAILED
    console('cite the sets you use and respect their licences (datasets/README.md)')
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line (``scripts/download_data.py``, ``dgfusion-download``); returns the exit status."""
    return run_main(lambda: run(parse_args(argv)))


if __name__ == '__main__':
    sys.exit(main())
