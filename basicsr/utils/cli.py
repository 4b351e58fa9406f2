"""Pieces every command-line script shares: HxW size lists and the exit-code rule of ``main``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from basicsr.utils.errors import (EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK, EXIT_SETUP,
                                  ConfigError, DGFusionError, Interrupted, one_line)
from basicsr.utils.logger import close_handlers, console, log_to_files
from basicsr.utils.signals import sigterm_as_interrupt


def parse_size_list(text: str, option: str) -> List[Tuple[int, int]]:
    """``'33x47,48x64'`` -> [(33, 47), (48, 64)] (height x width); ConfigError naming ``option``."""
    sizes = []
    for item in text.split(','):
        parts = item.strip().lower().split('x')
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ConfigError(f"{option}: '{item.strip()}' is not HxW with positive integers")
        sizes.append((int(parts[0]), int(parts[1])))
    return sizes


def command(parse_args: Callable[[Optional[Sequence[str]]], Any],
            run: Callable[[Any], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """The ``main(argv=None)`` of a command line tool: ``parse_args(argv)`` (argparse exits 2 on
    bad arguments), then ``run(args)`` under :func:`run_main`'s rules; returns the exit status."""
    def main(argv: Optional[Sequence[str]] = None) -> int:
        args = parse_args(argv)
        return run_main(lambda: run(args))
    return main


def exit_status(failed: Sequence[str], what: str = '') -> int:
    """EXIT_OK, or EXIT_ITEMS_FAILED after naming the failed items on stderr in one line:
    ``2 set(s) failed: a, b`` (``what`` = 'set(s)')."""
    if not failed:
        return EXIT_OK
    console(f"{len(failed)}{' ' + what if what else ''} failed: {', '.join(failed)}", err=True)
    return EXIT_ITEMS_FAILED


def run_main(work: Callable[[], int]) -> int:
    """``work()``'s exit status, with the shared rule for what stops it: a user-facing error
    (or a failed file operation, e.g. a full disk: named, no traceback) is one ``error: ...``
    line, also written to the run's log file when one is open, and 2; Ctrl-C or SIGTERM is one
    ``interrupted`` line (saying what was kept, when the work raised :class:`Interrupted`) and
    130."""
    try:
        with sigterm_as_interrupt():
            return work()
    except DGFusionError as err:
        return _error(one_line(err))
    except OSError as err:
        return _error(f"{err.filename}: {err.strerror or err}" if err.filename
                      else f"{err.strerror or err}")
    except Interrupted as err:
        console(f"interrupted: {err}", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        console("interrupted", err=True)
        return EXIT_INTERRUPTED


def _error(message: str) -> int:
    """Print the one ``error:`` line (the log file keeps it too, as its last word); EXIT_SETUP."""
    log_to_files(f"error: {message}")
    close_handlers()
    console(f"error: {message}", err=True)
    return EXIT_SETUP


def package_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) whose ``PYTHONPATH`` starts with the folder
    holding this ``basicsr`` package, so a child process imports the same package."""
    env = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parents[2])
    env['PYTHONPATH'] = os.pathsep.join([root] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


def run_module(module: str, args: Sequence[object], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` with this interpreter and :func:`package_env`; ``kwargs``
    go to :func:`subprocess.run` (``capture_output``, ``stdout``, ``text``...)."""
    return subprocess.run([sys.executable, '-m', module, *map(str, args)], env=package_env(),
                          check=False, **kwargs)
