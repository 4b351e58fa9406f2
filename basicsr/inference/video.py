"""One path from frames or files to written results: paired items read in a background thread,
grouped into batches of equal shapes, and sinks that write images or a video atomically.

``prefetch(lambda: file_items(jobs, unmatched, rule, resize))`` (or :func:`video_items` over
two captures) yields :class:`Item` s; :func:`batches` groups them; :class:`ImageSink` /
:class:`VideoSink` write the (H, W[, 3]) uint8 RGB results. A pair that cannot be read is an
item with its error, so a run names it and goes on.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from basicsr.data.pairs import Pair, read_pair
from basicsr.utils.errors import ConfigError, DataError, DGFusionError, one_line
from basicsr.utils.img_util import write_image
from basicsr.utils.ir_range import IrRange

VIDEO_CODECS = {'.avi': 'MJPG', '.mp4': 'mp4v', '.mov': 'mp4v', '.m4v': 'mp4v', '.mkv': 'MJPG'}
VIDEO_EXTENSIONS = tuple(VIDEO_CODECS) + ('.webm', '.mpg', '.mpeg', '.wmv', '.ts')
# what a single failing pair may raise without stopping the run (out of memory: RuntimeError)
PAIR_ERRORS = (DGFusionError, RuntimeError, ValueError, OSError, cv2.error)


@dataclass
class Item:
    """One pair to fuse, or the reason it cannot be."""

    stem: str
    pair: Optional[Pair] = None
    error: Optional[str] = None


def is_video(path: Path) -> bool:
    """Whether ``path`` names a video by its extension."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def open_video(path: Path, role: str) -> cv2.VideoCapture:
    """An opened capture of ``path``; DataError naming ``role`` and the file otherwise."""
    if not path.is_file():
        raise DataError(f"{role}: {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{role}: {path}: cannot open the video (unknown container or codec)")
    return cap


def video_items(vis_cap: cv2.VideoCapture, ir_cap: cv2.VideoCapture, rule: IrRange,
                resize: Optional[str], warnings: List[str], size_hint: str = '') -> Iterator[Item]:
    """Frame pairs of two videos, read as :func:`read_pair` reads files (``rule``, ``resize``;
    a 16-bit stream keeps its first frame's infrared limits); stops at the shorter stream (a
    line in ``warnings`` says which). ``size_hint`` ends a size-mismatch message."""
    limits = None
    index = 0
    while True:
        ok_vis, vis = vis_cap.read()
        ok_ir, ir = ir_cap.read()
        if not (ok_vis and ok_ir):
            if ok_vis or ok_ir:
                short, other = ('infrared', 'visible') if ok_vis else ('visible', 'infrared')
                warnings.append(f"the {short} video ended after {index} frames; the rest of the "
                                f"{other} video was not fused")
            return
        stem = f"{index:06d}"
        try:
            pair = read_pair(to_rgb(vis), to_rgb(ir), rule, resize, limits, stem=stem,
                             size_hint=size_hint)
            limits = limits or pair.ir_limits  # hold the first 16-bit frame's range
            yield Item(stem, pair)
        except PAIR_ERRORS as err:
            yield Item(stem, error=one_line(err))
        index += 1


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """An OpenCV frame (H, W, 3) BGR as RGB; a gray (H, W) frame as it is."""
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 and frame.shape[2] == 3 else frame


def file_items(jobs: List[Dict[str, Path]], unmatched: List[Tuple[str, str]], rule: IrRange,
               resize: Optional[str], border: int = 0, size_hint: str = '') -> Iterator[Item]:
    """The failed ``unmatched`` stems, then the pairs of ``jobs`` (``{'stem', 'vis', 'ir'}``)
    read by :func:`read_pair`; a pair that cannot be read is an item with its error."""
    for stem, message in unmatched:
        yield Item(stem, error=message)
    for job in jobs:
        try:
            yield Item(job['stem'], read_pair(job['vis'], job['ir'], rule, resize,
                                              stem=job['stem'], border=border,
                                              size_hint=size_hint))
        except PAIR_ERRORS as err:
            yield Item(job['stem'], error=one_line(err))


def prefetch(make: Callable[[], Iterator[Item]], depth: int) -> Iterator[Item]:
    """Run the generator ``make()`` in a background thread (decoding overlaps fusing)."""
    q: 'queue.Queue' = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()
    end = object()

    def work() -> None:
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc)
        q.put(end)

    thread = threading.Thread(target=work, name='decode', daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def batches(items: Iterator[Item], size: int) -> Iterator[List[Item]]:
    """Consecutive items of equal shapes, at most ``size``; a failed item is a batch of its own."""
    group: List[Item] = []
    for item in items:
        if item.pair is None:
            if group:
                yield group
                group = []
            yield [item]
            continue
        shape = (tuple(item.pair.vis.shape), tuple(item.pair.ir.shape))
        if group and (len(group) == size or shape != (tuple(group[0].pair.vis.shape),
                                                      tuple(group[0].pair.ir.shape))):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


class ImageSink:
    """Writes ``<folder>/<stem><ext>``, or one fixed file, atomically."""

    def __init__(self, folder: Optional[Path] = None, ext: str = '.png', single: Optional[Path] = None):
        self.folder, self.ext, self.single = folder, ext, single
        self.count = 0

    def write(self, stem: str, img: np.ndarray) -> None:
        write_image(self.single or self.folder / f"{stem}{self.ext}", img)
        self.count += 1

    def close(self) -> None:
        pass


class VideoSink:
    """Writes frames to a temporary video beside ``path``, renamed onto it when closed."""

    def __init__(self, path: Path, fps: float, size: Tuple[int, int]):
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        codec = VIDEO_CODECS.get(path.suffix.lower())
        if codec is None:
            raise ConfigError(f"--out: {path}: video output must end in "
                              f"{', '.join(VIDEO_CODECS)} (or use --frames)")
        h, w = size
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise ConfigError(f"--out: {path}: OpenCV cannot write {codec} video here "
                              f"(try .avi, or --frames)")
        self.size, self.count = size, 0

    def write(self, stem: str, img: np.ndarray) -> None:
        if img.shape[:2] != self.size:
            raise DataError(f"frame {stem} is {img.shape[0]}x{img.shape[1]}, the video is "
                            f"{self.size[0]}x{self.size[1]}")
        rgb = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.count += 1

    def close(self) -> None:
        self.writer.release()
        if self.count:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
