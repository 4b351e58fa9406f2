"""Training entry: ``python train.py -opt options/train/DGFusion.yml [--auto-resume]``.

Runs on CPU, one GPU, or many GPUs under ``torchrun --nproc_per_node=N train.py ...``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from basicsr.utils.errors import DGFusionError, one_line
from basicsr.utils.logger import console

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


def print_dry_run(loaded) -> int:
    """``--dry-run``: warnings and the verdict on stderr, the resolved options on stdout."""
    from basicsr.utils.yaml_io import dump_yaml
    for w in loaded.warnings:
        console(f"warning: {w}", err=True)
    console(dump_yaml(loaded.opt).rstrip())
    console(f"ok: {loaded.source} is valid", err=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry; returns the process exit code."""
    args = parse_args(argv)
    try:
        return train(args)
    except DGFusionError as exc:
        logging.getLogger('basicsr').handlers.clear()
        console(f"error: {one_line(exc)}", err=True)
        return 2
    finally:
        from basicsr.utils.dist import cleanup
        cleanup()


def train(args: argparse.Namespace) -> int:
    from basicsr.data.demo import ensure_demo_data
    from basicsr.trainer import Trainer
    from basicsr.utils.options import load_options
    from basicsr.utils.run_control import git_commit

    if not args.dry_run:
        ensure_demo_data(args.opt)

    loaded = load_options(args.opt, is_train=True, overrides=args.overrides, dry_run=args.dry_run)
    if args.dry_run:
        return print_dry_run(loaded)
    trainer = Trainer(loaded, auto_resume=args.auto_resume,
                      command=' '.join([sys.executable] + sys.argv), commit=git_commit())
    return trainer.run()


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
