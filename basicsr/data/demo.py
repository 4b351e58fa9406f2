"""Synthetic visible/thermal pairs for demos, smoke training runs and tests.

Layout written under ``root``::

    train/vis/NNNN.png   (H, W, 3) 8-bit RGB        train/ir/NNNN.png   (H, W) 8-bit
    train/mask/NNNN.png  (H, W) 8-bit, 0 or 255     (VSM 'dgfusion' mask of the written pair)
    test/vis/NNNN.png    test/ir/NNNN.png
    demo_dataset.json    marker: generator version and parameters, written last

Scenes alternate day (even index) and night (odd index): smooth illumination gradients,
band-limited texture, buildings and a road in the visible image; warm people and cars that
are bright in the thermal image but camouflaged (day) or dark (night) in the visible one;
a thermal image with little texture, blurred; sensor noise in both.

Determinism: every image draws from its own ``numpy`` PCG64 stream seeded by
``(seed, split, index)`` and uses only uniform draws, + - * / sqrt and array indexing (no
transcendental functions, no OpenCV filtering), so the pixels are identical across runs,
machines and library versions. The PNG bytes are identical given the same OpenCV/zlib.

Run as ``python -m basicsr.data.demo [--root datasets/demo] [--force]``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from basicsr.data.saliency import saliency_mask
from basicsr.utils.errors import ConfigError, DataError, DGFusionError

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MARKER_NAME = 'demo_dataset.json'
SPLIT_IDS: Dict[str, int] = {'train': 0, 'test': 1}
# A temporary folder left this long without a new file is from an interrupted run.
STALE_AFTER_S = 600.0
MIN_SIZE = 16

Array = np.ndarray


@dataclass
class DemoPair:
    """One rendered pair.

    Attributes:
        vis: (H, W, 3) uint8 RGB.
        ir: (H, W) uint8.
        objects: (H, W) bool, True on the warm objects (people, cars).
        night: whether the scene is a night scene.
    """

    vis: Array
    ir: Array
    objects: Array
    night: bool


# --------------------------------------------------------------------------------------------
# deterministic image operations (float64, values roughly in [0, 1])

def _blur(img: Array, passes: int) -> Array:
    """``passes`` separable [1, 2, 1] / 4 filterings with edge replication; (H, W) -> (H, W)."""
    for _ in range(passes):
        p = np.pad(img, ((1, 1), (0, 0)), mode='edge')
        img = (p[:-2] + 2.0 * p[1:-1] + p[2:]) * 0.25
        p = np.pad(img, ((0, 0), (1, 1)), mode='edge')
        img = (p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]) * 0.25
    return img


def _upsample(grid: Array, cell: int, height: int, width: int) -> Array:
    """Bilinear interpolation of a coarse (gh, gw) grid with ``cell`` pixels per node."""
    y = np.arange(height, dtype=np.float64) / cell
    x = np.arange(width, dtype=np.float64) / cell
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    top = grid[y0][:, x0] * (1.0 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1.0 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1.0 - fy) + bottom * fy


def _texture(rng: np.random.Generator, height: int, width: int, cells: Sequence[int]) -> Array:
    """Band-limited value noise: octaves of interpolated uniform noise, about in [-0.5, 0.5]."""
    out = np.zeros((height, width))
    amp, total = 1.0, 0.0
    for cell in cells:
        cell = max(int(cell), 2)
        grid = rng.random((height // cell + 2, width // cell + 2)) - 0.5
        out += amp * _upsample(grid, cell, height, width)
        total += amp
        amp *= 0.6
    return out / total


def _noise(rng: np.random.Generator, shape: Tuple[int, ...], amplitude: float) -> Array:
    """Triangular sensor noise in [-amplitude, amplitude] (sum of two uniforms)."""
    return (rng.random(shape) + rng.random(shape) - 1.0) * amplitude


def _quantise(img: Array) -> Array:
    """[0, 1] float -> uint8, rounding half up."""
    return np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# scene

def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, SPLIT_IDS[split], index])))


def render_pair(seed: int, split: str, index: int, size: Tuple[int, int] = (128, 160)) -> DemoPair:
    """Render pair ``index`` of ``split`` ('train' or 'test'); the same arguments give the same pixels.

    Args:
        seed: non-negative dataset seed.
        split: 'train' or 'test'.
        index: image index (even: day, odd: night).
        size: (H, W), each >= 16.

    Returns:
        :class:`DemoPair` with the uint8 images and the warm-object mask.
    """
    rng = _rng(seed, split, index)
    night = index % 2 == 1
    h, w = size
    yy = np.repeat((np.arange(h, dtype=np.float64) / (h - 1))[:, None], w, axis=1)  # 0 top .. 1 bottom
    xx = np.repeat((np.arange(w, dtype=np.float64) / (w - 1))[None, :], h, axis=0)  # 0 left .. 1 right
    tex = _texture(rng, h, w, (h / 4, h / 8, h / 16, h / 32, h / 64))
    tex_coarse = _texture(rng, h, w, (h / 2, h / 4))

    # visible luminance (lum) with an RGB tint; thermal (therm) in [0, 1]
    horizon = 0.25 + 0.2 * rng.random()
    ground = yy >= horizon
    sky_lum = 0.7 + 0.25 * (1.0 - yy / horizon) + 0.04 * tex
    ground_lum = 0.35 + 0.2 * rng.random() + 0.2 * (rng.random() - 0.5) * (xx - 0.5) + 0.35 * tex
    lum = np.where(ground, ground_lum, sky_lum)
    ground_tint = np.array([0.8 + 0.2 * rng.random(), 0.85 + 0.15 * rng.random(), 0.55 + 0.2 * rng.random()])
    tint = np.where(ground[..., None], ground_tint, np.array([0.75, 0.85, 1.0]))
    therm = np.where(ground, 0.3 + 0.1 * (yy - horizon) + 0.06 * tex_coarse, 0.08 + 0.08 * yy)

    # buildings standing on the horizon
    lit = np.zeros((h, w), dtype=bool)  # windows lit at night
    for _ in range(int(rng.integers(1, 4))):
        x0 = rng.random() * 0.9
        bw, bh = 0.08 + 0.2 * rng.random(), 0.1 + 0.2 * rng.random()
        inside = (xx >= x0) & (xx < x0 + bw) & (yy >= horizon - bh) & (yy < horizon + 0.03)
        lum = np.where(inside, 0.2 + 0.5 * rng.random() + 0.1 * tex, lum)
        # windows on a grid of 4-8 px cells: dark by day, some lit at night
        period = float(rng.integers(4, 9))
        cell_x = np.floor(xx * (w - 1) * 2.0 / period).astype(np.int64)
        cell_y = np.floor(yy * (h - 1) * 2.0 / period).astype(np.int64)
        windows = inside & (cell_x % 2 == 1) & (cell_y % 2 == 1) & (yy < horizon - 0.02)
        lum = np.where(windows, 0.12 * lum, lum)
        lit |= windows & (rng.random((h, w))[cell_y, cell_x] < 0.35)
        tint = np.where(inside[..., None], np.array([0.9 + 0.1 * rng.random(), 0.9, 0.85 + 0.15 * rng.random()]), tint)
        therm = np.where(inside, 0.32 + 0.15 * rng.random() + 0.02 * tex_coarse, therm)

    # a straight road across the ground, with a dashed centre line
    px, py = w * rng.random(), h * (horizon + (1.0 - horizon) * rng.random())
    dx, dy = rng.random() - 0.5, 0.2 * (rng.random() - 0.5)
    norm = np.sqrt(dx * dx + dy * dy) + 1e-9
    tx, ty = dx / norm, dy / norm
    across = np.abs(-ty * (xx * (w - 1) - px) + tx * (yy * (h - 1) - py))
    along = tx * (xx * (w - 1) - px) + ty * (yy * (h - 1) - py)
    half_width = max(2.0, 0.06 * h)
    road = ground & (across < half_width)
    lum = np.where(road, 0.28 + 0.08 * tex, lum)
    lum = np.where(road & (across < 0.6) & (np.floor(along / 6.0) % 2 == 0), 0.85, lum)
    tint = np.where(road[..., None], np.array([1.0, 1.0, 1.0]), tint)
    therm = np.where(road, (0.38 if night else 0.5) + 0.03 * tex_coarse, therm)

    rgb = lum[..., None] * tint
    if night:
        rgb = rgb * (0.12 + 0.1 * rng.random())
        rgb = np.where(lit[..., None], np.array([0.95, 0.85, 0.55]), rgb)
        therm = np.where(lit, therm + 0.04, therm)

    # warm objects: camouflaged in the visible image, bright in the thermal one
    objects = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        cy = horizon + 0.08 + (0.95 - horizon - 0.08) * rng.random()
        cx = 0.05 + 0.9 * rng.random()
        near = 0.5 + (cy - horizon) / (1.0 - horizon)  # farther objects are smaller
        ry = (yy - cy) * (h - 1)
        rx = (xx - cx) * (w - 1)
        if rng.random() < 0.6:  # person: tall ellipse
            b = max(2.0, 0.11 * h * near)
            a = max(1.5, 0.35 * b)
            r2 = (rx / a) ** 2 + (ry / b) ** 2
            shape = r2 <= 1.0
        else:  # car: wide rounded rectangle (superellipse of power 4)
            a = max(2.5, 0.1 * w * near)
            b = max(1.5, 0.4 * a)
            r2 = (rx / a) ** 2 + (ry / b) ** 2
            shape = (rx / a) ** 4 + (ry / b) ** 4 <= 1.0
        objects |= shape
        temperature = 0.78 + 0.17 * rng.random()
        therm = np.where(shape, temperature - 0.08 * np.minimum(r2, 1.0), therm)
        # keep the local background's colour and texture, shifted by a few percent
        rgb = np.where(shape[..., None], rgb * (0.94 + 0.12 * rng.random()), rgb)

    if night:  # street lamps: soft glows (1 / (1 + d^2 / r^2) needs no exp)
        for _ in range(int(rng.integers(0, 3))):
            ly, lx = horizon * rng.random(), rng.random()
            radius2 = (0.05 + 0.05 * rng.random()) ** 2
            d2 = (yy - ly) ** 2 + ((xx - lx) * (w / h)) ** 2
            rgb = rgb + (0.5 / (1.0 + d2 / radius2))[..., None] * np.array([1.0, 0.85, 0.6])

    rgb = rgb + _noise(rng, (h, w, 3), 0.03 if night else 0.012)
    therm = _blur(therm, max(1, round(h / 64)))
    therm = therm + _noise(rng, (h, w), 0.02) + 0.02 * (rng.random(w) - 0.5)[None, :]
    return DemoPair(vis=_quantise(rgb), ir=_quantise(therm), objects=objects, night=night)


# --------------------------------------------------------------------------------------------
# files

MaskFn = Callable[[Array, Array, str], Array]


def _write_png(path: Path, img: Array) -> None:
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode the image as PNG")
    path.write_bytes(buf.tobytes())


def _write_split(folder: Path, split: str, count: int, size: Tuple[int, int], seed: int,
                 mask_fn: MaskFn) -> None:
    kinds = ['vis', 'ir'] + (['mask'] if split == 'train' else [])
    for kind in kinds:
        (folder / split / kind).mkdir(parents=True)
    for index in range(count):
        pair = render_pair(seed, split, index, size)
        name = f'{index:04d}.png'
        _write_png(folder / split / 'vis' / name, pair.vis[..., ::-1])  # OpenCV writes BGR
        _write_png(folder / split / 'ir' / name, pair.ir)
        if 'mask' in kinds:
            mask = np.asarray(mask_fn(pair.vis, pair.ir, 'dgfusion'), dtype=np.float64)
            _write_png(folder / split / 'mask' / name, _quantise(mask))


def _read_marker(root: Path) -> Optional[dict]:
    try:
        return json.loads((root / MARKER_NAME).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None


def _newest_mtime(folder: Path) -> float:
    """Newest modification time of ``folder`` and its sub-folders (a new file touches its folder)."""
    newest = 0.0
    for dirpath, _, _ in os.walk(folder):
        try:
            newest = max(newest, os.stat(dirpath).st_mtime)
        except OSError:
            pass
    return newest


def _remove_stale(root: Path) -> None:
    """Delete temporary folders of interrupted runs beside ``root`` (idle > STALE_AFTER_S)."""
    now = time.time()
    for pattern in (f'.{root.name}.partial-*', f'.{root.name}.old-*'):
        for leftover in root.parent.glob(pattern):
            if leftover.is_dir() and now - _newest_mtime(leftover) > STALE_AFTER_S:
                logger.info('removing %s, left by an interrupted run', leftover)
                shutil.rmtree(leftover, ignore_errors=True)


def _fresh_folder(root: Path, kind: str) -> Path:
    """Create a new hidden folder beside ``root`` (normal permissions, unlike ``mkdtemp``)."""
    folder = root.parent / f'.{root.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}'
    folder.mkdir()
    return folder


def _swap_in(tmp: Path, root: Path, want: dict) -> None:
    """Move the finished ``tmp`` folder to ``root``, replacing an older demo dataset there."""
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        try:
            os.replace(tmp, root)
            return
        except OSError:
            if _read_marker(root) == want:  # another process finished the same dataset first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            raise
    old = _fresh_folder(root, 'old')
    os.replace(root, old / root.name)
    os.replace(tmp, root)
    shutil.rmtree(old, ignore_errors=True)


def _validate(n_train: int, n_test: int, size: Sequence[int], seed: int) -> Tuple[int, int]:
    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(n_train) or n_train < 1:
        raise ConfigError(f"demo dataset: n_train must be an int >= 1, got {n_train!r}")
    if not is_int(n_test) or n_test < 0:
        raise ConfigError(f"demo dataset: n_test must be an int >= 0, got {n_test!r}")
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"demo dataset: seed must be an int >= 0, got {seed!r}")
    if len(size) != 2 or not all(is_int(s) and s >= MIN_SIZE for s in size):
        raise ConfigError(f"demo dataset: size must be (H, W) with ints >= {MIN_SIZE}, got {size!r}")
    return int(size[0]), int(size[1])


def make_demo_dataset(root: Union[str, Path] = 'datasets/demo', n_train: int = 32, n_test: int = 8,
                      size: Tuple[int, int] = (128, 160), seed: int = 0, force: bool = False) -> Path:
    """Write the synthetic dataset under ``root`` unless the same one is already there.

    The dataset is written into a temporary folder beside ``root`` and renamed into place
    with its marker file, so an interrupted run never leaves a folder that looks complete.
    An existing demo dataset with other parameters (or ``force``) is replaced; a folder
    that is not a demo dataset is never touched. Masks are written when
    ``basicsr.data.saliency`` is importable.

    Args:
        root: dataset folder.
        n_train, n_test: number of training and test pairs.
        size: (H, W) of every image.
        seed: dataset seed.
        force: rewrite even if an identical dataset exists.

    Returns:
        ``root`` as a Path.

    Raises:
        ConfigError: invalid parameters.
        DataError: ``root`` exists and is not a demo dataset.
    """
    size = _validate(n_train, n_test, size, seed)
    root = Path(root)
    want = {'generator_version': GENERATOR_VERSION, 'n_train': int(n_train), 'n_test': int(n_test),
            'size': list(size), 'seed': int(seed), 'masks': True}
    if not force and _read_marker(root) == want:
        logger.info('demo dataset already complete at %s', root)
        return root
    if root.exists() and not (root.is_dir() and ((root / MARKER_NAME).exists() or not any(root.iterdir()))):
        raise DataError(f"{root}: exists and is not a demo dataset (no {MARKER_NAME}); "
                        f"choose another root or remove it")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    start = time.perf_counter()
    tmp = _fresh_folder(root, 'partial')
    try:
        _write_split(tmp, 'train', n_train, size, seed, saliency_mask)
        _write_split(tmp, 'test', n_test, size, seed, None)
        (tmp / MARKER_NAME).write_text(json.dumps(want, indent=1) + '\n', encoding='utf-8')
        _swap_in(tmp, root, want)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info('wrote demo dataset (%d train, %d test, %dx%d) to %s in %.1f s',
                n_train, n_test, size[0], size[1], root, time.perf_counter() - start)
    return root


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: ``python -m basicsr.data.demo [--root DIR] [--force] ...``."""
    parser = argparse.ArgumentParser(prog='python -m basicsr.data.demo',
                                     description='Write a synthetic visible/thermal demo dataset.')
    parser.add_argument('--root', default='datasets/demo', help='dataset folder (default: datasets/demo)')
    parser.add_argument('--n-train', type=int, default=32, help='training pairs (default: 32)')
    parser.add_argument('--n-test', type=int, default=8, help='test pairs (default: 8)')
    parser.add_argument('--size', type=int, nargs=2, default=(128, 160), metavar=('H', 'W'),
                        help='image size (default: 128 160)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (default: 0)')
    parser.add_argument('--force', action='store_true', help='rewrite even if the dataset exists')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    from basicsr.utils.signals import sigterm_as_interrupt
    try:
        with sigterm_as_interrupt():
            root = make_demo_dataset(args.root, args.n_train, args.n_test, tuple(args.size), args.seed,
                                     args.force)
    except DGFusionError as err:
        sys.stderr.write(f'error: {err}\n')
        return 2
    except OSError as err:
        sys.stderr.write(f'error: cannot write the demo dataset to {args.root}: {err.strerror or err}\n')
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f'interrupted: the demo dataset in {args.root} is not complete; the next '
                         f'run makes it again\n')
        return 130
    sys.stdout.write(f'{root}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

