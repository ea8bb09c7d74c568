"""Customers' photos and PDFs reach Claude and the team (issue 11).

Platform scenarios run the real adapters over their fakes (``tests/harness.py``), which serve
the files the way each platform does (Slack only with the bot token); engine scenarios drive
the real engine and store. Every file is made in the test with Pillow or pypdf.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text as sql

from bots.app import Runtime, open_runtime
from bots.common.download import allowed
from bots.discord.platform import CDN_HOSTS
from bots.slack.web import FILE_HOSTS, SlackWeb
from core import prompt
from core.config import Settings
from core.files import MB, Problem
from core.types import Attachment, IncomingMessage
from storage.database import create_engine
from tests.conftest import Cli, make_settings
from tests.engine_helpers import KEY, message
from tests.fakes.anthropic_api import FakeAnthropic, error, text, tool_use
from tests.fakes.slack_api import FakeSlack
from tests.file_helpers import bomb_png, jpeg, noisy_png, pdf, pdf_bomb, pixel_flood, zip_bomb
from tests.harness import PLATFORMS, Bot, open_bot

DAMAGED = "the table arrived damaged, can I return it?"
RETURNS = "I'm sorry about the table: yes, damaged items can be returned within 30 days."
TABLE = jpeg(1200, 900, color="saddlebrown")


@pytest.fixture(params=PLATFORMS)
async def bot(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Bot]:
    async with open_bot(request.param, runtime=runtime) as opened:
        yield opened


def blocks(request_body: dict[str, Any], *, message_index: int = -1) -> list[dict[str, Any]]:
    """A request message's content, without the engine's topic note and cache markers."""
    content = request_body["messages"][message_index]["content"]
    return [
        {k: v for k, v in b.items() if k != "cache_control"}
        for b in content
        if b.get("title") != "Support system note"
    ]


def image_of(block: dict[str, Any]) -> Image.Image:
    assert block["type"] == "image" and block["source"]["type"] == "base64"
    return Image.open(io.BytesIO(base64.b64decode(block["source"]["data"])))


async def test_a_damaged_table_photo_reaches_claude_beside_the_words(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(RETURNS))

    reply = await bot.say(DAMAGED, files=(("damaged_table.jpg", TABLE),))

    assert reply is not None and reply.text == RETURNS
    photo, words = blocks(fake_claude.requests[-1].body)
    assert image_of(photo).size == (1200, 900)
    assert photo["source"]["media_type"] == "image/jpeg"
    assert words == {"type": "text", "text": DAMAGED}


async def test_a_photo_alone_is_a_turn_claude_answers(bot: Bot, fake_claude: FakeAnthropic) -> None:
    fake_claude.queue(text("Thanks for the photo: what happened to the table?"))

    reply = await bot.say("", files=(("IMG_2041.jpg", TABLE),))

    assert reply is not None and reply.text == "Thanks for the photo: what happened to the table?"
    photo, words = blocks(fake_claude.requests[-1].body)
    assert photo["type"] == "image"
    assert words["text"] == "(The customer sent a photo without any text.)"


async def test_an_unsupported_file_alone_is_refused_without_asking_claude(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64

    reply = await bot.say("", files=(("IMG_2042.heic", heic),))

    assert reply is not None
    assert reply.says("I can't open .heic files — could you send a JPEG or PNG (or a PDF)?")
    assert fake_claude.requests == []


async def test_the_team_sees_the_customers_photo_on_a_hand_off(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Damaged delivery"}), text("Sum."))

    reply = await bot.say(DAMAGED, where="dm", files=(("damaged_table.jpg", TABLE),))

    assert reply is not None and reply.says("I've saved your photo with this conversation")
    [(name, data)] = await bot.staff_files(where="dm")
    assert name == "damaged_table.jpg"
    assert Image.open(io.BytesIO(data)).size == (1200, 900)

    # A later photo in the DM reaches the staff thread with its relay.
    second = jpeg(300, 200, color="navy")
    await bot.say("and the box", where="dm", files=(("box.jpg", second),))
    names = [n for n, _ in await bot.staff_files(where="dm")]
    assert names == ["damaged_table.jpg", "box.jpg"]


async def test_the_team_sees_the_photo_and_pdf_of_a_support_thread_hand_off(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Damaged delivery"}), text("Sum."))
    receipt = pdf(1)

    await bot.say(DAMAGED, files=(("damaged_table.jpg", TABLE), ("receipt.pdf", receipt)))

    (photo_name, photo), (pdf_name, document) = await bot.staff_files()
    assert (photo_name, Image.open(io.BytesIO(photo)).size) == ("damaged_table.jpg", (1200, 900))
    assert (pdf_name, document) == ("receipt.pdf", receipt)


async def test_a_file_staff_post_in_the_dm_relay_reaches_the_customer(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    await bot.say("Can I talk to a human?", where="dm")
    label = pdf(1)

    relayed = await bot.staff_writes_in_thread(
        "Here is your return label.", where="dm", files=(("return_label.pdf", label),)
    )

    assert relayed is not None and relayed.says("Here is your return label.")
    assert bot.customer_files(where="dm") == [("return_label.pdf", label)]


async def test_a_30_mb_image_is_refused_with_a_sentence(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(RETURNS))
    huge = TABLE + b"\x00" * (30 * 1024 * 1024)

    reply = await bot.say(DAMAGED, files=(("huge.jpg", huge),))

    assert reply is not None and reply.says(RETURNS)
    assert reply.says("huge.jpg is too large for me: I can take photos of up to 5 MB")
    assert [b["type"] for b in blocks(fake_claude.requests[-1].body)] == ["text"]


async def test_a_pdf_receipt_goes_to_claude_as_a_document(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("I see the receipt for order 1042."))
    receipt = pdf(1)

    reply = await bot.say("my receipt", files=(("receipt.pdf", receipt),))

    assert reply is not None and reply.text == "I see the receipt for order 1042."
    document, words = blocks(fake_claude.requests[-1].body)
    assert document == {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.standard_b64encode(receipt).decode(),
        },
        "title": "receipt.pdf",
    }
    assert words["text"] == "my receipt"


async def test_eleven_images_send_ten_and_name_the_eleventh(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Thanks, I see them."))
    photos = tuple((f"p{i}.jpg", jpeg(40, 30, color=f"#{i:02x}2040")) for i in range(11))

    reply = await bot.say("all the damage", files=photos)

    assert reply is not None and reply.says("Thanks, I see them.")
    assert reply.says("so I left out p10.jpg")
    sent = blocks(fake_claude.requests[-1].body)
    assert [b["type"] for b in sent] == ["image"] * 10 + ["text"]


HOSTILE: dict[str, tuple[str, Callable[[], bytes], str]] = {
    # id: (file name, how to make the file: only the selected ones are made, what is said)
    "text-renamed-png": ("notes.png", lambda: b"some text, renamed", "I can't open notes.png"),
    "executable-renamed-png": (
        "IMG_7.png",
        lambda: b"MZ\x90\x00" + bytes(200),
        "I can't open IMG_7.png",
    ),
    "zip-bomb": ("photos.zip", zip_bomb, "I can't open .zip files"),
    "zip-bomb-renamed-png": ("table.png", zip_bomb, "I can't open table.png"),
    "svg-renamed-png": (
        "drawing.png",
        lambda: b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "I can't open drawing.png",
    ),
    "truncated-jpeg": (
        "cut.jpg",
        lambda: TABLE[:500],
        "I couldn't open cut.jpg — it seems to be damaged",
    ),
    "pdf-zip-bomb": (
        "receipt.pdf",
        pdf_bomb,
        "I couldn't open receipt.pdf — it seems to be damaged",
    ),
    "decompression-bomb": ("bomb.png", bomb_png, "bomb.png is too large for me to open"),
    "over-the-pixel-limit": (
        "big.png",
        lambda: bomb_png(8000),
        "big.png is too large for me to open",
    ),
    "pixel-flood-jpeg": (
        "flood.jpg",
        lambda: pixel_flood("jpeg"),
        "flood.jpg is too large for me to open",
    ),
    "pixel-flood-gif": (
        "flood.gif",
        lambda: pixel_flood("gif"),
        "flood.gif is too large for me to open",
    ),
    "pixel-flood-webp": (
        "flood.webp",
        lambda: pixel_flood("webp"),
        "flood.webp is too large for me to open",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_files_are_refused_and_the_words_still_answered(
    bot: Bot, fake_claude: FakeAnthropic, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    name, make, said = HOSTILE[case]
    data = make()
    fake_claude.queue(text(RETURNS))
    caplog.set_level(logging.INFO, logger="supportbot.files")

    reply = await bot.say(DAMAGED, files=((name, data),))

    assert reply is not None and reply.says(RETURNS) and reply.says(said)
    sent = blocks(fake_claude.requests[-1].body)
    assert [b["type"] for b in sent] == ["text"]
    assert [r for r in caplog.records if r.getMessage().startswith("refused")], "and logged"


# -- the engine ---------------------------------------------------------------------------------


def photo_message(text: str, *files: tuple[str, bytes]) -> IncomingMessage:
    return replace(message(text), attachments=tuple(Attachment(n, data=d) for n, d in files))


async def test_the_photo_survives_a_restart(settings: Settings, fake_claude: FakeAnthropic) -> None:
    fake_claude.queue(text(RETURNS), text("The photo shows a cracked table top."))
    async with open_runtime(settings) as first:
        await first.engine.handle(photo_message(DAMAGED, ("damaged_table.jpg", TABLE)))

    async with open_runtime(settings) as second:  # a new process on the same database
        reply = await second.engine.handle(message("what about the photo I sent?"))

    assert reply is not None and reply.text == "The photo shows a cracked table top."
    first_turn = blocks(fake_claude.requests[-1].body, message_index=0)
    assert image_of(first_turn[0]).size == (1200, 900)
    assert blocks(fake_claude.requests[-1].body)[-1]["text"] == "what about the photo I sent?"


async def test_many_photos_keep_the_window_under_budget(
    database_url: str, fake_claude: FakeAnthropic
) -> None:
    budget = 4000  # each 1,200 × 900 photo costs 1,440 tokens
    settings = make_settings(database_url, fake_claude.base_url, claude={"token_budget": budget})
    async with open_runtime(settings) as runtime:
        for i in range(6):
            fake_claude.queue(text(f"Noted photo {i}."))
            await runtime.engine.handle(photo_message(f"photo {i}", (f"p{i}.jpg", TABLE)))
        history = await runtime.store.history(KEY)

    assert len(history) == 12
    body = fake_claude.requests[-1].body
    images = [b for m in body["messages"] for b in m["content"] if b["type"] == "image"]
    placeholders = [
        b["text"]
        for m in body["messages"]
        for b in m["content"]
        if b["type"] == "text" and b["text"].startswith("[photo: ")
    ]
    assert 1 <= len(images) <= budget // 1440
    assert placeholders and placeholders[0] == "[photo: p0.jpg]"
    words = [b["text"] for b in blocks(body, message_index=0) if b["type"] == "text"]
    assert "photo 0" in words, "old words stay while old photos go"
    # The placeholders are stored, so between two trims each request repeats the previous one
    # (the prompt cache keeps hitting): only the turns that dropped photos start afresh.
    assert history[0].content[0] == {"type": "text", "text": "[photo: p0.jpg]"}
    bodies = [r.body for r in fake_claude.requests]
    fresh = [n for n in range(1, len(bodies)) if not repeats(bodies[n - 1], bodies[n])]
    assert fresh == [2, 4]


def repeats(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether ``after``'s messages start with all of ``before``'s (markers and note aside)."""
    count = len(before["messages"])
    earlier = [blocks(before, message_index=i) for i in range(count)]
    return earlier == [blocks(after, message_index=i) for i in range(count)]


