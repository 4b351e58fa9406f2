"""Every file of a paired set checked before a run: the ``train.py --dry-run`` data report.

A real run skips a training pair it cannot read (see ``datasets.train.max_bad_fraction``);
the dry run finds all of them at once, so they can be repaired before any work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

from basicsr.utils.errors import DataError
from basicsr.utils.image_check import ImageInfo, inspect_image

ROLES = ('vis', 'ir', 'mask')


def scan_pairs(pairs: Sequence[Dict[str, Path]]) -> List[str]:
    """Problems of the files of ``pairs`` (``{'stem', 'vis', 'ir'[, 'mask']}``), one line each.

    Each file must be whole (not empty, not truncated, decodable header; see
    :func:`basicsr.utils.image_check.inspect_image`) and, within a pair, the infrared image
    and the mask must have the visible image's height and width.
    """
    problems: List[str] = []
    for pair in pairs:
        infos: Dict[str, ImageInfo] = {}
        for role in ROLES:
            if role not in pair:
                continue
            try:
                infos[role] = inspect_image(pair[role])
            except DataError as exc:
                problems.append(str(exc))
        vis = infos.get('vis')
        for role in ('ir', 'mask'):
            other = infos.get(role)
            if vis is not None and other is not None and (other.height, other.width) != (
                    vis.height, vis.width):
                problems.append(f"{pair[role]}: {other.size}, but the visible image "
                                f"{pair['vis'].name} is {vis.size}")
    return problems
