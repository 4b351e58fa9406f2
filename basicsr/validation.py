"""Fuse every pair of an evaluation set, save the images, time them and score them.

Shared by validation during training and by ``test.py``.
"""
from __future__ import annotations

import csv
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from basicsr.utils.img_util import tensor2img, write_image

logger = logging.getLogger(__name__)


def _metric_inputs(batch: Dict[str, Any], fused_u8: np.ndarray):
    vis = tensor2img(batch['vis'])
    if bool(batch['vis_gray'][0]):
        vis = vis[..., 0]
    return fused_u8, vis, tensor2img(batch['ir'])


def evaluate_set(model, loader, out_dir: Optional[Path], metric_names: Sequence[str] = (),
                 convention: str = 'cddfuse', max_images: Optional[int] = None,
                 show_progress: bool = True, image_suffix: str = '.png') -> List[Dict[str, Any]]:
    """Fuse each pair with ``model.fuse``; write ``<out_dir>/<stem>.png`` when ``out_dir`` is set.

    Returns one row per image: ``image``, ``latency_ms`` and one value per metric. Metrics
    are computed on the saved 8-bit RGB fused image against the 8-bit sources, under
    ``convention`` (see ``basicsr.metrics``).
    """
    compute = None
    if metric_names:
        from basicsr.metrics import compute_metrics
        compute = compute_metrics
    rows: List[Dict[str, Any]] = []
    total = len(loader) if max_images is None else min(len(loader), max_images)
    bar = tqdm(loader, total=total, desc='fuse', unit='img', leave=False,
               disable=not (show_progress and sys.stderr.isatty()))
    for i, batch in enumerate(bar):
        if max_images is not None and i >= max_images:
            break
        sync = model.device.type == 'cuda'
        if sync:
            torch.cuda.synchronize(model.device)
        start = time.perf_counter()
        vis = batch['vis'][:, :1] if bool(batch['vis_gray'][0]) else batch['vis']  # gray in, gray out
        fused = model.fuse(vis, batch['ir'])
        if sync:
            torch.cuda.synchronize(model.device)
        row: Dict[str, Any] = {'image': batch['stem'][0],
                               'latency_ms': (time.perf_counter() - start) * 1000.0}
        fused_u8 = tensor2img(fused)
        if out_dir is not None:
            write_image(Path(out_dir) / f"{batch['stem'][0]}{image_suffix}", fused_u8)
        if compute is not None:
            row.update(compute(*_metric_inputs(batch, fused_u8), names=list(metric_names),
                               convention=convention))
        rows.append(row)
    return rows


def mean_row(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Column means over ``rows`` (NaNs ignored), labelled ``mean``."""
    out: Dict[str, Any] = {'image': 'mean'}
    for key in rows[0] if rows else []:
        if key == 'image':
            continue
        vals = [r[key] for r in rows if isinstance(r[key], (int, float)) and not math.isnan(r[key])]
        out[key] = float(np.mean(vals)) if vals else float('nan')
    return out


def write_csv(path: Path, rows: List[Dict[str, Any]]) -> None:
    """Per-image CSV (header ``image``, then columns) with a final ``mean`` row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        return
    keys = list(rows[0])
    with open(path, 'w', newline='', encoding='utf-8') as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for row in rows + [mean_row(rows)]:
            writer.writerow([row[k] if isinstance(row[k], str) else f"{row[k]:.6g}" for k in keys])


def format_table(rows: List[Dict[str, Any]], title: str = '', with_mean: bool = True) -> str:
    """Markdown table of all rows, plus the mean row when ``with_mean``."""
    if not rows:
        return f"{title}: no images"
    keys = list(rows[0])
    lines = ([f"### {title}"] if title else []) + [
        '| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
    for row in rows + ([mean_row(rows)] if with_mean else []):
        lines.append('| ' + ' | '.join(row[k] if isinstance(row[k], str) else f"{row[k]:.4f}"
                                        for k in keys) + ' |')
    return '\n'.join(lines)
