"""Folder layouts of public visible/infrared benchmarks: one ``root`` (and ``split``) -> pairs.

A dataset option ``layout: <name>`` with ``root:`` (and ``split:`` where the layout has splits)
replaces ``dataroot_vis``/``dataroot_ir``. Each layout is one small class that names the
folders of its benchmark and its quirks; pairing inside each folder pair is the project's one
rule, :func:`basicsr.data.pairs.match_folders`.

=============  ==================================================  =========================
layout         folders under ``root``                              quirk
=============  ==================================================  =========================
dronevehicle   ``{split}/{split}img`` + ``{split}/{split}imgr``    100-pixel white frame cut
llvip          ``visible/{split}`` + ``infrared/{split}``
msrs           ``{split}/vi`` + ``{split}/ir``
m3fd           ``Vis`` + ``Ir`` (no split)
vtuav          ``<sequence>/rgb`` + ``<sequence>/ir`` (no split)   sizes differ: resampled
dgfusion       ``{split}/Vis`` + ``{split}/Ir`` (+ ``{split}/MASK``)  masks of the benchmark
=============  ==================================================  =========================

Example:
    >>> layout = get_layout('msrs')
    >>> pairs, unmatched = layout_pairs(layout, 'datasets/MSRS', 'test')  # test/vi + test/ir
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from basicsr.data.pairs import match_folders
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.registry import LAYOUT_REGISTRY, did_you_mean

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Group:
    """One folder pair of a layout: its stems get ``prefix`` (``''``, or ``'<sequence>/'``)."""

    prefix: str
    vis: Path
    ir: Path
    mask: Optional[Path] = None


class Layout:
    """Base of the benchmark layouts.

    Class attributes (given as keywords of the class statement, or in its body):
        name: the ``layout:`` value.
        splits: the ``split:`` values (empty: the layout has no split).
        structure: the folders under ``root``, as the README and error messages show them.
        vis, ir, mask: the folders under ``root`` (``{split}`` is replaced by the split; no
            ``mask``: the benchmark ships no masks).
        border: pixels cut from each side of every frame by default.
        resize: modality resampled when a pair's sizes differ by default (None: an error).
    """

    name: ClassVar[str] = ''
    splits: ClassVar[Tuple[str, ...]] = ()
    structure: ClassVar[str] = ''
    vis: ClassVar[str] = ''
    ir: ClassVar[str] = ''
    mask: ClassVar[Optional[str]] = None
    border: ClassVar[int] = 0
    resize: ClassVar[Optional[str]] = None

    def __init_subclass__(cls, **attrs: Any) -> None:
        """``class X(Layout, name=..., vis=..., ir=..., ...)`` sets those class attributes."""
        super().__init_subclass__()
        unknown = sorted(set(attrs) - set(Layout.__annotations__))
        if unknown:
            raise TypeError(f"{cls.__name__}: {', '.join(unknown)} is no layout attribute")
        for key, value in attrs.items():
            setattr(cls, key, value)

    @property
    def has_mask(self) -> bool:
        """The benchmark ships a mask folder."""
        return self.mask is not None

    def split_problem(self, split: Optional[str]) -> Optional[str]:
        """The message for the ``split`` value, or None when it fits the layout."""
        if not self.splits:
            return None if split in (None, '') else (
                f"'{split}': layout {self.name} has no split (remove the key or set it to null)")
        if split in (None, ''):
            return f"required by layout {self.name} (one of {', '.join(self.splits)})"
        if split not in self.splits:
            return (f"'{split}' is not a split of layout {self.name} (one of "
                    f"{', '.join(self.splits)})" + did_you_mean(split, self.splits))
        return None

    def folders(self, root: Path, split: Optional[str]) -> List[Group]:
        """The folder pairs under ``root`` (not checked)."""
        def folder(template: str) -> Path:
            return root / template.format(split=split)
        return [Group('', folder(self.vis), folder(self.ir),
                      folder(self.mask) if self.mask else None)]

    def groups(self, root: PathLike, split: Optional[str] = None) -> List[Group]:
        """The folder pairs under ``root``, every one checked to exist.

        Raises:
            ConfigError: a ``split`` the layout does not have (or lacks).
            DataError: ``root`` or one of the layout's folders is missing (names the path).
        """
        problem = self.split_problem(split)
        if problem:
            raise ConfigError(f"split: {problem}")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"folder '{root}' does not exist (layout {self.name}: {self.structure})")
        groups = self.folders(root, split)
        for group in groups:
            for folder in (group.vis, group.ir):
                if not folder.is_dir():
                    raise DataError(f"folder '{folder}' does not exist (layout {self.name}: "
                                    f"{self.structure})")
        return groups


@LAYOUT_REGISTRY.register(name='dronevehicle')
class DroneVehicleLayout(Layout, name='dronevehicle', splits=('train', 'val', 'test'), border=100,
                         structure='{train,val,test}/{split}img (visible) + {split}imgr (infrared)',
                         vis='{split}/{split}img', ir='{split}/{split}imgr'):
    """DroneVehicle: 840x712 frames whose 100-pixel white frame is cut (-> 640x512)."""


@LAYOUT_REGISTRY.register(name='llvip')
class LLVIPLayout(Layout, name='llvip', splits=('train', 'test'), vis='visible/{split}',
                  ir='infrared/{split}', structure='visible/{train,test} + infrared/{train,test}'):
    """LLVIP: 1280x1024 pairs in ``visible/{train,test}`` and ``infrared/{train,test}``."""


@LAYOUT_REGISTRY.register(name='msrs')
class MSRSLayout(Layout, name='msrs', splits=('train', 'test'), vis='{split}/vi', ir='{split}/ir',
                 structure='{train,test}/vi + {train,test}/ir'):
    """MSRS: ``{train,test}/vi`` and ``{train,test}/ir``."""


@LAYOUT_REGISTRY.register(name='m3fd')
class M3FDLayout(Layout, name='m3fd', structure='Vis + Ir', vis='Vis', ir='Ir'):
    """M3FD: ``Vis`` and ``Ir`` side by side, no split."""


@LAYOUT_REGISTRY.register(name='vtuav')
class VTUAVLayout(Layout):
    """VTUAV: one folder per sequence with ``rgb/`` and ``ir/`` frames of different sizes.

    ``root`` is the folder that holds the sequence folders; pairs are named
    ``<sequence>/<frame>``. The infrared frame is resampled to the visible frame's size by
    default (``resize: ir``: the fused image keeps the visible camera's resolution);
    ``resize: vis`` shrinks the visible frame to the infrared size instead.
    """

    name = 'vtuav'
    structure = '<sequence>/rgb + <sequence>/ir for every sequence folder'
    vis, ir = 'rgb', 'ir'
    resize = 'ir'

    def folders(self, root: Path, split: Optional[str]) -> List[Group]:
        groups = []
        for seq in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.')):
            if (seq / self.vis).is_dir() or (seq / self.ir).is_dir():
                groups.append(Group(f"{seq.name}/", seq / self.vis, seq / self.ir))
        if not groups:
            raise DataError(f"{root}: no sequence folder with {self.vis}/ and {self.ir}/ inside "
                            f"(layout {self.name}: {self.structure})")
        return groups


@LAYOUT_REGISTRY.register(name='dgfusion')
class DGFusionLayout(Layout):
    """The published DGFusion benchmark: ``{train,test}/{Vis,Ir,MASK}``."""

    name = 'dgfusion'
    splits = ('train', 'test')
    structure = '{train,test}/Vis + {train,test}/Ir (+ {train,test}/MASK)'
    vis, ir, mask = '{split}/Vis', '{split}/Ir', '{split}/MASK'


LAYOUTS: Tuple[str, ...] = tuple(LAYOUT_REGISTRY.keys())


def get_layout(name: str) -> Layout:
    """The layout called ``name``; an unknown name lists the layouts and the closest one."""
    return LAYOUT_REGISTRY.get(name)()


def layout_pairs(layout: Layout, root: PathLike, split: Optional[str] = None,
                 mask_root: Optional[PathLike] = None, masks: bool = False, strict: bool = False
                 ) -> Tuple[List[Dict[str, Path]], List[Tuple[str, str]]]:
    """Pairs of a layout, as :func:`basicsr.data.pairs.match_folders` gives them per folder.

    Args:
        layout, root, split: the benchmark and where it is.
        mask_root: a mask folder of our own (e.g. made by ``scripts/gen_saliency.py``): the
            mask of pair ``<prefix><stem>`` is ``mask_root/<prefix><stem>.<ext>``.
        masks: every pair needs a mask (from ``mask_root``, else the layout's mask folder).
        strict: a name missing from a folder is an error instead of a skip.

    Returns:
        ``pairs`` (``{'stem', 'vis', 'ir'[, 'mask']}``, stems prefixed by the group) and
        ``unmatched`` (``(stem, message)``), as :func:`match_folders`.
    """
    pairs: List[Dict[str, Path]] = []
    unmatched: List[Tuple[str, str]] = []
    for group in layout.groups(root, split):
        mask = None
        if masks:
            mask = Path(mask_root) / group.prefix if mask_root else group.mask
            if mask is None:
                raise ConfigError(f"layout {layout.name} has no mask folder: give dataroot_mask "
                                  f"(auto: computed on the fly)")
        found, missing = match_folders(group.vis, group.ir, mask, strict=strict)
        pairs += [{**pair, 'stem': group.prefix + pair['stem']} for pair in found]
        unmatched += [(group.prefix + stem, message) for stem, message in missing]
    return pairs, unmatched
