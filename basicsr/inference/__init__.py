"""Inference: one path from files or frames to fused images, shared by ``test.py``, validation
during training and ``scripts/fuse.py``.

* :func:`read_pair` -- files or frames to network inputs (and the 8-bit metric references);
* :func:`fuse` -- colour split/merge, clamp, whole frame or tiles, memory guard;
* :func:`load_model` -- our checkpoints or published ones;
* :class:`Stopwatch`, :func:`latency_summary` -- timing;
* :mod:`basicsr.inference.report` -- tables and CSV files.
"""
from basicsr.data.pairs import Pair, match_folders, read_pair
from basicsr.inference.fusion import DEFAULT_OVERLAP, check_tile, fuse
from basicsr.inference.loader import LoadedModel, load_model, load_network
from basicsr.inference.memory import FrameTooLarge, check_fits, estimate_bytes
from basicsr.inference.timing import Stopwatch, latency_summary

__all__ = ['DEFAULT_OVERLAP', 'FrameTooLarge', 'LoadedModel', 'Pair', 'Stopwatch', 'check_fits',
           'check_tile', 'estimate_bytes', 'fuse', 'latency_summary', 'load_model', 'load_network',
           'match_folders', 'read_pair']
