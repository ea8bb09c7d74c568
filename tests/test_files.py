"""core.files: what a customer's file must be for Claude to see it, decided by its bytes.

Every image is made here with Pillow; no binary fixtures.
"""

from __future__ import annotations

import base64
import io
import os

import pytest
from PIL import Image
from pydantic import ValidationError

from core import files, tokens, window
from core.config import FileTexts
from core.files import MB, FileLimits, Problem, check
from core.types import Attachment, Kind, Turn
from tests.file_helpers import bomb_png, jpeg, noisy_png, pdf, png


def one(name: str, data: bytes | None, **limits: int) -> files.Checked:
    return check([Attachment(name, data=data)], FileLimits(**limits))


def test_a_photo_is_kept_as_a_jpeg_without_metadata() -> None:
    photo = Image.new("RGB", (800, 600), "saddlebrown")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    out = io.BytesIO()
    photo.save(out, format="JPEG", exif=exif)

    checked = one("damaged_table.jpg", out.getvalue())

    [kept] = checked.kept
    assert checked.refusals == ()
    assert (kept.media_type, kept.width, kept.height) == ("image/jpeg", 800, 600)
    assert not Image.open(io.BytesIO(kept.data)).getexif(), "metadata goes"
    block = kept.block()
    assert block["source"] == {"type": "blob", "id": kept.sha256, "media_type": "image/jpeg"}
    assert tokens.file_tokens(block) == 640  # 800 × 600 / 750


def test_a_large_photo_is_downscaled_to_what_claude_looks_at() -> None:
    [kept] = one("wide.jpg", jpeg(4000, 3000)).kept
    assert max(kept.width, kept.height) <= files.LONG_EDGE
    assert kept.width * kept.height <= files.MAX_SENT_PIXELS
    assert abs(kept.width / kept.height - 4 / 3) < 0.01
    assert tokens.file_tokens(kept.block()) <= 1534


def test_transparency_and_lossless_screenshots_are_kept_as_png() -> None:
    [logo] = one("logo.png", png(alpha=True)).kept
    [screenshot] = one("order.png", png(2560, 1440)).kept
    assert logo.media_type == screenshot.media_type == "image/png"
    assert (screenshot.width, screenshot.height) == (1429, 804)


def test_gif_and_webp_are_read_by_their_bytes() -> None:
    gif, webp = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    Image.new("RGB", (10, 10)).save(webp, format="WEBP")
    # Misnamed on purpose: the name never decides.
    checked = check(
        [Attachment("a.png", data=gif.getvalue()), Attachment("b.txt", data=webp.getvalue())],
        FileLimits(),
    )
    assert [k.name for k in checked.kept] == ["a.png", "b.txt"]


def test_a_pdf_receipt_is_kept_with_its_page_count() -> None:
    [kept] = one("receipt.pdf", pdf(2)).kept
    assert (kept.media_type, kept.pages) == ("application/pdf", 2)
    assert kept.block()["type"] == "document"


def test_a_pdf_over_the_page_limit_is_refused() -> None:
    checked = one("manual.pdf", pdf(5), pdf_pages=3)
    assert checked.kept == ()
    assert checked.refusals == (
        "manual.pdf has 5 pages, more than the 3 I can read — could you send just the pages "
        "that matter?",
    )


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        (
            "IMG_2041.heic",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",
            "I can't open .heic files — could you send a JPEG or PNG (or a PDF)?",
        ),
        (
            "notes.png",
            b"these are my notes, not a picture",
            "I can't open notes.png: it is not a photo or PDF I can read — could you send a "
            "JPEG, PNG or PDF instead?",
        ),
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "I can't open .svg files — could you send a JPEG or PNG (or a PDF)?",
        ),
        (
            "setup.exe",
            b"MZ\x90\x00" + b"\x00" * 60,
            "I can't open .exe files — could you send a JPEG or PNG (or a PDF)?",
        ),
        (
            "cut.jpg",
            jpeg()[:400],
            "I couldn't open cut.jpg — it seems to be damaged. Could you send it again?",
        ),
        (
            "broken.pdf",
            b"%PDF-1.7\nnot really",
            "I couldn't open broken.pdf — it seems to be damaged. Could you send it again?",
        ),
    ],
    ids=["heic", "text-renamed-png", "svg", "executable", "truncated-jpeg", "corrupt-pdf"],
)
def test_what_claude_cannot_read_is_refused_with_a_sentence(
    name: str, data: bytes, said: str
) -> None:
    checked = one(name, data)
    assert checked.kept == ()
    assert checked.refusals == (said,)


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    bomb = bomb_png()
    assert len(bomb) < 2000
    checked = one("bomb.png", bomb)
    assert checked.kept == ()
    assert checked.refusals == (
        "bomb.png is too large for me to open — could you send a smaller photo?",
    )


