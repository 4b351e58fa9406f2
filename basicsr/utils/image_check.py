"""Is an image file whole? Header facts and completeness, without decoding the pixels.

Used by ``train.py --dry-run`` to report every damaged training, validation and mask file
together before a run starts. Per format:

* PNG: the header (IHDR) gives size, channels and bit depth; every chunk must lie inside
  the file and the file must reach its IEND chunk.
* JPEG: the frame header (SOF) gives size and channels; after the start of scan the file
  must hold the end-of-image marker (a decoder silently fills a truncated JPEG with gray).
* BMP: the header gives size and bits per pixel; uncompressed pixel rows must fit in the file.
* anything else (TIFF, ...): decoded with :func:`basicsr.utils.img_util.read_image`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

from basicsr.utils.errors import DataError
from basicsr.utils.image_header import SOF_MARKERS, next_jpeg_marker

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # by colour type (3: palette, decoded to RGB)


@dataclass(frozen=True)
class ImageInfo:
    """What a whole image file declares: ``height`` x ``width`` pixels, ``channels`` (1-4)."""

    height: int
    width: int
    channels: int

    @property
    def size(self) -> str:
        return f"{self.height}x{self.width}"


class Incomplete(Exception):
    """The file is shorter than its own structure says (the message tells where)."""


def _png(f: BinaryIO, head: bytes, length: int) -> ImageInfo:
    if len(head) < 26 or head[12:16] != b'IHDR':
        raise Incomplete('no PNG header chunk (IHDR)')
    width, height = struct.unpack('>II', head[16:24])
    depth, colour = head[24], head[25]
    if colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise Incomplete(f"unsupported PNG colour type {colour} / bit depth {depth}")
    pos = 8
    while True:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            raise Incomplete(f"truncated: the file ends at byte {length} before the PNG end "
                             f"chunk (IEND)")
        size, kind = struct.unpack('>I4s', chunk)
        pos += 12 + size
        if pos > length:
            raise Incomplete(f"truncated: its {kind.decode('latin-1')} chunk runs to byte {pos}, "
                             f"the file ends at byte {length}")
        if kind == b'IEND':
            return ImageInfo(height, width, _PNG_CHANNELS[colour])


def _jpeg(f: BinaryIO) -> ImageInfo:
    f.seek(2)
    info: Optional[ImageInfo] = None
    while True:
        marker = next_jpeg_marker(f)
        if marker is None:
            raise Incomplete('truncated: the file ends inside the JPEG header')
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker == 0xD9:
            raise Incomplete('no image data: the JPEG ends before its scan')
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            raise Incomplete('truncated: the file ends inside the JPEG header')
        length = struct.unpack('>H', length_bytes)[0]
        if marker in SOF_MARKERS:
            data = f.read(6)
            if len(data) < 6:
                raise Incomplete('truncated: the file ends inside the JPEG frame header')
            height, width = struct.unpack('>HH', data[1:5])
            info = ImageInfo(height, width, data[5])
            f.seek(length - 8, 1)
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data up to the end-of-image marker
            if info is None:
                raise Incomplete('no JPEG frame header before the image data')
            if b'\xff\xd9' not in f.read():
                raise Incomplete('truncated: no JPEG end-of-image marker after the image data')
            return info
        f.seek(length - 2, 1)


def _bmp(head: bytes, length: int) -> ImageInfo:
    if len(head) < 26:
        raise Incomplete('truncated: the file ends inside the BMP header')
    offset, header_size = struct.unpack('<II', head[10:18])
    if header_size == 12:  # BITMAPCOREHEADER
        width, height, _, bpp = struct.unpack('<HHHH', head[18:26])
        compression = 0
    else:
        if len(head) < 34:
            raise Incomplete('truncated: the file ends inside the BMP header')
        width, height, _, bpp, compression = struct.unpack('<iiHHI', head[18:34])
    width, height = abs(width), abs(height)
    if compression in (0, 3):  # uncompressed rows (bit fields too), padded to 4 bytes
        end = offset + ((bpp * width + 31) // 32) * 4 * height
        if end > length:
            raise Incomplete(f"truncated: its pixel rows run to byte {end}, the file ends at "
                             f"byte {length}")
    return ImageInfo(height, width, 4 if bpp == 32 else (1 if bpp in (1, 2, 4) else 3))


def inspect_image(path: Union[str, Path]) -> ImageInfo:
    """Size and channels of the image file ``path``, after checking that it is whole.

    Raises:
        DataError: ``<path>: <problem>`` for a missing, empty (0-byte), unreadable, truncated
            or undecodable file, or one with an unsupported channel count.
    """
    from basicsr.utils.img_util import read_image
    path = Path(path)
    try:
        length = path.stat().st_size
        if length == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with open(path, 'rb') as f:
            head = f.read(34)
            if head.startswith(PNG_SIGNATURE):
                info = _png(f, head, length)
            elif head.startswith(b'\xff\xd8'):
                info = _jpeg(f)
            elif head.startswith(b'BM'):
                info = _bmp(head, length)
            else:
                img = read_image(path)
                info = ImageInfo(img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (Incomplete, struct.error) as exc:
        raise DataError(f"{path}: {exc}") from None
    if not 1 <= info.channels <= 4:
        raise DataError(f"{path}: {info.channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if info.height == 0 or info.width == 0:
        raise DataError(f"{path}: header declares an empty image ({info.size})")
    return info
