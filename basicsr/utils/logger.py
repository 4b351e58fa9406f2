"""Logging set-up: console + file on rank 0, tensorboard writer, JSON-lines training log."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from basicsr.utils.dist import is_main

FORMAT = '%(asctime)s %(levelname)s: %(message)s'


class _StdoutHandler(logging.StreamHandler):
    """Console handler that writes to the ``sys.stdout`` of the moment (callers such as test
    runners and notebooks swap it; a stream captured at set-up may be closed by then)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def setup_logging(log_file: Optional[Path] = None, level: int = logging.INFO) -> logging.Logger:
    """Configure the ``basicsr`` logger; non-main ranks only log warnings to the console."""
    root = logging.getLogger('basicsr')
    root.handlers.clear()
    root.setLevel(level if is_main() else logging.WARNING)
    root.propagate = False
    console = _StdoutHandler(sys.stdout)
    console.setFormatter(logging.Formatter(FORMAT, '%H:%M:%S'))
    root.addHandler(console)
    if log_file is not None and is_main():
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding='utf-8')
        fh.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(fh)
    return root


def log_to_files(message: str, level: int = logging.ERROR) -> None:
    """Write ``message`` to the log files of the ``basicsr`` logger only (not the console).

    For the final ``error:`` line of an entry point: the console shows it once, plainly, and
    the run's log file keeps it too.
    """
    root = logging.getLogger('basicsr')
    record = root.makeRecord(root.name, level, __file__, 0, message, None, None)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def close_handlers() -> None:
    """Detach (and close) every handler of the ``basicsr`` logger."""
    root = logging.getLogger('basicsr')
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


class JsonlWriter:
    """Appends one JSON object per line (machine-readable training curves)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: Dict[str, Any]) -> None:
        with open(self.path, 'a', encoding='utf-8') as fh:
            fh.write(json.dumps(record) + '\n')


def make_tb_writer(log_dir: Path):
    """A tensorboard SummaryWriter, or None when tensorboard is unavailable."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover
        logging.getLogger(__name__).warning('tensorboard is not installed: no event files written')
        return None
    return SummaryWriter(log_dir=str(log_dir))


def console(text: str = '', err: bool = False) -> None:
    """Plain output of the command-line entry points (tables, resolved options, verdicts).

    Kept apart from logging on purpose: these lines are the command's result, printed without
    timestamps so they can be copied or piped.
    """
    stream = sys.stderr if err else sys.stdout
    stream.write(text + '\n')
    stream.flush()
