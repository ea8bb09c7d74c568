"""Customers' photos and PDFs: checked by their bytes, made small, kept, and sent to Claude.

The adapters fetch what a message carries (``bots.common.Platform.fetch``, only from the
platform's own hosts, never more than ``FileLimits.fetch_bytes``); ``check`` then decides, from
the bytes alone, what Claude may see:

- the type comes from the file's first bytes, never its name or declared type: JPEG, PNG, GIF
  and WebP images and PDF documents (what the Messages API reads); anything else (HEIC, SVG,
  executables, text renamed ``.png``) is refused;
- an image is decoded in full with Pillow (a truncated or corrupt one fails there), refused
  before decoding when its header claims more than ``max_pixels`` (a decompression bomb),
  turned upright (EXIF orientation), downscaled to at most 1,568 px on the long edge and about
  1.15 megapixels (beyond that Anthropic downscales anyway, at our cost), and re-encoded as
  JPEG, or PNG when it came lossless or has transparency: the copy kept and sent carries no
  metadata (no GPS position) and only its first frame;
- a PDF must open with pypdf, not be encrypted, and have at most ``pdf_pages`` pages.

Every refused file gets a sentence for the customer (the persona's ``files`` texts), which
Claude reads too (``core.prompt.refused_files_note``); nothing is dropped silently. What is
accepted is kept in the database with its conversation (``ConversationStore.keep_files``) and
referenced from the stored turn by its SHA-256 (``block``), so a restart, a later turn and the
staff hand-off still have it; ``expand`` turns the references into base64 for the request.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from core.config import FileTexts
from core.types import Attachment, file_label

log = logging.getLogger("supportbot.files")

MB = 1024 * 1024
LONG_EDGE = 1568
MAX_SENT_PIXELS = 1_150_000
"""Anthropic's guidance: an image over about 1.15 megapixels (or 1,568 px on a side) is
downscaled by the API before the model sees it, so sending more only costs time."""
JPEG_QUALITY = 85
MAX_SENT_IMAGE_BYTES = 3_750_000
"""The Messages API takes images of up to 5 MB as base64, which is 4/3 of the bytes."""
MAX_REQUEST_FILE_BYTES = 20 * MB
"""Files sent in one request, at most (the API takes 32 MB per request, as base64: 4/3 of
the bytes, and the words and the persona travel too): older files beyond it are sent as their
placeholders."""


class Problem(StrEnum):
    """Why the adapter could not fetch an attachment."""

    TOO_LARGE = "too_large"
    """Declared or found larger than ``FileLimits.fetch_bytes``: not (fully) downloaded."""
    UNAVAILABLE = "unavailable"
    """The download failed, or its URL was not on the platform's own hosts."""
    TOO_MANY = "too_many"
    """Past ``FileLimits.max_files`` on one message: not downloaded."""


@dataclass(frozen=True, slots=True)
class FileLimits:
    """What a customer may send in one message (``SUPPORTBOT_MAX_*``)."""

    max_files: int = 10
    image_bytes: int = 5 * MB
    pdf_bytes: int = 20 * MB
    pdf_pages: int = 100
    max_pixels: int = 50_000_000
    """An image whose header claims more pixels than this is refused before it is decoded."""

    @property
    def fetch_bytes(self) -> int:
        """The most an adapter downloads of one file: the larger of the two size limits."""
        return max(self.image_bytes, self.pdf_bytes)


@dataclass(frozen=True, slots=True)
class Kept:
    """An accepted file, ready to store and send: the bytes are the checked, downscaled copy."""

    name: str
    media_type: str
    data: bytes = field(repr=False)
    width: int = 0
    height: int = 0
    pages: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    def block(self) -> dict[str, Any]:
        """The content block stored in the turn: a reference to the kept bytes, with what the
        window needs to count it and what a placeholder needs to name it."""
        source = {"type": "blob", "id": self.sha256, "media_type": self.media_type}
        if self.is_image:
            size = {"width": self.width, "height": self.height}
            return {"type": "image", "source": source, "name": self.name, **size}
        return {"type": "document", "source": source, "name": self.name, "pages": self.pages}

    def attachment(self) -> Attachment:
        """As a file to post (to staff), under a name whose extension matches its bytes."""
        suffix = _SUFFIXES[self.media_type]
        stem = PurePosixPath(self.name).stem or "file"
        return Attachment(name=f"{stem}{suffix}", size=len(self.data), data=self.data)


