"""The terminal chat: its conversation keys, and what it does with hostile input and output.

The chat reads whatever stdin carries (bytes that are not UTF-8, NUL, escape sequences, a
megabyte on one line) and writes only text a terminal shows as text: nothing the customer,
the model or the persona file says can clear the screen, retitle the window or hide a link.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from bots.app import Runtime
from bots.console import SORRY, chat, console_key
from core.clock import utcnow
from core.config import DEMO_PERSONA
from core.engine import Engine
from core.stream import AnswerSink
from core.text import sanitize
from core.types import ConversationKey, IncomingMessage, Reply
from tests.conftest import Cli, spawn_supportbot
from tests.fakes.anthropic_api import FakeAnthropic, streamed, text, tool_use

REFUND = "Refunds are issued 5–7 business days after we receive your return."
# What a terminal acts on instead of showing: C0 but newline and tab, DEL, C1, and ESC itself.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
ESCAPES = (
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]0;pwned\x07"  # window title
    "\x1b[31mred\x1b[0m "  # colour
    "\x1b]8;;https://evil.example\x1b\\click here\x1b]8;;\x1b\\ "  # OSC 8 hyperlink
    "\x9b2J\x9d0;c1 title\x9c"  # the 8-bit (C1) forms of CSI and OSC
    "\x1bP+q\x1b\\\x1bc\x07\x08\r"  # DCS query, terminal reset, bell, backspace, CR
)


@pytest.mark.parametrize("name", ["default", "a:b", "::", "50%", "50%3A", "lamp order: HG-1"])
def test_every_console_name_round_trips_through_its_key_text(name: str) -> None:
    key = console_key(name)
    assert ConversationKey.parse(str(key)) == key


def test_distinct_names_get_distinct_keys() -> None:
    names = ["a:b", "a%3Ab", "a%b", "a%25b"]
    assert len({str(console_key(n)) for n in names}) == len(names)


def test_plain_names_keep_their_old_keys() -> None:
    assert str(console_key("lamp order 7")) == "console:local:lamp order 7:-"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (ESCAPES, "red click here \n"),  # a lone carriage return is a line break
        ("line one\r\n\tline two", "line one\n\tline two"),
        ("half \x1b]0;no terminator", "half 0;no terminator"),
        ("bad \ud800 pair \udcff", "bad \ufffd pair \ufffd"),
        ("null\x00 del\x7f next\x85 esc\x1b", "null del next\n esc"),
        ("Ünïcödé — “quotes” 🛋️ stay", "Ünïcödé — “quotes” 🛋️ stay"),
    ],
)
def test_sanitize_keeps_the_text_and_drops_terminal_control(raw: str, shown: str) -> None:
    assert sanitize(raw) == shown


def _assert_clean(result: Result) -> None:
    assert result.exit_code == 0 and result.exception is None
    assert "Traceback" not in result.output
    assert CONTROL.search(result.stdout) is None


@pytest.mark.parametrize(
    "hostile",
    [
        b"\xff\xfe bad \xc3\x28",  # not UTF-8
        b"\xed\xa0\x80 \xed\xbf\xbf",  # UTF-8-encoded lone surrogates
        b"nul\x00 in \x00 the middle",
        b"\x1b[2J\x1b]0;title\x07\x1b[A\x1b[31m\x9b\x7f\x08",
        b"x" * 1_000_000,
    ],
    ids=["not-utf8", "surrogates", "nul", "controls", "one-megabyte"],
)
def test_hostile_stdin_then_a_question_gets_its_answer(cli: Cli, hostile: bytes) -> None:
    result = cli("chat", stdin=hostile + b"\nHow long does a refund take?\nquit\n")
    _assert_clean(result)
    *_, answer, after_quit = result.stdout.split("you> ")
    assert answer.startswith("Aria> I'm running in limited mode") and answer.endswith(REFUND + "\n")
    assert after_quit == ""


def test_bytes_that_are_not_utf8_are_kept_as_replacement_characters(cli: Cli) -> None:
    _assert_clean(cli("chat", stdin=b"\xff\xfe bad \xc3\x28 lamp\n"))
    shown = cli("history", "console:local:default:-")
    assert "user/customer: \ufffd\ufffd bad \ufffd( lamp" in shown.stdout


async def test_the_engine_gets_only_text_from_a_hostile_reader(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    engine = runtime.engine
    lines = iter(
        [
            "\ud800 lamp \udcff",  # lone surrogates, as surrogateescape decoding leaves them
            "a\x00b\x1b[31mc\x9b2Jd\x07",
            "\x1b[2J\x1b[H",  # nothing but control: skipped
            "Can I return a rug?",
        ]
    )
    written: list[str] = []

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        return line

    fake_claude.queue(text("A"), text("B"), text("Returns are accepted within 30 days."))
    await chat(engine, name="hostile", bot_name="Aria", read=read, write=written.append)

    assert [r.last_user_text for r in fake_claude.requests] == [
        "\ufffd lamp \ufffd",
        "abcd",
        "Can I return a rug?",
    ]
    assert written[1:] == ["Aria> A", "Aria> B", "Aria> Returns are accepted within 30 days."]
    # Shown is delivered: nothing waits in the outbox for a console conversation.
    await runtime.engine.settle()
    assert await runtime.store.undelivered(platforms={"console"}, before=utcnow()) == []


def _one_question(question: str) -> Callable[[str], str]:
    """A reader that types ``question``, then ends the input."""
    lines = iter([question])

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        return line

    return read


async def test_the_chat_types_the_answer_as_claude_writes_it(
    engine: Engine, fake_claude: FakeAnthropic
) -> None:
    typed: list[str] = []
    first_words = asyncio.Event()

    def type_out(piece: str) -> None:
        typed.append(piece)
        first_words.set()

    # Claude writes the rest only once the first words are on the screen.
    fake_claude.queue(
        streamed(
            "Returns are ", "accepted within ", "30 days.", pause_before=1, release=first_words
        )
    )
    written: list[str] = []
    read = _one_question("Can I return a rug?")
    await chat(
        engine, name="typed", bot_name="Aria", read=read, write=written.append, type_out=type_out
    )

    assert typed[0] == "Aria> Returns are"
    assert "".join(typed) == "Aria> Returns are accepted within 30 days.\n"
    assert written[1:] == []


async def test_an_escape_sequence_split_across_deltas_is_typed_once_and_harmless(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    answer = f"Returns{ESCAPES}\r\nare accepted within 30 days."
    fake_claude.queue(streamed(*(answer[i : i + 3] for i in range(0, len(answer), 3))))
    typed: list[str] = []
    read = _one_question("Can I return a rug?")
    await chat(
        runtime.engine, name="typed", bot_name="Aria", read=read, write=print, type_out=typed.append
    )

    assert "".join(typed) == "Aria> Returnsred click here \n\nare accepted within 30 days.\n"
    assert len(typed) > 3
    stored = await runtime.store.history(console_key("typed"))
    assert stored[-1].text == "Returnsred click here \n\nare accepted within 30 days."


class _FailsOnce:
    """A conversation port whose first message fails, as a broken engine or database would."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        self.seen.append(message.text)
        if len(self.seen) == 1:
            raise RuntimeError("secret internals")
        return Reply(f"You said {message.text}")

    async def is_active(self, key: ConversationKey) -> bool:
        return True


