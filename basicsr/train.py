"""Training entry: ``python train.py -opt options/train/DGFusion.yml [--auto-resume]``.

Runs on CPU, one GPU, or many GPUs under ``torchrun --nproc_per_node=N train.py ...``.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from basicsr.utils.errors import DGFusionError

logger = logging.getLogger('basicsr.train')


def parse_args(argv: Optional[List[str]] = None, test: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='DGFusion ' + ('testing' if test else 'training'))
    p.add_argument('-opt', '--opt', required=True, help='YAML option file')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override an existing option, e.g. --set train.total_iter=1000 (repeatable)')
    p.add_argument('--dry-run', action='store_true', help='validate and print the resolved options')
    if not test:
        p.add_argument('--auto-resume', action='store_true',
                       help='continue from the newest checkpoint of this experiment')
    return p.parse_args(argv)


def git_commit() -> str:
    """Commit of the code being run, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    """RNG states as tensors and primitives (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state = {'torch': torch.get_rng_state(), 'python': random.getstate(),
             'numpy': {'keys': torch.from_numpy(np_state[1].astype(np.int64)), 'pos': int(np_state[2]),
                       'has_gauss': int(np_state[3]), 'gauss': float(np_state[4])}}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state['python']))
    n = state['numpy']
    np.random.set_state(('MT19937', n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                         n['gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between iterations (second signal: exit now)."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        logger.warning('received %s: finishing this iteration, then saving a checkpoint',
                       signal.Signals(signum).name)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry; returns the process exit code."""
    args = parse_args(argv)
    try:
        return train(args)
    except DGFusionError as exc:
        logging.getLogger('basicsr').handlers.clear()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        from basicsr.utils.dist import cleanup
        cleanup()


def train(args: argparse.Namespace) -> int:
    from basicsr.trainer import Trainer
    from basicsr.utils.options import load_options
    from basicsr.utils.yaml_io import dump_yaml

    loaded = load_options(args.opt, is_train=True, overrides=args.overrides, dry_run=args.dry_run)
    if args.dry_run:
        for w in loaded.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(dump_yaml(loaded.opt), end='')
        print(f"ok: {args.opt} is valid", file=sys.stderr)
        return 0
    trainer = Trainer(loaded, auto_resume=args.auto_resume,
                      command=' '.join([sys.executable] + sys.argv), commit=git_commit())
    return trainer.run()


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
