"""What checking a customer's file costs: ``core.files.check`` on typical phone photos, a
screenshot, a PDF and a decompression bomb, run as the engine runs it (one worker thread each).

Prints, per input: its size, the time to check it (median of ``--runs``), what is kept (size,
pixels) and the tokens it will cost in the window.

Run: ``.venv/bin/python -m bench.files_bench``
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time

from PIL import Image, ImageDraw
from pypdf import PdfWriter

from core import tokens
from core.files import MB, FileLimits, Kept, check
from core.types import Attachment


def photo(width: int, height: int) -> bytes:
    """A photo-like JPEG: gradients and shapes, which compress like a real photo."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i in range(0, width, max(1, width // 40)):
        draw.ellipse(
            (i, i % height, i + width // 10, i % height + height // 10), fill=(i % 255, 90, 40)
        )
    return _written(image, format="JPEG", quality=92)


def screenshot(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 24):
        draw.text(
            (20, y), "Order HG-1042 · 2 × oak side table · delivered 2026-11-30", fill="black"
        )
    return _written(image, format="PNG")


def pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    return _written(writer)


def bomb() -> bytes:
    image = Image.new("1", (60_000, 60_000))  # 3.6 gigapixels, a few hundred kB as PNG
    return _written(image, format="PNG")


def _written(document: Image.Image | PdfWriter, **options: object) -> bytes:
    out = io.BytesIO()
    if isinstance(document, PdfWriter):
        document.write(out)
    else:
        document.save(out, **options)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the refusal lines are not the figures
    inputs = {
        "12 MP phone photo (4000×3000 JPEG)": photo(4000, 3000),
        "3 MP photo (2048×1536 JPEG)": photo(2048, 1536),
        "small photo (800×600 JPEG)": photo(800, 600),
        "screenshot (2560×1440 PNG)": screenshot(2560, 1440),
        "PDF, 20 pages": pdf(20),
        "decompression bomb (60,000² PNG)": bomb(),
    }
    limits = FileLimits()
    print(f"{'input':<38} {'bytes in':>10} {'ms':>7}  kept")
    for name, data in inputs.items():
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            checked = check([Attachment("file", data=data)], limits)
            times.append((time.perf_counter() - start) * 1000)
        kept = checked.kept[0] if checked.kept else None
        print(f"{name:<38} {len(data):>10,} {statistics.median(times):>7.1f}  {describe(kept)}")
    print(f"(limits: photos {limits.image_bytes / MB:g} MB, PDFs {limits.pdf_bytes / MB:g} MB)")


def describe(kept: Kept | None) -> str:
    if kept is None:
        return "refused"
    cost = tokens.file_tokens(kept.block())
    shape = f"{kept.width}×{kept.height}" if kept.is_image else f"{kept.pages} pages"
    return f"{kept.media_type}, {len(kept.data):,} bytes, {shape}, {cost:,} tokens"


if __name__ == "__main__":
    main()
