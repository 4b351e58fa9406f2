"""Training entry: ``python train.py -opt options/train/DGFusion.yml [--auto-resume]``.

Runs on CPU, one GPU, or many GPUs under ``torchrun --nproc_per_node=N train.py ...``.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from basicsr.utils.logger import close_handlers


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='DGFusion training')
    p.add_argument('-opt', '--opt', required=True, help='YAML option file')
    p.add_argument('--set', dest='overrides', action='extend', nargs='+', default=[],
                   metavar='KEY=VALUE',
                   help='override options, e.g. --set train.total_iter=1000 (one or more '
                        'KEY=VALUE, repeatable; any key the README options reference lists, also '
                        'when the file leaves it out)')
    p.add_argument('--dry-run', action='store_true',
                   help='run every check of a real run (options, data, output folder), print the '
                        'resolved options, do no work')
    p.add_argument('--auto-resume', action='store_true',
                   help='continue from the newest checkpoint of this experiment')
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry; returns the exit code: 0 done, 1 training diverged, 2 bad options or
    setup, 130 stopped by Ctrl-C/SIGTERM (after saving a checkpoint)."""
    from basicsr.utils.cli import run_main
    args = parse_args(argv)
    try:
        return run_main(lambda: train(args))
    finally:
        from basicsr.utils.dist import cleanup
        cleanup()
        close_handlers()  # the run's log file is complete; a later run opens its own


def check_run_state(opt, auto_resume: bool) -> None:
    """What a real run checks in its experiment folder, read-only: no live run holds it, and
    the checkpoint to resume (if any) is not past ``train.total_iter``."""
    from pathlib import Path

    from basicsr.trainer import check_resume_point, check_resume_weights
    from basicsr.utils.checkpoint import read_checkpoint
    from basicsr.utils.checkpoint_folder import CheckpointFolder
    from basicsr.utils.run_lock import check_unlocked
    exp_dir = Path(opt['path']['experiments_root']) / opt['name']
    check_unlocked(exp_dir)
    resume = opt['path'].get('resume_state')
    path = Path(resume) if resume else (
        CheckpointFolder(exp_dir / 'checkpoints').newest() if auto_resume else None)
    if path is not None:
        state = read_checkpoint(path)
        check_resume_point(path, int(state.get('iter', 0)), opt['train']['total_iter'])
        check_resume_weights(path, state)


def train(args: argparse.Namespace) -> int:
    from basicsr.trainer import Trainer
    from basicsr.options import load_options, print_dry_run
    from basicsr.utils.run_control import git_commit

    loaded = load_options(args.opt, is_train=True, overrides=args.overrides, dry_run=args.dry_run)
    if args.dry_run:
        check_run_state(loaded.opt, args.auto_resume)
        return print_dry_run(loaded)
    trainer = Trainer(loaded, auto_resume=args.auto_resume,
                      command=' '.join([sys.executable] + sys.argv), commit=git_commit())
    return trainer.run()


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