async def test_limited_mode_keeps_the_photo_for_the_team(database_url: str) -> None:
    settings = make_settings(database_url, None)
    async with open_runtime(settings) as runtime:
        reply = await runtime.engine.handle(photo_message(DAMAGED, ("damaged_table.jpg", TABLE)))
        assert reply is not None and reply.escalation is not None
        assert "I've saved your photo with this conversation" in reply.text
        assert reply.escalation.id is not None
        [kept] = await runtime.store.escalation_files(reply.escalation.id)
        assert kept.name == "damaged_table.jpg"


async def test_files_are_deleted_with_their_conversation(
    runtime: Runtime, database_url: str
) -> None:
    await runtime.engine.handle(photo_message("", ("damaged_table.jpg", TABLE)))
    database = create_engine(database_url)
    try:
        async with database.begin() as connection:
            count = sql("SELECT count(*) FROM files")
            assert (await connection.execute(count)).scalar_one() == 1
            await connection.execute(sql("DELETE FROM conversations"))
            assert (await connection.execute(count)).scalar_one() == 0
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://files.slack.com/files-pri/T1-F1/table.jpg", True),
        ("https://files.slack-gov.com/files-pri/T1-F1/table.jpg", True),  # GovSlack
        ("https://slack.com/files-pri/T1-F1/table.jpg", False),  # not where files are served
        ("http://files.slack.com/files-pri/T1-F1/table.jpg", False),  # never in clear text
        ("https://files.slack.com:8443/files-pri/T1-F1/table.jpg", False),
        ("https://files.slack.com.evil.test/table.jpg", False),
        ("https://evil.test/files-pri/table.jpg", False),
        ("https://gateway.example/api/files/table.jpg", True),  # SLACK_API_URL's host
        ("http://gateway.example/api/files/table.jpg", False),
        ("/files-pri/table.jpg", False),
        ("not a url at all", False),
    ],
)
def test_slacks_token_goes_only_to_slacks_file_hosts_and_the_api_host(url: str, ok: bool) -> None:
    assert allowed(url, hosts=FILE_HOSTS, api_url="https://gateway.example/api/") is ok


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://cdn.discordapp.com/attachments/1/2/table.jpg?ex=1&is=2&hm=3", True),  # url
        ("https://media.discordapp.net/attachments/1/2/table.jpg?ex=1&is=2&hm=3", True),  # proxy
        ("https://discord.com/api/v10/attachments/1/2/table.jpg", True),  # the API host
        ("http://cdn.discordapp.com/attachments/1/2/table.jpg", False),
        ("https://cdn.discordapp.com.evil.test/table.jpg", False),
        ("https://evil.test/attachments/1/2/table.jpg", False),
    ],
)
def test_discord_attachments_come_only_from_discords_cdn_or_the_api_host(
    url: str, ok: bool
) -> None:
    assert allowed(url, hosts=CDN_HOSTS, api_url="https://discord.com/api/v10") is ok


