"""The dataset contract: what validation, ``test.py`` and the option checker need from a paired
fusion dataset (:class:`FusionDataset`), and what training needs on top (:class:`TrainingSet`).
:class:`~basicsr.data.fusion_dataset.PairedFusionDataset` is one implementation; a new dataset
type is one class that meets them, registered with ``@DATASET_REGISTRY.register()``, and
nothing else changes. Its constructor takes the keys of its option section and ``phase``
(``train``, ``val``, ``test_1``...), which the option loader adds to every section.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Protocol, Tuple, runtime_checkable

from basicsr.data.pairs import Pair
from basicsr.utils.errors import DataError


class ProblemLog(Protocol):
    """Where option checks report, one problem per :meth:`add`.

    Attributes:
        source: the option file (for messages that name it).
        items: the problems reported so far, each ``'<dotted key>: <message>'`` (a check may
            skip a key that already has a problem: the first message is the better one).
    """

    source: str
    items: List[str]

    def add(self, key: str, msg: str) -> None:
        """Report ``msg`` for the dotted option ``key``."""


@runtime_checkable
class FusionDataset(Protocol):
    """A set of visible/infrared pairs that can be fused one by one (the test phase).

    Attributes:
        pairs: ``{'stem': str, 'vis': Path, 'ir': Path[, 'mask': Path]}`` per pair, in the
            order they are fused; ``stem`` names the fused file.
        unmatched: ``(stem, message)`` per name the set cannot pair (reported as a failed
            pair, not fused).
    """

    pairs: List[Dict[str, Path]]
    unmatched: List[Tuple[str, str]]

    def read(self, index: int) -> Pair:
        """Pair ``index`` ready to fuse: ``vis`` (3 or 1, H, W) and ``ir`` (1, H, W) float32 in
        [0, 1], and the 8-bit sources ``vis_u8``/``ir_u8`` the metrics read. Raises
        :class:`~basicsr.utils.errors.DataError` (or OSError) when the pair cannot be read."""

    @classmethod
    def check_options(cls, options: Dict[str, Any], phase: str, prefix: str,
                      problems: ProblemLog, scan: bool = False) -> None:
        """Check the dataset section ``options`` of set ``phase`` (``train``, ``val``,
        ``test_1``, ...) beyond its constructor signature, without building the set: its data
        folders, their names and sizes. Report each problem as ``problems.add(prefix + key,
        message)``; with ``scan``, also read every file in full."""

    @classmethod
    def data_folders(cls, options: Dict[str, Any], phase: str) -> List[Tuple[str, str, str]]:
        """``(key, folder, role)`` of each folder the set of section ``options`` reads;
        ``role`` is ``'images'`` or ``'masks'``. A run's output folders are kept apart from
        all of them, and mask folders (which a tool writes) from the image folders."""


@runtime_checkable
class TrainingSet(FusionDataset, Protocol):
    """A :class:`FusionDataset` that trains: a map-style torch dataset of random crops.

    Item ``i`` (``i < len(set)``; several epochs' worth of indices may map to one pair) is a
    dict with ``vis`` (3 or 1, h, w), ``ir`` (1, h, w) and ``mask`` (1, h, w) float32 in
    [0, 1] (equal h, w within a set's batch), ``stem``, and ``skipped``: the reasons of pairs
    that could not be read and were replaced (each reported once, counted against
    ``max_bad_fraction`` of ``len(pairs)`` by :func:`check_bad_pairs`).
    """

    max_bad_fraction: float

    def __len__(self) -> int:
        """Indices per epoch."""

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """One training item, as described above."""

    def summary(self) -> str:
        """One line for the run's log (pairs, masks...)."""


class UnreadablePairsError(DataError):
    """More training pairs are unreadable than ``max_bad_fraction`` allows."""


def check_bad_pairs(bad: Dict[str, str], num_pairs: int, max_fraction: float) -> None:
    """Raise :class:`UnreadablePairsError` when the unreadable pairs ``bad`` (stem -> reason) are
    more than ``max_fraction`` of ``num_pairs``; the message names each of them."""
    if len(bad) <= max_fraction * num_pairs:
        return
    shown = '; '.join(list(bad.values())[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else '')
    raise UnreadablePairsError(
        f"{len(bad)} of {num_pairs} training pairs cannot be read, more than "
        f"datasets.train.max_bad_fraction {max_fraction:g} allows ({shown}); repair or remove "
        f"them (or raise max_bad_fraction), then continue with --auto-resume")
