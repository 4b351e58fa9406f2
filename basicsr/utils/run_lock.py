"""One live run per experiment folder: a lock file naming its holder (PID and host).

``<experiment folder>/.run.lock`` holds ``pid``, ``host`` and ``started`` of the run that
holds the folder. A second run refuses in one line naming the holder. A lock
left by a process that no longer exists on this host (killed, crashed) is stale: it is taken
over with a warning. A lock from another host is never taken over (its process cannot be
checked from here): remove the file by hand once that run is known to be gone.
"""
from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Dict, Optional

from basicsr.utils.errors import RunLockError

try:  # flock: POSIX only; elsewhere the PID check alone decides
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

LOCK_NAME = '.run.lock'


def _process_start(pid: int) -> Optional[str]:
    """Start time of ``pid`` (Linux ``/proc``), to tell a reused PID from the holder."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
        return stat.rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: Optional[str]) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    now = _process_start(pid)
    return start is None or now is None or now == start


def read_lock(folder: Path) -> Optional[Dict[str, str]]:
    """The holder recorded in ``folder``'s lock, or ``None`` when there is no lock."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding='utf-8')
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    return dict(line.split('=', 1) for line in text.splitlines() if '=' in line)


def holder_state(holder: Dict[str, str]) -> str:
    """'live', 'stale' (dead process on this host) or 'foreign' (another host, unknown)."""
    try:
        pid = int(holder.get('pid', ''))
    except ValueError:
        return 'stale'  # unreadable (e.g. a crash while writing it): nobody can hold it
    if holder.get('host') != socket.gethostname():
        return 'foreign'
    return 'live' if _alive(pid, holder.get('start') or None) else 'stale'


def describe(holder: Dict[str, str]) -> str:
    return (f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}")


def check_unlocked(folder: Path) -> None:
    """Raise :class:`RunLockError` when a live (or foreign) run holds ``folder``; read-only."""
    holder = read_lock(folder)
    if holder is None:
        return
    state = holder_state(holder)
    if state == 'live':
        raise RunLockError(f"{folder} is in use by another run ({describe(holder)}); wait for it, "
                           f"stop it, or choose another name")
    if state == 'foreign':
        raise RunLockError(f"{folder} is locked by a run on another host ({describe(holder)}); if "
                           f"that run is gone, delete {Path(folder) / LOCK_NAME}")


class RunLock:
    """Exclusive hold on an experiment folder for this process.

    The lock file is also ``flock``-ed while held, so two runs starting at the same moment
    cannot both win, and a killed holder's lock is free at once (its PID then names it stale).

    Example:
        >>> lock = RunLock(Path('experiments/x')).acquire()   # RunLockError if held
        >>> lock.release()
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = None
        self.taken_over: Optional[Dict[str, str]] = None  # holder of a stale lock replaced

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open_locked(self) -> Optional[int]:
        """Open and flock the lock file; ``None`` when the file was replaced meanwhile."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunLockError(f"{self.folder} is in use by another run "
                                   f"({describe(read_lock(self.folder) or {})}); wait for it, stop "
                                   f"it, or choose another name") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # released (unlinked) by its holder between our open and flock
            os.close(fd)
            return None
        return fd

    def acquire(self) -> 'RunLock':
        """Create the folder and take the lock; take over a stale one with a warning.

        Raises:
            RunLockError: a live run on this host, or any run on another host, holds it.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = self._open_locked()
            if fd is None:
                continue
            text = os.read(fd, 4096).decode('utf-8', 'replace')
            holder = dict(line.split('=', 1) for line in text.splitlines() if '=' in line)
            if holder:
                state = holder_state(holder)
                if state != 'stale':
                    os.close(fd)
                    check_unlocked(self.folder)  # raises with the holder named
                self.taken_over = holder  # the caller logs it once its log file is open
            pid = os.getpid()
            record = (f"pid={pid}\nhost={socket.gethostname()}\nstart={_process_start(pid) or ''}\n"
                      f"started={datetime.now().isoformat(timespec='seconds')}\n")
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode('utf-8'), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise RunLockError(f"{self.folder}: could not take the run lock {self.path}")

    def moved_to(self, folder: Path) -> None:
        """Follow the folder after a rename (the lock file moved with it)."""
        self.folder, self.path = Path(folder), Path(folder) / LOCK_NAME

    def release(self) -> None:
        """Remove the lock file and let go of it (no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)