@dataclass(frozen=True, slots=True)
class Checked:
    """What ``check`` made of a message's attachments."""

    kept: tuple[Kept, ...] = ()
    refusals: tuple[str, ...] = field(default=())
    """One sentence for the customer per refused file (or group of files past the limit)."""


_SUFFIXES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}
_LOSSLESS = frozenset({"image/png", "image/gif"})
_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}


def sniff(data: bytes) -> str | None:
    """The media type the bytes say, among those Claude reads; ``None`` for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def check(
    attachments: Sequence[Attachment], limits: FileLimits, texts: FileTexts | None = None
) -> Checked:
    """Decide which of a message's fetched attachments Claude may see, and say why each other
    one was refused in ``texts`` (the persona's; CPU-bound: the engine runs it in a thread)."""
    said = texts or FileTexts()
    sizes = {"image_mb": _mb(limits.image_bytes), "pdf_mb": _mb(limits.pdf_bytes)}
    kept: list[Kept] = []
    refusals: list[str] = []
    too_many: list[str] = []
    for attachment in attachments:
        if attachment.problem == Problem.TOO_MANY or len(kept) >= limits.max_files:
            too_many.append(attachment.name)
            continue
        found = _one(attachment, limits)
        if isinstance(found, Kept):
            kept.append(found)
        else:
            text, fields = found
            refusals.append(getattr(said, text).format(name=attachment.name, **sizes, **fields))
    if too_many:
        names = _names(too_many)
        refusals.append(said.too_many_files.format(max_files=limits.max_files, names=names))
    return Checked(tuple(kept), tuple(refusals))


Refusal = tuple[str, dict[str, Any]]
"""Which ``FileTexts`` sentence refuses a file, and its placeholders beyond the name."""


def _one(attachment: Attachment, limits: FileLimits) -> Kept | Refusal:
    """The accepted copy of one attachment, or what refuses it."""
    name = attachment.name
    data = attachment.data
    if attachment.problem == Problem.TOO_LARGE:
        return "too_large", {}
    if data is None:
        return "not_downloaded", {}
    media_type = sniff(data)
    if media_type is None:
        log.info("refused a file of %d bytes: not a type Claude reads", len(data))
        ext = PurePosixPath(name).suffix.lower()
        if ext and ext not in _SUFFIXES.values() and ext != ".jpeg":
            return "unsupported_type", {"ext": ext}
        return "not_readable", {}
    if media_type == "application/pdf":
        if len(data) > limits.pdf_bytes:
            return "too_large", {}
        return _pdf(name, data, limits)
    if len(data) > limits.image_bytes:
        return "too_large", {}
    return _image(name, data, media_type, limits)


def _image(name: str, data: bytes, media_type: str, limits: FileLimits) -> Kept | Refusal:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            # Pillow warns past Image.MAX_IMAGE_PIXELS and raises past twice that; our own
            # limit is checked on the header first, and any warning left counts as refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[media_type]]) as opened:
                if opened.width * opened.height > limits.max_pixels:
                    log.warning(
                        "refused an image of %dx%d pixels (over %d)",
                        opened.width,
                        opened.height,
                        limits.max_pixels,
                    )
                    return "too_many_pixels", {}
                opened.seek(0)
                # A JPEG can be decoded at 1/2, 1/4 or 1/8 scale: far quicker for a phone
                # photo that is downscaled anyway (never below the size it is sent at).
                opened.draft("RGB", _sent_size(opened.width, opened.height))
                opened.load()
                image = ImageOps.exif_transpose(opened)
                return _encoded(name, image, lossless=media_type in _LOSSLESS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        log.warning("refused an image: Pillow saw a decompression bomb")
        return "too_many_pixels", {}
    except Exception as exc:  # Pillow raises many types for damaged files; all mean the same
        log.info("refused an image that does not decode: %s", type(exc).__name__)
        return "damaged", {}


def _sent_size(width: int, height: int) -> tuple[int, int]:
    """The size an image of ``width`` × ``height`` is sent at (never larger than it is)."""
    scale = min(1.0, LONG_EDGE / max(width, height), math.sqrt(MAX_SENT_PIXELS / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def _encoded(name: str, image: Any, *, lossless: bool) -> Kept:
    """``image`` downscaled to what Claude looks at and re-encoded without metadata: as PNG
    when it came lossless (screenshots keep crisp text) or has transparency, unless that is
    over the API's limit; as JPEG otherwise."""
    from PIL import Image

    size = _sent_size(image.width, image.height)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    transparent = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if transparent or lossless:
        out = io.BytesIO()
        image.convert("RGBA" if transparent else "RGB").save(out, format="PNG")
        if out.tell() <= MAX_SENT_IMAGE_BYTES:
            return Kept(name, "image/png", out.getvalue(), width=image.width, height=image.height)
    if transparent:
        # Noise does not compress: such a PNG would be over the API's limit, a JPEG is not.
        rgba = image.convert("RGBA")
        image = Image.new("RGB", image.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
    return Kept(name, "image/jpeg", out.getvalue(), width=image.width, height=image.height)


def _pdf(name: str, data: bytes, limits: FileLimits) -> Kept | Refusal:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return "encrypted", {}
        pages = len(reader.pages)
    except Exception as exc:  # pypdf raises many types for damaged files; all mean the same
        log.info("refused a PDF that does not open: %s", type(exc).__name__)
        return "damaged", {}
    if pages > limits.pdf_pages:
        return "too_many_pages", {"pages": pages, "max_pages": limits.pdf_pages}
    if pages == 0:
        return "no_pages", {}
    return Kept(name, "application/pdf", data, pages=pages)


def _mb(size: int) -> str:
    return f"{size / MB:g} MB"


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# -- in the history ---------------------------------------------------------------------------


def is_file(block: Mapping[str, Any]) -> bool:
    """A stored block that references a kept file."""
    source = block.get("source")
    return isinstance(source, Mapping) and source.get("type") == "blob"


def placeholder(block: Mapping[str, Any]) -> dict[str, Any]:
    """What stands in for a file block dropped from the window (or whose bytes are gone)."""
    return {"type": "text", "text": file_label(block)}


def referenced(messages: Iterable[Mapping[str, Any]]) -> set[str]:
    """The SHA-256 of every kept file the ``messages`` reference."""
    return {
        block["source"]["id"]
        for message in messages
        for block in message["content"]
        if is_file(block)
    }


def expand(messages: list[dict[str, Any]], blobs: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """``messages`` as the API takes them: each file reference becomes a base64 image or
    document block (its ``cache_control`` kept), or its placeholder if the bytes are gone or
    newer files already fill ``MAX_REQUEST_FILE_BYTES``."""
    room = MAX_REQUEST_FILE_BYTES
    for message in reversed(messages):
        content = message["content"]
        for index in reversed(range(len(content))):
            if not is_file(content[index]):
                continue
            data = blobs.get(content[index]["source"]["id"])
            if data is not None and len(data) > room:
                data = None
            room -= len(data or b"")
            content[index] = _expanded(content[index], data)
    return messages


def _expanded(block: Mapping[str, Any], data: bytes | None) -> dict[str, Any]:
    source = block["source"]
    if data is None:
        log.info("a stored file is gone or over the request's room: sent as its placeholder")
        sent = placeholder(block)
    else:
        encoded = base64.standard_b64encode(data).decode("ascii")
        sent = {
            "type": block["type"],
            "source": {"type": "base64", "media_type": source["media_type"], "data": encoded},
        }
        if block["type"] == "document":
            sent["title"] = block.get("name") or "document"
    if "cache_control" in block:
        sent["cache_control"] = block["cache_control"]
    return sent
