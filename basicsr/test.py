"""Testing entry: ``python test.py -opt options/test/DGFusion.yml [--tile N]``.

Fuses every pair of each ``datasets.test_*`` set with our checkpoints or published ones
(detected automatically) through :func:`basicsr.inference.fuse`, writes fused PNGs named like
the inputs, and a per-image table (latency and the configured metrics, computed as
``scripts/evaluate.py`` computes them on the written files) with the mean, and beside it a
self-contained ``report.html``: the table and per pair thumbnails vis | ir | fused | the
methods given with ``--compare NAME=FOLDER`` (shown, not scored; ``scripts/evaluate.py``
scores them). The network runs in ``val.precision`` (``fp32`` by default; ``bf16`` or ``fp16``
where the device computes them natively, see ``basicsr/models/precision.py``).

Exit status: 0 all pairs fused; 1 some pairs failed or were unmatched (each named, the table
holds the others); 2 bad options or setup; 130 interrupted (the table so far is written).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional

from basicsr.data.contract import FusionDataset
from basicsr.utils.cli import run_main
from basicsr.utils.errors import (EXIT_ITEMS_FAILED, EXIT_OK, ConfigError, DGFusionError,
                                  Interrupted, one_line)
from basicsr.utils.logger import close_handlers, console

logger = logging.getLogger('basicsr.test')




def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='DGFusion testing')
    p.add_argument('-opt', '--opt', required=True, help='YAML option file')
    p.add_argument('--set', dest='overrides', action='extend', nargs='+', default=[],
                   metavar='KEY=VALUE',
                   help='override options, e.g. --set device=cpu (one or more KEY=VALUE, repeatable)')
    p.add_argument('--dry-run', action='store_true', help='validate and print the resolved options')
    p.add_argument('--tile', type=int, default=None,
                   help='fuse in overlapping N x N tiles (N >= 32) to save memory; the output '
                        'differs from whole-frame fusion (see README)')
    p.add_argument('--tile-overlap', type=int, default=None,
                   help='pixels shared by neighbouring tiles (32, a quarter of smaller tiles)')
    p.add_argument('--compare', action='append', default=[], metavar='NAME=FOLDER',
                   help="another method's fused images to show beside ours in report.html, "
                        "e.g. SeAFusion=path/to/folder (repeatable)")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry; returns the process exit code."""
    args = parse_args(argv)
    try:
        return run_main(lambda: run_test(args))
    finally:
        close_handlers()  # the run's log file is complete; a later run opens its own


def run_test(args: argparse.Namespace) -> int:
    import torch

    from basicsr.options import load_options, print_dry_run, written_network_g
    from basicsr.data import build_dataset
    from basicsr.inference import check_tile, load_model
    from basicsr.inference.html_report import parse_compare
    from basicsr.inference.loader import check_network_options
    from basicsr.utils.fs import ensure_writable_dir
    from basicsr.utils.logger import setup_logging
    from basicsr.utils.yaml_io import dump_yaml

    overlap = args.tile_overlap
    if args.tile_overlap is not None and args.tile is None:
        raise ConfigError('--tile-overlap needs --tile')
    check_tile(args.tile, overlap)
    compare = parse_compare(args.compare)
    loaded = load_options(args.opt, is_train=False, overrides=args.overrides, dry_run=args.dry_run)
    if args.dry_run:
        return print_dry_run(loaded)
    opt = loaded.opt
    out_root = ensure_writable_dir(Path(opt['path']['results_root']) / opt['name'], 'results folder')
    setup_logging(out_root / f"test_{opt['name']}.log")
    (out_root / 'options_resolved.yml').write_text(dump_yaml(opt), encoding='utf-8')
    torch.manual_seed(opt['manual_seed'])
    datasets = []
    for phase, ds_opt in opt['datasets'].items():  # all data problems before the model loads
        try:
            datasets.append((ds_opt['name'], build_dataset(ds_opt)))
        except DGFusionError as exc:
            raise type(exc)(f"datasets.{phase}: {one_line(exc)}") from None
    from basicsr.utils.process_memory import return_large_blocks_to_os
    return_large_blocks_to_os()  # freed full-size maps leave the process
    model = load_model(opt['path']['pretrain_network_g'], opt['device'],
                       use_ema=opt['path']['param_key_g'] == 'params_ema',
                       where='path.pretrain_network_g', network_g=opt['network_g'])
    check_network_options(written_network_g(loaded, args.overrides), model,
                          'path.pretrain_network_g')
    logger.info('loaded %s, val.precision %s', model.describe(), opt['val']['precision'])
    failed = 0
    for name, dataset in datasets:
        failed += run_set(model.net, dataset, name, out_root, opt, args.tile, overlap, compare)
    console(f"network parameters: {model.n_params:,}")
    if failed:
        console(f"{failed} pair(s) failed (named above)", err=True)
        return EXIT_ITEMS_FAILED
    return EXIT_OK


