"""Files for the tests, made on the spot with Pillow and pypdf (no binary fixtures)."""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
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


def pixel_flood(kind: str) -> bytes:
    """A tiny ``kind`` ("jpeg", "gif" or "webp") image whose header claims billions of pixels
    (65,000 × 65,000; WebP's most, 16,384 × 16,384): a "pixel flood" that would take gigabytes
    to decode."""
    out = io.BytesIO()
    if kind == "webp":
        Image.new("RGB", (64, 64)).save(out, format="WEBP", lossless=True)
        data = bytearray(out.getvalue())
        # VP8L: after the 0x2f signature, 14 bits of width - 1 and 14 of height - 1.
        rest = int.from_bytes(data[21:25], "little") & 0xF000_0000
        data[21:25] = struct.pack("<I", 16383 | 16383 << 14 | rest)
        return bytes(data)
    Image.new("RGB", (64, 64)).save(out, format=kind.upper())
    data = bytearray(out.getvalue())
    if kind == "jpeg":
        start = data.index(b"\xff\xc0")  # SOF0: marker, length, precision, height, width
        data[start + 5 : start + 9] = struct.pack(">HH", 65000, 65000)
    else:
        data[6:10] = struct.pack("<HH", 65535, 65535)  # the GIF's logical screen
    return bytes(data)


def zip_bomb(size: int = 20 * 1024 * 1024) -> bytes:
    """A zip archive of a few kilobytes holding ``size`` bytes of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("photos.png", bytes(size))
    return out.getvalue()


@functools.cache  # a second or so to make: once per test process
def pdf_bomb(size: int = 80 * 1024 * 1024) -> bytes:
    """A PDF of about 100 kB whose one page lives in a compressed object stream that inflates
    to ``size`` bytes (pypdf stops inflating at 75 MB): a zip bomb in PDF clothing."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    offsets, body = [], b""
    for one in objects:
        offsets.append(len(body))
        body += one + b"\n"
    index = b"".join(b"%d %d " % (number, at) for number, at in enumerate(offsets, start=1))
    deflate = zlib.compressobj(9)
    stream = deflate.compress(index + body) + deflate.compress(b" " * size) + deflate.flush()
    out = bytearray(b"%PDF-1.7\n")
    at_stream = len(out)
    out += b"4 0 obj\n<< /Type /ObjStm /N 3 /First %d /Filter /FlateDecode /Length %d >>\n" % (
        len(index),
        len(stream),
    )
    out += b"stream\n" + stream + b"\nendstream\nendobj\n"
    at_xref = len(out)
    # A cross-reference stream (fields of 1, 4 and 2 bytes): objects 1-3 in the object stream.
    rows = [struct.pack(">BIH", 0, 0, 65535)]
    rows += [struct.pack(">BIH", 2, 4, i) for i in range(3)]
    rows += [struct.pack(">BIH", 1, at_stream, 0), struct.pack(">BIH", 1, at_xref, 0)]
    xref = b"".join(rows)
    out += b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length %d >>\n" % len(xref)
    out += b"stream\n" + xref + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % at_xref
    return bytes(out)