def test_an_image_over_the_size_limit_is_refused() -> None:
    big = noisy_png(6 * MB)
    checked = one("huge.png", big)
    assert checked.refusals == (
        "huge.png is too large for me: I can take photos of up to 5 MB and PDFs of up to 20 MB "
        "— could you send a smaller copy?",
    )


def test_eleven_images_keep_ten_and_say_which_were_left_out() -> None:
    photos = [Attachment(f"p{i}.jpg", data=jpeg(40, 30, color=f"#{i:06x}")) for i in range(11)]
    checked = check(photos, FileLimits())
    assert len(checked.kept) == 10
    assert checked.refusals == (
        "I can look at up to 10 files in one message, so I left out p10.jpg — could you send "
        "the rest in another message?",
    )


def test_files_the_adapter_could_not_fetch_are_refused() -> None:
    checked = check(
        [
            Attachment("far.jpg", problem=Problem.TOO_LARGE),
            Attachment("gone.jpg", problem=Problem.UNAVAILABLE),
        ],
        FileLimits(),
    )
    assert checked.refusals == (
        "far.jpg is too large for me: I can take photos of up to 5 MB and PDFs of up to 20 MB "
        "— could you send a smaller copy?",
        "I couldn't download gone.jpg — could you try sending it again?",
    )


def test_expand_sends_the_bytes_and_a_placeholder_when_they_are_gone() -> None:
    [kept] = one("table.jpg", jpeg()).kept
    messages = [{"role": "user", "content": [kept.block(), {"type": "text", "text": "hi"}]}]
    assert files.referenced(messages) == {kept.sha256}

    [sent] = files.expand(json_copy(messages), {kept.sha256: kept.data})
    image = sent["content"][0]
    assert image == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/jpeg",
            "data": base64.standard_b64encode(kept.data).decode(),
        },
    }
    [missing] = files.expand(json_copy(messages), {})
    assert missing["content"][0] == {"type": "text", "text": "[photo: table.jpg]"}


def test_the_window_drops_old_photos_before_old_words() -> None:
    [kept] = one("table.jpg", jpeg(1000, 750)).kept  # 1,000 tokens
    words = {"type": "text", "text": "words " * 20}
    turns = [
        photo_turn(kept, seq=0),
        Turn("assistant", [words], Kind.MODEL, tokens=tokens.estimate([words]), seq=1),
        photo_turn(kept, seq=2),
        Turn("assistant", [words], Kind.MODEL, tokens=tokens.estimate([words]), seq=3),
        photo_turn(kept, seq=4),
    ]
    assert sum(t.tokens for t in turns) > 2500

    fitted = window.fit(turns, budget=2500)

    assert [t.seq for t in fitted] == [0, 1, 2, 3, 4], "no words were dropped"
    assert sum(t.tokens for t in fitted) <= 2500
    assert fitted[0].content[0] == {"type": "text", "text": "[photo: table.jpg]"}
    assert fitted[-1].content == turns[-1].content, "the newest turn keeps its photo"


def photo_turn(kept: files.Kept, *, seq: int) -> Turn:
    content = [kept.block(), {"type": "text", "text": "look"}]
    return Turn("user", content, Kind.CUSTOMER, tokens=tokens.estimate(content), seq=seq)


def json_copy(messages: list[dict]) -> list[dict]:
    import copy

    return copy.deepcopy(messages)


def test_a_transparent_png_too_big_for_the_api_is_sent_as_a_jpeg() -> None:
    noise = Image.frombytes("RGBA", (1000, 1000), os.urandom(4_000_000))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert files.MAX_SENT_IMAGE_BYTES < out.tell() < 5 * MB

    [kept] = one("noise.png", out.getvalue()).kept

    assert kept.media_type == "image/jpeg" and len(kept.data) <= files.MAX_SENT_IMAGE_BYTES


def test_a_request_carries_the_newest_files_up_to_its_room() -> None:
    size = files.MAX_REQUEST_FILE_BYTES // 2 - 1
    old, mid, new = (
        files.Kept(f"{n}.pdf", "application/pdf", bytes([i]) * size, pages=1)
        for i, n in enumerate(("old", "mid", "new"))
    )
    messages = [
        {"role": "user", "content": [old.block()]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [mid.block(), new.block()]},
    ]
    blobs = {k.sha256: k.data for k in (old, mid, new)}

    sent = files.expand(messages, blobs)

    assert sent[0]["content"] == [{"type": "text", "text": "[file: old.pdf]"}]
    assert [b["type"] for b in sent[2]["content"]] == ["document", "document"]


def test_the_persona_words_the_refusals() -> None:
    texts = FileTexts(unsupported_type="Désolée, je ne sais pas lire les fichiers {ext}.")
    checked = check([Attachment("IMG.HEIC", data=b"....ftypheic")], FileLimits(), texts)
    assert checked.refusals == ("Désolée, je ne sais pas lire les fichiers .heic.",)


def test_a_persona_sentence_with_an_unknown_placeholder_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="damaged: unknown placeholder"):
        FileTexts(damaged="I couldn't open {filename}.")
