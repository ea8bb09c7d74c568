"""Files for the tests, made on the spot with Pillow and pypdf (no binary fixtures)."""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter


def jpeg(width: int = 800, height: int = 600, *, color: str = "saddlebrown") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


def png(width: int = 64, height: int = 64, *, alpha: bool = False) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", (width, height), "white").save(out, format="PNG")
    return out.getvalue()


def noisy_png(size: int) -> bytes:
    """A PNG of random pixels at least ``size`` bytes long (noise does not compress)."""
    side = int((size / 3) ** 0.5) + 1
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


def pdf(pages: int = 1, *, padding: int = 0) -> bytes:
    """A PDF of blank ``pages``, made about ``padding`` bytes larger by an embedded file of
    random bytes (which do not compress)."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    if padding:
        writer.add_attachment("scan.bin", os.urandom(padding))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def bomb_png(side: int = 100_000) -> bytes:
    """A valid-looking PNG whose header claims ``side`` × ``side`` pixels: a few hundred bytes
    that would take 10 gigapixels to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
