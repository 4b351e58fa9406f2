"""Fuse every pair of an evaluation set, save the images, time them and score them.

Shared by validation during training and by ``test.py``; both go through
:func:`basicsr.inference.fuse`. Metrics are computed on the 8-bit fused image as written and the
8-bit sources as stored (channels kept, 16-bit mapped by the set's ``ir_range``), exactly as
``scripts/evaluate.py`` reads the files, so the two give the same numbers.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn as nn
from tqdm import tqdm

from basicsr.data.contract import FusionDataset
from basicsr.inference import Stopwatch, fuse
from basicsr.inference.report import Row, markdown_table, mean_row, write_csv
from basicsr.inference.scoring import score
from basicsr.inference.video import PAIR_ERRORS
from basicsr.utils.errors import one_line
from basicsr.utils.img_util import tensor2img, write_image

logger = logging.getLogger(__name__)

__all__ = ['Outcome', 'iter_set', 'evaluate_set', 'mean_row', 'write_csv', 'format_table']


@dataclass
class Outcome:
    """Result of one pair: a table ``row`` (image, latency_ms, metrics), or an ``error``."""

    stem: str
    row: Optional[Row] = None
    error: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def iter_set(net: nn.Module, dataset: FusionDataset, out_dir: Optional[Path] = None,
             metric_names: Sequence[str] = (), convention: str = 'cddfuse',
             max_images: Optional[int] = None, tile: Optional[int] = None,
             overlap: Optional[int] = None, show_progress: bool = True,
             image_suffix: str = '.png', precision: str = 'fp32') -> Iterator[Outcome]:
    """Fuse the pairs of a dataset that meets the contract (:mod:`basicsr.data.contract`) one
    by one.

    Yields first one failed :class:`Outcome` per unmatched name, then one per pair: the fused
    image is written to ``<out_dir>/<stem><image_suffix>`` (atomically) when ``out_dir`` is
    set; a pair that cannot be read, fused or scored is reported and the next one follows.
    ``precision`` (``val.precision``) is the autocast of the network call (see
    :func:`basicsr.inference.fuse`); the device's support is checked with the options.
    """
    for stem, message in dataset.unmatched:
        yield Outcome(stem, error=message)
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    total = len(dataset.pairs) if max_images is None else min(len(dataset.pairs), max_images)
    bar = tqdm(range(total), desc='fuse', unit='img', leave=False,
               disable=not (show_progress and sys.stderr.isatty()))
    for index in bar:
        stem = dataset.pairs[index]['stem']
        try:
            pair = dataset.read(index)
            with Stopwatch(device) as watch:
                fused = fuse(net, pair.vis[None], pair.ir[None], tile=tile, overlap=overlap,
                             precision=precision)
            fused_u8 = tensor2img(fused)
            row: Row = {'image': stem, 'latency_ms': watch.seconds * 1000.0}
            if out_dir is not None:
                write_image(Path(out_dir) / f"{stem}{image_suffix}", fused_u8)
            notes: List[str] = []
            if metric_names:
                values, notes = score(fused_u8, pair.vis_u8, pair.ir_u8, metric_names,
                                      convention, stem)
                row.update(values)
            yield Outcome(stem, row=row, notes=notes)
        except PAIR_ERRORS as err:
            yield Outcome(stem, error=one_line(err))
    bar.close()


def evaluate_set(model, loader, out_dir: Optional[Path], metric_names: Sequence[str] = (),
                 convention: str = 'cddfuse', max_images: Optional[int] = None,
                 show_progress: bool = True, image_suffix: str = '.png',
                 precision: str = 'fp32') -> List[Row]:
    """Validation during training: :func:`iter_set` with the model's EMA network (else its
    network) on ``loader.dataset`` under ``precision`` (``val.precision``); failures and n/a
    metrics are logged as warnings.

    Returns one row per fused pair: ``image``, ``latency_ms`` and one value per metric.
    """
    net = model.net_g_ema if getattr(model, 'net_g_ema', None) is not None else model.net_g
    was_training = net.training
    net.train(False)
    rows: List[Row] = []
    try:
        for outcome in iter_set(net, loader.dataset, out_dir, metric_names, convention,
                                max_images=max_images, show_progress=show_progress,
                                image_suffix=image_suffix, precision=precision):
            if outcome.error is not None:
                logger.warning('validation: %s skipped: %s', outcome.stem, outcome.error)
                continue
            for note in outcome.notes:
                logger.warning('validation: %s', note)
            rows.append(outcome.row)
    finally:
        net.train(was_training)
    return rows


def format_table(rows: List[Row], title: str = '', with_mean: bool = True) -> str:
    """Markdown table of ``rows`` (see :func:`basicsr.inference.report.markdown_table`)."""
    return markdown_table(rows, title, with_mean)
