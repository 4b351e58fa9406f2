"""A run's ``checkpoints/`` folder: file naming, the ``latest`` pointer, pruning, the newest file.

Layout (one file per save, see :mod:`basicsr.utils.checkpoint`)::

    checkpoints/iter_00001000.pth
    checkpoints/iter_00002000.pth
    checkpoints/latest            # text: the name of the last file saved
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Union

POINTER = 'latest'


class CheckpointFolder:
    """Names, finds and prunes the periodic checkpoints of one folder.

    Args:
        root: the folder (it need not exist yet).
    """

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)

    def path_for(self, iteration: int) -> Path:
        """``<root>/iter_<iteration:08d>.pth``."""
        return self.root / f"iter_{iteration:08d}.pth"

    def periodic(self) -> List[Path]:
        """The ``iter_*.pth`` files, oldest first (zero-padded names sort by iteration)."""
        return sorted(self.root.glob('iter_*.pth'))

    def point_to(self, path: Path) -> None:
        """Atomically make ``latest`` name ``path`` (a file of this folder)."""
        pointer = self.root / POINTER
        tmp = pointer.with_name(f".{pointer.name}.tmp")
        with open(tmp, 'w', encoding='utf-8') as fh:
            fh.write(path.name)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, pointer)

    def prune(self, keep: int) -> None:
        """Delete all but the newest ``keep`` periodic files (``keep`` 0: keep all)."""
        if keep > 0:
            for old in self.periodic()[:-keep]:
                old.unlink(missing_ok=True)

    def newest(self) -> Optional[Path]:
        """The file ``latest`` names if it exists, else the newest periodic file, else the last
        ``*.pth`` by name, else None."""
        pointer = self.root / POINTER
        if pointer.is_file():
            target = self.root / pointer.read_text(encoding='utf-8').strip()
            if target.is_file():
                return target
        found = self.periodic() or sorted(self.root.glob('*.pth'))
        return found[-1] if found else None


def resolve_checkpoint_path(path: Union[str, Path]) -> Optional[Path]:
    """A checkpoint file as is; a checkpoints folder -> its ``latest`` (or newest) file."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        return CheckpointFolder(path).newest()
    return None
