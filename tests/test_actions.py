"""Actions over MCP through the real engine, store, SDKs and servers.

The demo shop is served over streamable HTTP in-process (``tests/fakes/mcp_servers.py``), so a
test does not pay for a process start; the stdio tests at the end start real processes (the
demo shop, and a server that crashes mid-call). Claude's tool calls are scripted on the fake
Messages API; every request it receives is checked for what the engine sent back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bots import console
from bots.app import Runtime, open_runtime
from core import engine as engine_module
from core.actions import AuditEntry, ServerConfig
from core.clock import utcnow
from core.mcp_tools import McpTools
from core.types import Decision, Reply
from tests.action_helpers import MAYA, TODAY, Shop, serving_shop, shop_runtime, with_servers
from tests.conftest import Cli, make_settings, spawn_supportbot
from tests.engine_helpers import KEY, message, system_text
from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, text, tool_use
from tests.fakes.mcp_servers import serve_http, trouble_server

REPO = Path(__file__).resolve().parents[1]
CUSTOMER = "U-customer"  # tests.engine_helpers.message's author


shop = pytest.fixture(serving_shop)
runtime = pytest.fixture(shop_runtime)


def results(request: RecordedRequest) -> list[dict[str, Any]]:
    """The tool_result blocks of a request's last message."""
    return [b for b in request.messages[-1]["content"] if b.get("type") == "tool_result"]


def notes(request: RecordedRequest) -> list[str]:
    """The support-system notes of a request's last message, but the topic note."""
    blocks = request.messages[-1]["content"]
    found = [b["source"]["data"] for b in blocks if b.get("type") == "document"]
    return [n for n in found if not n.startswith("Current topic")]


async def audit(runtime: Runtime) -> list[AuditEntry]:
    assert runtime.tools is not None
    return await runtime.tools.store.audit_log()


def nobody_is_staff() -> Callable[[], Any]:
    async def no() -> bool:
        return False

    return no


async def propose_cancel(runtime: Runtime, fake_claude: FakeAnthropic) -> int:
    """Claude proposes cancelling W1001; the proposal's id."""
    fake_claude.queue(
        tool_use(
            "shop__cancel_order",
            {"order_number": "W1001", "email": MAYA},
            text="I can cancel that for you.",
        )
    )
    reply = await runtime.engine.handle(message("Please cancel order W1001, " + MAYA))
    assert reply is not None and reply.proposal is not None
    assert "Cancel an order" in reply.text and "W1001" in reply.text
    assert reply.text.startswith("I can cancel that for you.")
    return reply.proposal.id


async def decide(runtime: Runtime, proposal_id: int, *, confirm: bool, user: str = CUSTOMER):
    return await runtime.engine.decide(
        proposal_id, user_id=user, confirm=confirm, is_staff=nobody_is_staff()
    )