async def test_a_failing_message_prints_one_line_and_the_chat_goes_on() -> None:
    port = _FailsOnce()
    lines = iter(["first", "second", "bye", "never read"])
    written: list[str] = []

    await chat(port, name="x", bot_name="Aria", read=lambda _: next(lines), write=written.append)

    assert port.seen == ["first", "second"]
    assert written[1:] == [SORRY, "Aria> You said second"]


async def test_escapes_in_claude_answers_never_reach_the_terminal(
    cli: Cli, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(f"Returns{ESCAPES}\n\tare accepted within 30 days."))
    result = await asyncio.to_thread(
        cli,
        "chat",
        stdin=b"Can I return a rug?\n",
        ANTHROPIC_API_KEY="sk-test-secret",
        ANTHROPIC_BASE_URL=fake_claude.base_url,
    )
    _assert_clean(result)
    assert "Aria> Returnsred click here \n\tare accepted within 30 days." in result.stdout


@pytest.fixture
def hostile_persona(tmp_path: Path) -> Path:
    """The demo persona renamed Arie, the name carrying a screen clear and a window title."""
    source = DEMO_PERSONA.read_text(encoding="utf-8")
    hostile = source.replace('name = "Aria"', r'name = "Ar\u001b[2Jie\u001b]0;x\u0007"', 1)
    assert hostile != source
    path = tmp_path / "persona.toml"
    path.write_text(hostile, encoding="utf-8")
    return path


async def test_persona_name_escalation_reason_and_conversation_name_are_stripped(
    cli: Cli, fake_claude: FakeAnthropic, hostile_persona: Path
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": f"Billing{ESCAPES}dispute"}))
    result = await asyncio.to_thread(
        cli,
        "chat",
        "-c",
        "sofa\x1b]0;title\x07",
        stdin=b"I was charged twice\n",
        ANTHROPIC_API_KEY="sk-test-secret",
        ANTHROPIC_BASE_URL=fake_claude.base_url,
        SUPPORTBOT_PERSONA_FILE=str(hostile_persona),
    )
    _assert_clean(result)
    assert "Chatting as conversation 'sofa'" in result.stdout
    assert "you> Arie> I don't have that information" in result.stdout
    assert "[handed to the support team: Billingred click here \ndispute]" in result.stdout
    shown = await asyncio.to_thread(cli, "history", "console:local:sofa:-")
    assert "user/customer: I was charged twice" in shown.stdout


async def test_hostile_stdin_in_a_real_process(tmp_path: Path) -> None:
    # Strict both ways, as on a terminal whose locale is not UTF-8: stdin fails on anything
    # but ASCII, and stdout cannot encode the answer's en dash.
    stdin = b"\xff\xfe bad \xc3\x28\n\x00\x1b[2J\nHow long does a refund take?\n"
    code, out, err = await spawn_supportbot(
        tmp_path, "chat", stdin=stdin, PYTHONIOENCODING="ascii:strict"
    )
    assert code == 0, err.decode(errors="replace")
    assert b"Traceback" not in out + err
    assert f"\n\n{REFUND.replace('–', '?')}\nyou> ".encode() in out
    assert CONTROL.search(out.decode("ascii")) is None
