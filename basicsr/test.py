"""Testing entry: ``python test.py -opt options/test/DGFusion.yml``.

Fuses every pair of each ``datasets.test_*`` set at full size with our checkpoints or published
ones (detected automatically), writes RGB fused PNGs named like the inputs, and a per-image
table (latency and the configured metrics) with the mean.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

from basicsr.utils.logger import console

logger = logging.getLogger('basicsr.test')


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry; returns the process exit code."""
    from basicsr.train import parse_args
    from basicsr.utils.errors import DGFusionError, one_line
    args = parse_args(argv, test=True)
    try:
        return run_test(args)
    except DGFusionError as exc:
        logging.getLogger('basicsr').handlers.clear()
        console(f"error: {one_line(exc)}", err=True)
        return 2


def run_test(args) -> int:
    import torch

    from basicsr.train import print_dry_run

    from basicsr.data import build_dataset, build_eval_loader
    from basicsr.models import MODEL_REGISTRY
    from basicsr.utils.checkpoint import load_network
    from basicsr.utils.dist import resolve_device
    from basicsr.utils.logger import setup_logging
    from basicsr.utils.options import load_options, resolve_checkpoint_path
    from basicsr.utils.yaml_io import dump_yaml
    from basicsr.validation import evaluate_set, format_table, write_csv

    from basicsr.data.demo import ensure_demo_data
    if not args.dry_run:
        ensure_demo_data(args.opt)
    loaded = load_options(args.opt, is_train=False, overrides=args.overrides, dry_run=args.dry_run)
    if args.dry_run:
        return print_dry_run(loaded)
    opt = loaded.opt
    out_root = Path(opt['path']['results_root']) / opt['name']
    out_root.mkdir(parents=True, exist_ok=True)
    setup_logging(out_root / f"test_{opt['name']}.log")
    (out_root / 'options_resolved.yml').write_text(dump_yaml(opt), encoding='utf-8')
    torch.manual_seed(opt['manual_seed'])
    device = resolve_device(opt['device'])
    ckpt = resolve_checkpoint_path(opt['path']['pretrain_network_g'])
    net = load_network(ckpt, device=str(device), use_ema=opt['path']['param_key_g'] == 'params_ema')
    model = MODEL_REGISTRY.get(opt['model_type'])(opt, device, net=net, is_train=False)
    n_params = sum(p.numel() for p in net.parameters())
    logger.info('loaded %s: %s parameters (channels %s) on %s', ckpt, f"{n_params:,}",
                getattr(net, 'channels', '?'), device)
    metrics = opt['val']['metrics']
    for phase, ds_opt in opt['datasets'].items():
        dataset = build_dataset(ds_opt)
        out_dir = out_root / ds_opt['name']
        rows = evaluate_set(model, build_eval_loader(dataset), out_dir if opt['val']['save_img'] else None,
                            metrics['names'], metrics['convention'])
        csv_path = out_dir / (f"metrics_{metrics['convention']}.csv" if metrics['names'] else 'latency.csv')
        write_csv(csv_path, rows)
        title = f"{ds_opt['name']} ({len(rows)} images" + (
            f", {metrics['convention']} convention)" if metrics['names'] else ')')
        console(format_table(rows, title))
        logger.info('%s: fused images in %s, table in %s', ds_opt['name'], out_dir, csv_path)
    console(f"network parameters: {n_params:,}")
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
