"""SIGTERM handled as Ctrl-C, so every entry point stops the same way for both.

A job scheduler, ``timeout`` or ``kill`` sends SIGTERM; without a handler Python dies at once
(status 143, no message, half-written outputs). Inside :func:`sigterm_as_interrupt` SIGTERM
raises :class:`KeyboardInterrupt` in the main thread exactly as Ctrl-C does, so the code that
already saves partial results on Ctrl-C (tables so far, finished frames, a checkpoint) runs
for both, and :func:`basicsr.utils.cli.run_main` prints one line and returns 130.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` in this process.

    Worker processes forked inside the block (DataLoader, multiprocessing pools) inherit the
    handler; there it restores the default action and re-sends the signal, so a worker ends
    quietly as before and only the main process reports. Outside the main thread (where
    signal handlers cannot be set) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handle(signum: int, frame) -> None:
        if os.getpid() != owner:  # a forked worker: die as it would have without us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
