"""Image sizes read from file headers, without decoding the pixels.

Used to refuse images whose declared size would exhaust memory before a decoder allocates
it. Knows PNG, JPEG, BMP and TIFF (the formats :mod:`basicsr.utils.img_util` lists); other
or unparsable files give ``None`` and are left to the decoder.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Optional, Tuple, Union

Size = Tuple[int, int]  # (width, height)

# JPEG start-of-frame markers (0xC0..0xCF except DHT 0xC4, JPG 0xC8, DAC 0xCC)
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _png(f: BinaryIO, head: bytes) -> Optional[Size]:
    if head[12:16] != b'IHDR' or len(head) < 24:
        return None
    width, height = struct.unpack('>II', head[16:24])
    return width, height


def next_jpeg_marker(f: BinaryIO) -> Optional[int]:
    """The code of the next JPEG marker from ``f``'s position (None at the end of the file)."""
    byte = f.read(1)
    while byte and byte != b'\xff':  # skip to the next marker
        byte = f.read(1)
    while byte == b'\xff':  # fill bytes
        byte = f.read(1)
    return byte[0] if byte else None


def _jpeg(f: BinaryIO) -> Optional[Size]:
    f.seek(2)
    while True:
        marker = next_jpeg_marker(f)
        if marker is None:
            return None
        if marker == 0xDA:  # scan data before any frame header: not a usable file
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack('>H', length_bytes)[0]
        if marker in SOF_MARKERS:
            data = f.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack('>HH', data[1:5])
            return width, height
        f.seek(length - 2, 1)


def _bmp(f: BinaryIO, head: bytes) -> Optional[Size]:
    if len(head) < 26:
        return None
    header_size = struct.unpack('<I', head[14:18])[0]
    if header_size == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack('<HH', head[18:22])
    else:
        width, height = struct.unpack('<ii', head[18:26])
    return abs(width), abs(height)  # a negative height means rows stored top-down


def _tiff(f: BinaryIO, head: bytes) -> Optional[Size]:
    order = '<' if head[:2] == b'II' else '>'
    if struct.unpack(order + 'H', head[2:4])[0] != 42:  # 43 = BigTIFF: left to the decoder
        return None
    f.seek(struct.unpack(order + 'I', head[4:8])[0])
    count_bytes = f.read(2)
    if len(count_bytes) < 2:
        return None
    found = {}
    for _ in range(struct.unpack(order + 'H', count_bytes)[0]):
        entry = f.read(12)
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + 'HH', entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            found[tag] = (struct.unpack(order + 'H', entry[8:10])[0] if kind == 3
                          else struct.unpack(order + 'I', entry[8:12])[0])
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def declared_size(path: Union[str, Path]) -> Optional[Size]:
    """``(width, height)`` declared by the header of image file ``path``, or ``None``.

    ``None`` means: format not recognised or header too short to tell. IO errors propagate.
    """
    with open(path, 'rb') as f:
        head = f.read(32)
        try:
            if head.startswith(b'\x89PNG\r\n\x1a\n'):
                return _png(f, head)
            if head.startswith(b'\xff\xd8'):
                return _jpeg(f)
            if head.startswith(b'BM'):
                return _bmp(f, head)
            if head[:4] in (b'II*\x00', b'MM\x00*'):
                return _tiff(f, head)
        except (struct.error, OSError, ValueError):
            return None
    return None
