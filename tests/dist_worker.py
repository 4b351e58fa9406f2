"""Run by tests under torchrun: train with the real Trainer, then save this rank's weights."""
import sys
from pathlib import Path

import torch

from basicsr.options import load_options
from basicsr.trainer import Trainer


def main() -> int:
    opt_file, out_dir = sys.argv[1], Path(sys.argv[2])
    trainer = Trainer(load_options(opt_file))
    code = trainer.run()
    rank = trainer.rank
    torch.save({k: v.detach().cpu() for k, v in trainer.model.net_g.state_dict().items()},
               out_dir / f"rank{rank}.pt")
    return code


if __name__ == '__main__':
    sys.exit(main())
