"""Convert DGFusion weights between our layout and the published model's layout.

    python scripts/convert_checkpoint.py --input IN --output OUT --to ours|published [--key K]

``--input`` is a checkpoint file or a checkpoints folder (its ``latest`` file, else the newest).

``--to ours`` writes ``{'format': 'dgfusion-ckpt-v1', 'network_g': {...}, 'params': ...}``
(loadable by ``basicsr.inference.load_network``); ``--to published`` writes
``{'params': ...}`` with the published names and its unused weights as zeros, so the published
code loads it with ``strict=True``. The input may be in either layout. ``--key`` picks the
input's state dict (default: ``params_ema`` when present, else ``params``); the output always
holds it as ``params``. Exit status: 0 written, 2 bad input or output (one ``error:`` line;
the output location is checked before the input is read), 130 interrupted (nothing written).
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import torch

from basicsr.archs import DEFAULT_NETWORK_G, build_network
from basicsr.archs.dgfusion.published import ours_to_published
from basicsr.utils.checkpoint import (CKPT_FORMAT, check_format, describe_config,
                                      match_state, network_config, read_checkpoint, save_atomic,
                                      select_state)
from basicsr.inference.loader import find_checkpoint
from basicsr.utils.errors import (EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP,
                                  CheckpointError, DGFusionError)
from basicsr.utils.fs import check_outputs_apart, ensure_writable_file
from basicsr.utils.signals import sigterm_as_interrupt
from basicsr.utils.logger import console


def convert(src: Path, dst: Path, to: str, key: Optional[str] = None) -> str:
    """Convert ``src`` (a file, or a checkpoints folder: its ``latest`` file) into ``dst``;
    returns a one-line summary."""
    src = find_checkpoint(src, '--input')
    check_outputs_apart([('--output', dst)], [('--input', src)])
    ensure_writable_file(dst, 'output checkpoint')
    ckpt = read_checkpoint(src)
    check_format(ckpt, src)
    cfg = network_config(ckpt, DEFAULT_NETWORK_G, where=src)
    if cfg.get('type') != 'DGFusion':
        raise CheckpointError(f"{src}: holds a {cfg.get('type')}; only DGFusion has a published "
                              f"layout")
    with torch.device('meta'):  # shapes only: the file's tensors are written as they are
        net = build_network(cfg)
    state = select_state(ckpt, use_ema=True, key=key, where=str(src))
    state, channels = match_state(net, state, str(src), describe_config(cfg)), net.channels
    if to == 'ours':
        out = {'format': CKPT_FORMAT, 'network_g': {'type': 'DGFusion', 'channels': channels},
               'params': state}
    else:
        out = {'params': ours_to_published(state, channels)}
    save_atomic(out, dst)
    return f'wrote {dst} ({to} layout, channels={channels}, {len(out["params"])} tensors)'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', required=True, type=Path, help='checkpoint file or checkpoints folder to read')
    parser.add_argument('--output', required=True, type=Path, help='checkpoint to write')
    parser.add_argument('--to', required=True, choices=('ours', 'published'), help='target layout')
    parser.add_argument('--key', choices=('params', 'params_ema'), default=None,
                        help='state dict of the input (default: params_ema if present)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        with sigterm_as_interrupt():
            console(convert(args.input, args.output, args.to, args.key))
    except DGFusionError as err:
        console(f'error: {err}', err=True)
        return EXIT_SETUP
    except OSError as err:
        console(f'error: {args.output}: cannot write ({err.strerror or err})', err=True)
        return EXIT_SETUP
    except KeyboardInterrupt:
        console(f'error: interrupted; {args.output} not written', err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
