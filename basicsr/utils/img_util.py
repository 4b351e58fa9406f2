"""Image file io: reading visible/infrared/mask files into float arrays and writing PNGs."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import torch

from basicsr.utils.errors import DataError
from basicsr.utils.image_header import declared_size
from basicsr.utils.rounding import matlab_round

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = 'DGFUSION_MAX_PIXELS'


def max_pixels() -> int:
    """Largest image (width x height) any reader accepts: ``$DGFUSION_MAX_PIXELS`` or 100 MP.

    An environment variable, so that DataLoader workers and every script see the same limit.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, '').strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"{MAX_PIXELS_ENV}={raw[:40]!r}: expected a positive number of pixels")
    return value


def check_declared_size(path: str | Path, limit: int | None = None) -> None:
    """Refuse ``path`` when its header declares more than ``limit`` pixels (before decoding)."""
    limit = max_pixels() if limit is None else limit
    try:
        size = declared_size(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    if size is not None and size[0] * size[1] > limit:
        raise DataError(f"{path}: image header declares {size[0]}x{size[1]} pixels "
                        f"({size[0] * size[1] / 1e6:.0f} MP), above the limit of {limit / 1e6:g} MP "
                        f"(raise it with {MAX_PIXELS_ENV}=<pixels>)")


def list_images(folder: str | Path) -> Dict[str, Path]:
    """Map file stem -> path for every image in ``folder`` (not recursive).

    Raises:
        DataError: if the folder is missing, or two files share a stem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder does not exist")
    out: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith('.'):  # temp files of interrupted writes, macOS '._' files
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            if path.stem in out:
                raise DataError(f"{folder}: two images share the stem '{path.stem}' "
                                f"({out[path.stem].name}, {path.name}); keep one")
            out[path.stem] = path
    return out


def read_image(path: str | Path, limit: int | None = None) -> np.ndarray:
    """Read an image as stored: (H,W) or (H,W,3) RGB, uint8 or uint16 (alpha dropped).

    Files whose header declares more than ``limit`` pixels (default :func:`max_pixels`) are
    refused before decoding.
    """
    path = Path(path)
    img = None
    if path.is_file():
        check_declared_size(path, limit)
        try:
            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # e.g. a size above OpenCV's own limit in a header we cannot parse
            reason = str(exc).strip().splitlines()[-1][:160]
            raise DataError(f"{path}: cannot decode image ({reason})") from None
    if img is None:
        raise DataError(f"{path}: cannot read image (missing, empty or not an image file)")
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: unsupported pixel type {img.dtype} (expected 8- or 16-bit)")
    if img.ndim == 3:
        if img.shape[2] in (1, 2):  # gray, gray + alpha
            img = img[:, :, 0]
        elif img.shape[2] in (3, 4):
            img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
        else:
            raise DataError(f"{path}: unsupported channel count {img.shape[2]}")
    return img


def ir_to_gray(img: np.ndarray) -> np.ndarray:
    """Infrared to one plane: equal channels -> one of them, else BT.601 luma. (H,W)."""
    if img.ndim == 2:
        return img
    if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2]):
        return img[..., 0]
    y = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(matlab_round(y), 0, np.iinfo(img.dtype).max).astype(img.dtype)


def img2tensor(img: np.ndarray) -> torch.Tensor:
    """(H,W) or (H,W,C) float array -> (C,H,W) float32 tensor."""
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def tensor2img(tensor: torch.Tensor) -> np.ndarray:
    """(C,H,W) or (1,C,H,W) tensor in [0,1] -> uint8 (H,W) or (H,W,3) RGB; round(clamp*255)."""
    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    arr = (t.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write an RGB (H,W,3) or gray (H,W) uint8/uint16 image atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(path.suffix or '.png', data)
    if not ok:
        raise DataError(f"{path}: could not encode image")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp_', suffix=path.suffix)
    try:
        with os.fdopen(fd, 'wb') as fh:
            fh.write(buf.tobytes())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