async def test_a_lookup_is_answered_in_one_turn(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(
        tool_use("shop__get_order_status", {"order_number": "W1001"}),
        text("Order W1001 is being prepared."),
    )

    before = utcnow()
    reply = await runtime.engine.handle(message("Where is order #W1001?"))

    assert reply is not None and reply.text == "Order W1001 is being prepared."
    first, second = fake_claude.requests
    offered = {t["name"] for t in first.tools}
    assert offered >= {"escalate_to_human", "shop__get_order_status", "shop__cancel_order"}
    [result] = results(second)
    assert not result.get("is_error") and '"status": "pending"' in result["content"]
    stored = await runtime.store.history(KEY)
    assert [t.kind for t in stored] == ["customer", "model", "tool_result", "model"]
    [entry] = await audit(runtime)
    assert (entry.tool, entry.arguments, entry.outcome) == (
        "shop__get_order_status",
        {"order_number": "W1001"},
        "ok",
    )
    assert (entry.key, entry.customer_id, entry.actor) == (KEY, CUSTOMER, CUSTOMER)
    assert before <= entry.at <= utcnow()


async def test_a_write_is_proposed_not_run(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    await propose_cancel(runtime, fake_claude)

    assert len(fake_claude.requests) == 1  # no second call: the customer decides first
    assert shop.status("W1001") == "pending"
    assert [e.outcome for e in await audit(runtime)] == ["proposed"]


async def test_confirm_runs_the_call_once_and_claude_goes_on(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    proposal = await propose_cancel(runtime, fake_claude)
    fake_claude.queue(text("Done: W1001 is cancelled and your refund is on its way."))

    decision = await decide(runtime, proposal, confirm=True)

    assert decision.note is None and decision.reply is not None
    assert decision.reply.text.startswith("Done: W1001 is cancelled")
    assert shop.status("W1001") == "cancelled"
    [note] = notes(fake_claude.requests[-1])
    assert note.startswith("The customer pressed Confirm and Cancel an order ran.")
    assert [(e.outcome, e.actor) for e in await audit(runtime)] == [
        ("proposed", CUSTOMER),
        ("ok", CUSTOMER),
    ]
    # The shop learnt who asked from the request's _meta.
    assert shop.who_asked() == [(KEY.platform, CUSTOMER, "cancel_order", "ok")]
    # The same press again (a redelivery) runs nothing.
    again = await decide(runtime, proposal, confirm=True)
    assert again == Decision(note=engine_module.DECIDED[engine_module.ProposalState.CONFIRMED])
    assert len(await audit(runtime)) == 2


async def test_cancel_tells_claude_it_was_declined(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    proposal = await propose_cancel(runtime, fake_claude)
    fake_claude.queue(text("No problem, I've left the order as it is."))

    decision = await decide(runtime, proposal, confirm=False)

    assert decision.reply is not None and decision.reply.text.startswith("No problem")
    assert shop.status("W1001") == "pending"
    [note] = notes(fake_claude.requests[-1])
    assert "pressed Cancel" in note and "nothing changed" in note
    assert [e.outcome for e in await audit(runtime)][-1] == "cancelled"


async def test_someone_else_cannot_press(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    proposal = await propose_cancel(runtime, fake_claude)

    decision = await decide(runtime, proposal, confirm=True, user="U-stranger")

    assert decision == Decision(note=engine_module.NOT_YOURS, closed=False)
    assert shop.status("W1001") == "pending"
    assert len(fake_claude.requests) == 1
    # The customer still can.
    assert (await decide(runtime, proposal, confirm=True)).reply is not None
    assert shop.status("W1001") == "cancelled"


async def test_a_doubled_press_runs_once(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    proposal = await propose_cancel(runtime, fake_claude)
    fake_claude.queue(text("Cancelled."))

    both = await asyncio.gather(
        decide(runtime, proposal, confirm=True), decide(runtime, proposal, confirm=True)
    )

    assert sorted(d.reply is not None for d in both) == [False, True]
    assert [e.outcome for e in await audit(runtime)] == ["proposed", "ok"]
    assert len(fake_claude.requests) == 2


async def test_an_expired_proposal_runs_nothing(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    # A lifetime that rounds to nothing: the proposal has expired when the press comes.
    settings = with_servers(
        database_url, fake_claude, {"shop": ServerConfig(url=shop.url)}, proposal_minutes=1e-9
    )
    async with open_runtime(settings) as runtime:
        proposal = await propose_cancel(runtime, fake_claude)
        decision = await decide(runtime, proposal, confirm=True)
        again = await decide(runtime, proposal, confirm=True)
        outcomes = [e.outcome for e in await audit(runtime)]

    assert decision == again == Decision(note=engine_module.EXPIRED)
    assert shop.status("W1001") == "pending"
    assert outcomes == ["proposed", "expired"]
    assert len(fake_claude.requests) == 1


async def test_a_press_after_a_restart_still_works(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    settings = with_servers(database_url, fake_claude, {"shop": ServerConfig(url=shop.url)})
    async with open_runtime(settings) as before:
        proposal = await propose_cancel(before, fake_claude)
    fake_claude.queue(text("All done."))
    async with open_runtime(settings) as after:
        decision = await decide(after, proposal, confirm=True)

    assert decision.reply is not None and decision.reply.text == "All done."
    assert shop.status("W1001") == "cancelled"
    # The restarted bot's window still holds the call and what Claude was told of it.
    sent = json.dumps(fake_claude.requests[-1].messages)
    assert '"name": "shop__cancel_order"' in sent
    assert json.dumps(engine_module.WAITING) in sent


async def test_an_unknown_proposal_is_answered_plainly(runtime: Runtime) -> None:
    assert await decide(runtime, 999, confirm=True) == Decision(note=engine_module.GONE)


async def test_a_refusal_reaches_claude_as_an_error(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(
        tool_use("shop__get_order_status", {"order_number": "W9999"}),
        text("I couldn't find that order."),
    )

    reply = await runtime.engine.handle(message("Where is W9999?"))

    assert reply is not None and reply.text == "I couldn't find that order."
    [result] = results(fake_claude.requests[1])
    assert result["is_error"] is True and result["content"].startswith("The shop system refused")
    assert [e.outcome for e in await audit(runtime)] == ["error"]


async def test_the_tool_loop_is_capped(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    settings = with_servers(
        database_url, fake_claude, {"shop": ServerConfig(url=shop.url)}, max_rounds=2
    )
    fake_claude.default = lambda body: tool_use("shop__get_order_status", {"order_number": "W1001"})
    async with open_runtime(settings) as runtime:
        reply = await runtime.engine.handle(message("Where is W1001?"))

    assert reply is not None and reply.escalation is not None
    assert "still calling tools after 2 rounds" in reply.escalation.reason
    assert len(fake_claude.requests) == 2


@pytest.fixture
async def trouble(database_url: str, fake_claude: FakeAnthropic) -> AsyncIterator[Runtime]:
    async with serve_http(trouble_server(), token="s3cret") as url:
        servers = {"t": ServerConfig(url=url, token_env="TROUBLE_TOKEN", timeout_seconds=0.5)}
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TROUBLE_TOKEN", "s3cret")
            async with open_runtime(with_servers(database_url, fake_claude, servers)) as opened:
                yield opened


async def test_a_hanging_tool_times_out(trouble: Runtime, fake_claude: FakeAnthropic) -> None:
    fake_claude.queue(tool_use("t__hang", {}), text("Sorry, that system is slow today."))

    reply = await trouble.engine.handle(message("Check it"))

    assert reply is not None and reply.text == "Sorry, that system is slow today."
    [result] = results(fake_claude.requests[1])
    assert result["is_error"] is True and "did not answer within 0.5 seconds" in result["content"]


async def test_a_failing_tool_reports_its_reason_to_claude_only(
    trouble: Runtime, fake_claude: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    fake_claude.queue(tool_use("t__fail", {}), text("It's down for maintenance."))

    with caplog.at_level(logging.DEBUG):
        reply = await trouble.engine.handle(message("Check it, my secret is hunter2"))

    [result] = results(fake_claude.requests[1])
    assert result["is_error"] is True
    assert "closed for maintenance" in result["content"]
    assert reply is not None and reply.text == "It's down for maintenance."
    # The bot's side only: the test server runs in this process and logs its own way.
    ours = [r for r in caplog.records if not r.name.startswith(("mcp.server", "sse_starlette"))]
    logged = "\n".join(r.getMessage() for r in ours)
    assert "hunter2" not in logged and "closed for maintenance" not in logged


async def test_a_new_tool_is_offered_once_listed(
    trouble: Runtime, fake_claude: FakeAnthropic
) -> None:
    assert trouble.tools is not None
    fake_claude.queue(tool_use("t__grow", {}), text("Grown."))
    await trouble.engine.handle(message("Grow"))

    port = trouble.tools.port
    assert isinstance(port, McpTools)
    async with asyncio.timeout(5):
        await port.wait_until(lambda: "t__fresh" in {s.name for s in port.tools()})
    await trouble.engine.handle(message("Again"))

    assert "t__fresh" in {t["name"] for t in fake_claude.requests[-1].tools}
    assert "t__fresh" not in {t["name"] for t in fake_claude.requests[0].tools}


@pytest.mark.parametrize("token", ["wrong", None])
async def test_a_wrong_or_missing_token_leaves_the_server_out(
    token: str | None,
    database_url: str,
    fake_claude: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve_http(trouble_server(), token="s3cret") as url:
        servers = {"t": ServerConfig(url=url, token_env="TROUBLE_TOKEN", timeout_seconds=0.5)}
        with pytest.MonkeyPatch.context() as patch:
            if token is None:
                patch.delenv("TROUBLE_TOKEN", raising=False)
            else:
                patch.setenv("TROUBLE_TOKEN", token)
            settings = with_servers(database_url, fake_claude, servers)
            async with open_runtime(settings) as runtime:
                reply = await runtime.engine.handle(message("Hi"))

    assert reply is not None
    assert {t["name"] for t in fake_claude.requests[0].tools} == {"escalate_to_human"}
    missing = "MCP server t: TROUBLE_TOKEN is not set; no token sent"
    assert (missing in caplog.messages) is (token is None)
    assert "wrong" not in caplog.text


async def test_a_server_that_crashes_mid_call_is_restarted(
    database_url: str,
    fake_claude: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    command = ServerConfig(command=sys.executable, args=["-m", "tests.fakes.mcp_servers"], cwd=REPO)
    settings = with_servers(database_url, fake_claude, {"t": command})
    fake_claude.queue(tool_use("t__crash", {}), text("Sorry, that failed."))
    with caplog.at_level(logging.INFO, logger="supportbot.tools.stderr"):
        async with open_runtime(settings) as runtime:
            reply, result = await crash_and_echo(runtime, fake_claude)

    assert reply is not None and reply.text == "Sorry, that failed."
    assert result["is_error"] is True and "unavailable" in result["content"]
    [echoed] = results(fake_claude.requests[3])
    assert echoed["content"] == "echo: hi"
    # Its last words are a line of the bot's log (the token masked), not on the bot's stderr.
    said = [r.getMessage() for r in caplog.records if r.name == "supportbot.tools.stderr"]
    assert said == ["MCP server t: trouble: going down mid-call, ***"]
    assert "going down" not in capfd.readouterr().err


async def crash_and_echo(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> tuple[Any, dict[str, Any]]:
    """Claude calls ``t__crash`` (the server dies), then ``t__echo`` once it is back."""
    assert runtime.tools is not None
    reply = await runtime.engine.handle(message("Crash it"))
    [result] = results(fake_claude.requests[1])
    port = runtime.tools.port
    assert isinstance(port, McpTools)
    async with asyncio.timeout(20):
        await port.wait_until(lambda: port.connections("t") >= 2)
    fake_claude.queue(tool_use("t__echo", {"text": "hi"}), text("Back."))
    await runtime.engine.handle(message("Echo"))
    return reply, result


async def test_a_crashing_stdio_server_prints_nothing_into_the_console_chat(
    fake_claude: FakeAnthropic, tmp_path: Path
) -> None:
    config = tmp_path / "tools.toml"
    config.write_text(
        f"[servers.t]\ncommand = {json.dumps(sys.executable)}\n"
        f'args = ["-m", "tests.fakes.mcp_servers"]\ncwd = {json.dumps(str(REPO))}\n',
        encoding="utf-8",
    )
    fake_claude.queue(tool_use("t__crash", {}), text("Sorry, that failed."))

    code, out, err = await spawn_supportbot(
        tmp_path,
        "chat",
        stdin=b"crash it\nquit\n",
        ANTHROPIC_API_KEY="sk-test",
        ANTHROPIC_BASE_URL=fake_claude.base_url,
        SUPPORTBOT_MCP_CONFIG=str(config),
    )

    assert code == 0, err
    chat = out.decode()
    assert "Aria> Sorry, that failed." in chat
    assert "going down" not in chat and "going down" not in err.decode()
    assert "tr0uble" not in chat + err.decode()


async def test_the_demo_shop_over_stdio(
    database_url: str, fake_claude: FakeAnthropic, tmp_path: Path
) -> None:
    shop = ServerConfig(
        command=sys.executable,
        args=["-m", "bots.demo_shop", "--db", str(tmp_path / "shop.db"), "--today", str(TODAY)],
        cwd=REPO,
    )
    fake_claude.queue(
        tool_use("shop__get_order_status", {"order_number": "W1002"}),
        text("W1002 is on its way with UPS."),
    )
    async with open_runtime(with_servers(database_url, fake_claude, {"shop": shop})) as runtime:
        reply = await runtime.engine.handle(message("Where is order #W1002?"))

    assert reply is not None and reply.text == "W1002 is on its way with UPS."
    [result] = results(fake_claude.requests[1])
    assert "1Z999AA10123456784" in result["content"]


async def chat(cli: Cli, fake_claude: FakeAnthropic, said: str, *options: str, **env: str) -> Any:
    """``supportbot chat`` with ``said`` typed in, Claude being the fake."""
    return await asyncio.to_thread(
        cli,
        "chat",
        *options,
        stdin=said,
        ANTHROPIC_API_KEY="sk-test",
        ANTHROPIC_BASE_URL=fake_claude.base_url,
        **env,
    )


async def test_the_console_chat_answers_from_the_demo_shop_and_confirms_with_yes(
    cli: Cli, fake_claude: FakeAnthropic, tmp_path: Path
) -> None:
    fake_claude.queue(
        tool_use("shop__get_order_status", {"order_number": "W1001"}),
        text("W1001 is being prepared."),
        tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}),
        text("W1001 is cancelled."),
    )
    said = f"where is order #W1001?\ncancel it please, {MAYA}\nyes\nyes\nquit\n"

    result = await chat(cli, fake_claude, said, "--demo-shop")

    assert result.exit_code == 0, result.output
    assert "Aria> W1001 is being prepared." in result.stdout
    assert "Shall I go ahead with this?" in result.stdout and console.ASK in result.stdout
    assert "Aria> W1001 is cancelled." in result.stdout
    # The second "yes" is just a message: the proposal was decided already.
    assert len(fake_claude.requests) == 5
    assert Shop("", tmp_path / "shop.db").status("W1001") == "cancelled"


def test_supportbot_actions_lists_servers_and_tools(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "tools.toml"
    config.write_text(
        f"""
[servers.shop]
command = {json.dumps(sys.executable)}
args = ["-m", "bots.demo_shop", "--db", "shop.db"]
staff_only = ["start_return"]
staff_approval = ["change_shipping_address"]

[servers.gone]
url = "http://127.0.0.1:9/mcp"
timeout_seconds = 0.5
""",
        encoding="utf-8",
    )

    result = cli("actions", SUPPORTBOT_MCP_CONFIG=str(config))

    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"shop (stdio {sys.executable}): connected" in lines
    assert "shop__get_order_status read-only Order status and tracking" in lines
    assert "shop__cancel_order write Cancel an order" in lines
    assert (
        "shop__change_shipping_address write, staff approval Change the shipping address" in lines
    )
    assert "shop__start_return staff-only Start a return" in lines
    assert "gone (HTTP http://127.0.0.1:9/mcp): NOT REACHABLE" in lines


def test_supportbot_actions_without_servers_says_how_to_add_them(cli: Cli) -> None:
    result = cli("actions")

    assert result.exit_code == 0 and "SUPPORTBOT_MCP_CONFIG" in result.stdout


def test_a_bad_tool_config_names_the_problem(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "tools.toml"
    config.write_text('[servers.shop]\nargs = ["x"]\n', encoding="utf-8")

    result = cli("actions", SUPPORTBOT_MCP_CONFIG=str(config))

    assert result.exit_code == 2
    assert "mcp_config" in result.stderr and "either command (stdio) or url" in result.stderr


async def test_the_hand_off_summary_sees_the_tools_used(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(
        tool_use("shop__get_order_status", {"order_number": "W1002"}),
        text("W1002 is on its way."),
        text("Customer asked about W1002 (shipped, UPS) and wants a person."),
    )
    await runtime.engine.handle(message("Where is W1002?"))

    reply = await runtime.engine.handle(message("I want to talk to a human"))

    assert reply is not None and reply.escalation is not None
    transcript = fake_claude.requests[-1].last_user_text
    assert 'Support: [used shop__get_order_status {"order_number": "W1002"}]' in transcript
    assert 'Tools: { "order_number": "W1002", "status": "shipped",' in transcript
    assert reply.escalation.summary.startswith("Customer asked about W1002")


async def test_the_persona_learns_about_the_tools_only_when_they_are_connected(
    runtime: Runtime, fake_claude: FakeAnthropic, database_url: str
) -> None:
    await runtime.engine.handle(message("Hi"))
    async with open_runtime(make_settings(database_url, fake_claude.base_url)) as plain:
        await plain.engine.handle(message("Hi again"))

    with_tools, without = fake_claude.requests
    assert "its tools start with shop__" in system_text(with_tools.body)
    assert "shop__" not in system_text(without.body)


async def test_staff_only_tools_are_never_offered_and_staff_approve_others(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    config = ServerConfig(
        url=shop.url, staff_only=["start_return"], staff_approval=["cancel_order"]
    )
    settings = with_servers(database_url, fake_claude, {"shop": config})
    async with open_runtime(settings) as runtime:
        proposal = await propose_cancel(runtime, fake_claude)
        by_customer = await decide(runtime, proposal, confirm=True)

        async def staff() -> bool:
            return True

        fake_claude.queue(text("The team approved it: W1001 is cancelled."))
        by_staff = await runtime.engine.decide(
            proposal, user_id="U-staff", confirm=True, is_staff=staff
        )
        log = await audit(runtime)

    offered = {t["name"] for t in fake_claude.requests[0].tools}
    assert "shop__start_return" not in offered and "shop__cancel_order" in offered
    assert by_customer == Decision(note=engine_module.STAFF_DECIDES, closed=False)
    assert by_staff.reply is not None and shop.status("W1001") == "cancelled"
    sent = json.dumps(fake_claude.requests[-1].messages)
    assert json.dumps(engine_module.WAITING_FOR_STAFF) in sent
    [note] = notes(fake_claude.requests[-1])
    assert note.startswith("The support team approved it and Cancel an order ran.")
    assert [(e.outcome, e.actor) for e in log] == [("proposed", CUSTOMER), ("ok", "U-staff")]


async def claude_cancels_under(
    config: ServerConfig, database_url: str, fake_claude: FakeAnthropic, then: str
) -> tuple[Reply | None, list[str]]:
    """With the shop under ``config``, Claude calls shop__cancel_order for W1001 and then says
    ``then``: the reply, and the outcomes in the audit log."""
    fake_claude.queue(
        tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}), text(then)
    )
    async with open_runtime(with_servers(database_url, fake_claude, {"shop": config})) as runtime:
        reply = await runtime.engine.handle(message("Cancel W1001, " + MAYA))
        return reply, [e.outcome for e in await audit(runtime)]


async def test_claude_cannot_call_a_staff_only_tool_by_name(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    config = ServerConfig(url=shop.url, staff_only=["cancel_order"])
    reply, _ = await claude_cancels_under(config, database_url, fake_claude, "I can't do that.")

    assert reply is not None and reply.proposal is None
    [result] = results(fake_claude.requests[1])
    assert result["is_error"] is True and result["content"] == engine_module.NO_SUCH_TOOL
    assert shop.status("W1001") == "pending"


@pytest.mark.parametrize("confirm", [True, False])
async def test_a_press_while_people_have_the_conversation_runs_and_tells_the_customer(
    confirm: bool, runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    proposal = await propose_cancel(runtime, fake_claude)
    fake_claude.queue(text("Customer wants W1001 cancelled and asked for a person."))
    handed = await runtime.engine.handle(message("I want to talk to a human"))
    assert handed is not None and handed.escalation is not None
    escalation = handed.escalation.id
    assert escalation is not None
    await runtime.desk.claim(escalation, staff_id="U-staff")
    asked = len(fake_claude.requests)

    decision = await decide(runtime, proposal, confirm=confirm)

    assert len(fake_claude.requests) == asked, "people have it: Claude does not answer"
    assert decision.reply is not None and decision.key == KEY
    if confirm:
        assert decision.reply.text == "Done: Cancel an order."
        assert decision.outcome is not None
        assert decision.outcome.startswith("confirmed Cancel an order: it ran. Result:")
        assert shop.status("W1001") == "cancelled"
    else:
        assert decision.reply.text == "Cancel an order was not done, and nothing changed."
        assert decision.outcome == "cancelled Cancel an order: nothing was run."
        assert shop.status("W1001") == "pending"
    stored = await runtime.store.history(KEY)
    assert [t.kind for t in stored][-3:] == ["customer", "tool_result", "notice"]
    assert stored[-1].text == decision.reply.text

    # Handed back, Claude reads what came of it.
    await runtime.desk.hand_back(escalation, staff_id="U-staff")
    fake_claude.queue(text("Anything else?"))
    await runtime.engine.handle(message("Thanks"))
    sent = json.dumps(fake_claude.requests[-1].messages)
    assert ("pressed Confirm and Cancel an order ran" in sent) is confirm
    assert ("pressed Cancel: shop__cancel_order was not run" in sent) is not confirm


async def test_the_team_can_declare_a_tool_read_only(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    # The demo shop annotates cancel_order as a write; the team's config says otherwise.
    config = ServerConfig(url=shop.url, read_only=["cancel_order"])
    reply, outcomes = await claude_cancels_under(
        config, database_url, fake_claude, "W1001 is cancelled."
    )

    assert reply is not None and reply.proposal is None and reply.text == "W1001 is cancelled."
    assert shop.status("W1001") == "cancelled" and outcomes == ["ok"]


async def test_the_console_does_not_ask_for_a_yes_the_team_must_give(
    cli: Cli, fake_claude: FakeAnthropic, tmp_path: Path
) -> None:
    config = tmp_path / "tools.toml"
    config.write_text(
        f"[servers.shop]\ncommand = {json.dumps(sys.executable)}\n"
        f'args = ["-m", "bots.demo_shop", "--db", {json.dumps(str(tmp_path / "shop.db"))}]\n'
        f'cwd = {json.dumps(str(REPO))}\nstaff_approval = ["cancel_order"]\n',
        encoding="utf-8",
    )
    fake_claude.queue(
        tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}),
        text("Fine, I'll leave it with the team."),
    )

    said = f"cancel W1001 please, {MAYA}\nyes\nquit\n"
    result = await chat(cli, fake_claude, said, SUPPORTBOT_MCP_CONFIG=str(config))

    assert result.exit_code == 0, result.output
    assert engine_module.STAFF_PROPOSED in result.stdout and console.ASK not in result.stdout
    # "yes" was the customer's next message, not a decision.
    assert "Aria> Fine, I'll leave it with the team." in result.stdout