def run_set(net, dataset: FusionDataset, name: str, out_root: Path, opt: Dict,
            tile: Optional[int], overlap: Optional[int],
            compare: Optional[Dict[str, Path]] = None) -> int:
    """Fuse, write and score one set; print its table and failures; write its report with
    thumbnails of ``compare`` (method name -> folder) beside ours. Returns the failures."""
    from basicsr.inference.report import write_csv
    from basicsr.validation import format_table, iter_set

    metrics = opt['val']['metrics']
    out_dir = out_root / name
    csv_path = out_dir / (f"metrics_{metrics['convention']}.csv" if metrics['names'] else 'latency.csv')
    rows, notes, failures = [], [], []
    try:
        for outcome in iter_set(net, dataset, out_dir if opt['val']['save_img'] else None,
                                metrics['names'], metrics['convention'], tile=tile, overlap=overlap,
                                max_images=opt['val'].get('max_images'),
                                precision=opt['val']['precision']):
            if outcome.error is not None:
                failures.append(outcome)
                console(f"failed: {outcome.stem}: {outcome.error}", err=True)
            else:
                rows.append(outcome.row)
                notes.extend(outcome.notes)
    except KeyboardInterrupt:
        write_csv(csv_path, rows)
        raise Interrupted(f"{name}: {len(rows)} of {len(dataset.pairs)} pairs done"
                          + (f"; their table is in {csv_path}" if rows else '')) from None
    write_csv(csv_path, rows)
    title = f"{name} ({len(rows)} images" + (
        f", {metrics['convention']} convention)" if metrics['names'] else ')')
    console(format_table(rows, title))
    for note in notes:
        console(f"n/a: {note}")
    if failures:
        console(f"{name}: {len(failures)} pair(s) failed: {', '.join(f.stem for f in failures)}", err=True)
    report = write_set_report(out_dir, name, rows, dataset, metrics, compare or {},
                              opt['val'].get('max_images'))
    logger.info('%s: fused images in %s, table in %s, report in %s', name, out_dir, csv_path, report)
    return len(failures)


def write_set_report(out_dir: Path, name: str, rows: List[Dict], dataset: FusionDataset,
                     metrics: Dict, compare: Dict[str, Path], max_images: Optional[int]) -> Path:
    """``<out_dir>/report.html``: the set's table (``metrics``: the ``val.metrics`` options)
    and thumbnails vis | ir | fused | compared methods."""
    from basicsr.inference.html_report import (REPORT_NAME, ImageColumn, Section, compare_images,
                                               convention_table, source_columns, write_report)
    pairs = dataset.pairs if max_images is None else dataset.pairs[:max_images]
    stems, columns = source_columns(pairs)
    fused = {s: out_dir / f"{s}.png" for s in stems if (out_dir / f"{s}.png").is_file()}
    if fused:
        columns.append(ImageColumn('fused', fused))
    columns += [ImageColumn(label, compare_images(folder, label, stems))
                for label, folder in compare.items()]
    table = convention_table({'': rows}, metrics['convention'],
                             None if metrics['names'] else 'latency')
    return write_report(out_dir / REPORT_NAME, f"test.py: {name}",
                        [Section(f"{name} ({len(rows)} images)", [table], stems, columns)])


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
