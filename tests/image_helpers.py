"""Image files for input tests, made without decoding them."""
import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says side x side grey pixels (only one row of data follows): PIL
    refuses it at open as a decompression bomb, and writing it needs no memory."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(b"\0" * (side + 1))) + _chunk(b"IEND", b""))
    return path