async def test_photos_sent_while_staff_have_a_dm_reach_them_and_refusals_are_said(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    await bot.say("Can I talk to a human?", where="dm")
    await bot.press(await bot.staff_notice(where="dm"), "claim")
    asked = len(fake_claude.requests)
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64

    reply = await bot.say(
        "here it is", where="dm", files=(("crack.jpg", TABLE), ("IMG_1.heic", heic))
    )

    assert reply is not None and reply.says("I can't open .heic files")
    assert [n for n, _ in await bot.staff_files(where="dm")] == ["crack.jpg"]
    assert len(fake_claude.requests) == asked, "people have it: Claude is not asked"


async def test_files_leave_no_trace_of_the_customer_or_the_token_in_the_logs(
    bot: Bot, fake_claude: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "Pineapple7Q"  # only the customer writes it
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Damaged delivery"}), text("Sum."))
    caplog.set_level(logging.INFO)  # (discord.py's DEBUG lines echo whole gateway events)

    await bot.say(
        "look",
        where="dm",
        files=(
            (f"{marker}_table.jpg", TABLE),
            (f"{marker}.heic", b"\x00\x00\x00\x18ftypheic" + marker.encode()),
            (f"{marker}_bomb.png", bomb_png()),
        ),
    )

    assert [n for n, _ in await bot.staff_files(where="dm")] == [f"{marker}_table.jpg"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in logged
    assert marker not in logged
    assert "xoxb-" not in logged


async def test_slack_files_are_read_with_the_bot_token_only() -> None:
    async with FakeSlack() as slack, ClientSession() as session:
        shared = slack.add_file("table.jpg", TABLE)
        attachment = Attachment("table.jpg", url=shared["url_private_download"], size=len(TABLE))

        def web(token: str) -> SlackWeb:
            client = AsyncWebClient(token=token, base_url=slack.api_url, session=session)
            return SlackWeb(client=client)

        fetched = await web(slack.bot_token).fetch(attachment, max_bytes=MB, about="test")
        refused = await web("xoxb-another-app").fetch(attachment, max_bytes=MB, about="test")
        too_big = await web(slack.bot_token).fetch(attachment, max_bytes=1000, about="test")

    assert fetched.data == TABLE and fetched.problem is None
    # Slack answers a token that may not read the file with its sign-in page (HTML, 200).
    assert refused.data is None and refused.problem == Problem.UNAVAILABLE
    # Declared larger than the limit: not downloaded at all.
    assert too_big.problem == Problem.TOO_LARGE
    assert [auth for _, auth in slack.downloads] == [
        f"Bearer {slack.bot_token}",
        "Bearer xoxb-another-app",
    ]


async def test_with_claude_down_the_photo_is_saved_for_the_team(
    runtime: Runtime, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(*[error(500, "api_error", "down")] * 4)

    reply = await runtime.engine.handle(photo_message(DAMAGED, ("damaged_table.jpg", TABLE)))

    assert reply is not None and reply.escalation is not None
    assert reply.text.startswith(settings.persona.fallbacks.server_error)
    assert "I've saved your photo with this conversation" in reply.text
    assert reply.escalation.id is not None
    [kept] = await runtime.store.escalation_files(reply.escalation.id)
    assert kept.name == "damaged_table.jpg"
    view = await runtime.desk.get(reply.escalation.id)
    assert view is not None and "[photo: damaged_table.jpg]" in view.summary


async def test_a_pdf_over_discords_upload_limit_is_named_to_staff_with_how_to_get_it(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Damaged delivery"}), text("Sum."))
    scan = pdf(1, padding=11 * MB)  # over the 10 MB a server without boosts takes
    async with open_bot("discord", runtime=runtime) as bot:
        await bot.say(DAMAGED, files=(("damaged_table.jpg", TABLE), ("delivery_note.pdf", scan)))

        shown = await bot.staff_files()
        said = [p.text for p in await bot.staff_thread()]
    [escalation] = await runtime.desk.live()

    assert [name for name, _ in shown] == ["damaged_table.jpg"], "the photo is not held back"
    assert said[-1] == (
        "Not shown here, the upload was refused: delivery_note.pdf. The customer's files are "
        f"kept with the conversation: `supportbot files {escalation.id}` saves a copy of them."
    )


async def test_a_failed_upload_to_slack_is_said_in_the_staff_thread(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    async with open_bot("slack", runtime=runtime) as bot:
        assert isinstance(bot.fake, FakeSlack)
        await bot.say("Can I talk to a human?", where="dm")
        bot.fake.fail("files.completeUploadExternal", "internal_error")

        await bot.say("here is the table", where="dm", files=(("crack.jpg", TABLE),))

        said = [p.text for p in await bot.staff_thread(where="dm")]
    assert await bot.staff_files(where="dm") == []
    assert said[-1].startswith("Not shown here, the upload was refused: crack.jpg.")
    assert "`supportbot files 1`" in said[-1]


async def test_supportbot_files_saves_an_escalations_files(cli: Cli, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    async with open_runtime(settings) as runtime:  # limited mode: a photo goes to the team
        reply = await runtime.engine.handle(
            photo_message("", ("../damaged table.jpg", TABLE), ("receipt.pdf", pdf(1)))
        )
    assert reply is not None and reply.escalation is not None

    saved = await asyncio.to_thread(cli, "files", str(reply.escalation.id), "--to", "out")
    none = await asyncio.to_thread(cli, "files", "99")

    assert saved.exit_code == 0, saved.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["1-damaged table.jpg", "2-receipt.pdf"]
    assert Image.open(tmp_path / "out" / names[0]).size == (1200, 900)
    assert none.exit_code == 0 and "No files kept for escalation 99." in none.stdout


async def test_claude_is_told_which_files_were_refused_in_a_note_no_customer_can_write(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(RETURNS), text("As I said, a JPEG would help."))
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64

    reply = await bot.say(DAMAGED, files=(("crack.heic", heic), ("damaged_table.jpg", TABLE)))
    await bot.say("did you see both photos?")

    assert reply is not None and reply.says("I can't open .heic files")
    first, later = (r.body for r in fake_claude.requests)
    for body in (first, later):
        photo, words, note = body["messages"][0]["content"][:3]
        assert (photo["type"], words["text"]) == ("image", DAMAGED)
        assert prompt.is_note(note), "a document block only the support system writes"
        refusal = "I can't open .heic files — could you send a JPEG or PNG (or a PDF)?"
        assert f"the customer reads: «{refusal}»" in note["source"]["data"]
    # The customer's own words are never a note, whatever they say.
    assert not [b for b in later["messages"][-1]["content"][:-1] if prompt.is_note(b)]


async def test_the_file_limits_come_from_the_environment(
    database_url: str, fake_claude: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"FILES": "2", "IMAGE_MB": "0.5", "PDF_MB": "1", "PDF_PAGES": "2"}.items():
        monkeypatch.setenv(f"SUPPORTBOT_MAX_{name}", value)
    settings = make_settings(database_url, fake_claude.base_url)
    fake_claude.queue(text(RETURNS))
    photos = [(f"p{i}.jpg", jpeg(40, 30)) for i in range(3)]
    big = [("big.png", noisy_png(600_000)), ("manual.pdf", pdf(3)), ("scan.pdf", pdf(padding=MB))]

    async with open_runtime(settings) as runtime:
        reply = await runtime.engine.handle(photo_message(DAMAGED, *big, *photos))

    assert reply is not None and reply.text.startswith(RETURNS)
    said = reply.text.removeprefix(RETURNS)
    limits = "I can take photos of up to 0.5 MB and PDFs of up to 1 MB"
    assert f"big.png is too large for me: {limits}" in said
    assert f"scan.pdf is too large for me: {limits}" in said
    assert "manual.pdf has 3 pages, more than the 2 I can read" in said
    assert "I can look at up to 2 files in one message, so I left out p2.jpg" in said
    assert [b["type"] for b in blocks(fake_claude.requests[-1].body)] == ["image", "image", "text"]


async def test_with_claude_down_the_team_sees_the_photo_in_the_staff_thread(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(*[error(500, "api_error", "down")] * 4)

    reply = await bot.say(DAMAGED, files=(("damaged_table.jpg", TABLE),))

    assert reply is not None and reply.says("I've saved your photo with this conversation")
    [(name, data)] = await bot.staff_files()
    assert (name, Image.open(io.BytesIO(data)).size) == ("damaged_table.jpg", (1200, 900))
