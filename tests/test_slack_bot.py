"""SlackBot on the wire: real Bolt and slack-sdk against FakeSlack, with a recording port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.bot import SlackBot
from bots.slack.settings import SlackSettings
from bots.slack.staff import REFRESH_SECONDS, RETRY_SECONDS, StaffDirectory
from core.config import ConfigError
from core.desk import Desk
from core.files import Problem
from core.types import IncomingMessage, Reply, StartError
from tests.fakes.slack_api import FakeSlack, post_event, sign
from tests.slack_helpers import (
    GROUP,
    SECRET,
    Harness,
    RecordingPort,
    load_body,
    running_bot,
    slack_settings,
)

MENTION_TS = "1700000100.000100"
MANIFEST = Path(__file__).parents[1] / "bots" / "slack" / "manifest.yaml"


@pytest.fixture
def port() -> RecordingPort:
    return RecordingPort()


@pytest.fixture(params=["http", "socket"])
async def bot(
    request: pytest.FixtureRequest, slack: FakeSlack, port: RecordingPort, desk: Desk
) -> AsyncIterator[Harness]:
    async with running_bot(slack, port, desk=desk, mode=request.param) as harness:
        yield harness


@pytest.fixture
async def http_bot(slack: FakeSlack, port: RecordingPort, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, port, desk=desk) as harness:
        yield harness


async def test_dm_turn_and_follow_up_reply_at_the_dm_top_level(
    bot: Harness, port: RecordingPort
) -> None:
    assert await bot.deliver(load_body("message_im")) == 200
    second = load_body("message_im", ts="1700000009.000100", text="Any news?", event_id="Ev2")
    assert await bot.deliver(second) == 200

    assert [m.text for m in port.messages] == [
        "My order #123 hasn't arrived & the tracking says <pending>",
        "Any news?",
    ]
    assert {m.key for m in port.messages} == {port.messages[0].key}
    assert all(m.direct for m in port.messages)
    first, follow = bot.posts("D0DM")
    assert "thread_ts" not in first and "thread_ts" not in follow
    assert first["text"] == (
        "echo: My order #123 hasn't arrived &amp; the tracking says &lt;pending&gt;"
    )
    markdown, button = first["blocks"]
    assert markdown == {"type": "markdown", "text": first["text"]}
    assert button["elements"][0]["action_id"] == "talk_to_human"
    assert follow["text"] == "echo: Any news?"


async def test_an_answer_slack_refuses_with_a_server_error_is_posted_on_a_retry(
    http_bot: Harness,
) -> None:
    http_bot.fake.fail("chat.postMessage", "internal_error", status=500, times=2)
    await http_bot.deliver(load_body("message_im", text="Any news?"))

    attempts = http_bot.fake.calls_to("chat.postMessage")
    assert len(attempts) == 3, "two refused, the third taken"
    assert [m["text"] for m in http_bot.fake.messages if m["channel"] == "D0DM"] == [
        "echo: Any news?"
    ]


async def test_loading_status_is_set_then_cleared(bot: Harness) -> None:
    await bot.deliver(load_body("message_im"))
    # The status is set beside the port call, so only its clearing has a fixed place.
    status = "assistant.threads.setStatus"
    assert sorted(bot.activity()) == [status, status, "chat.postMessage"]
    set_, cleared = bot.fake.calls_to("assistant.threads.setStatus")
    # A DM's top-level message: the status goes under it.
    assert (set_["channel_id"], set_["thread_ts"]) == ("D0DM", "1700000001.000100")
    assert set_["status"] == "is looking into it…"
    assert (cleared["thread_ts"], cleared["status"]) == ("1700000001.000100", "")
    assert bot.activity()[-1] == status
    assert bot.fake.statuses == {} and bot.fake.reactions == set()


async def test_where_slack_refuses_the_status_the_reaction_shows_instead(bot: Harness) -> None:
    bot.fake.fail("assistant.threads.setStatus", "not_allowed")
    await bot.deliver(load_body("message_im"))
    added = bot.fake.calls_to("reactions.add")[0]
    assert added == {"channel": "D0DM", "timestamp": "1700000001.000100", "name": "eyes"}
    assert bot.activity()[-1] == "reactions.remove"
    assert len(bot.fake.calls_to("assistant.threads.setStatus")) == 1, "nothing to clear"
    assert bot.fake.reactions == set()


async def test_messages_reach_the_port_in_delivery_order_without_waiting_for_slack(
    bot: Harness, port: RecordingPort
) -> None:
    release = bot.fake.hold("assistant.threads.setStatus")
    for n in range(3):
        await bot.deliver(
            load_body("message_im", ts=f"170000001{n}.000100", text=f"m{n}"), wait=False
        )
    await bot.fake.wait_for("assistant.threads.setStatus", count=3)
    # Every status is still unanswered, yet the port already has the messages, in order.
    assert [m.text for m in port.messages] == ["m0", "m1", "m2"]
    release.set()
    await bot.bot.drain()
    assert bot.fake.statuses == {}


async def test_reply_in_a_dm_thread_stays_in_that_thread(bot: Harness, port: RecordingPort) -> None:
    await bot.deliver(load_body("message_im_thread"))
    [post] = bot.posts("D0DM")
    assert post["thread_ts"] == "1700000002.000200"
    assert port.messages[0].key.thread_id == "1700000002.000200"


async def test_mention_is_answered_in_a_thread_on_the_mention(bot: Harness) -> None:
    await bot.deliver(load_body("app_mention"))
    [post] = bot.posts("C0SUPPORT")
    assert post["thread_ts"] == MENTION_TS
    assert post["text"] == "echo: how do I reset my password?"


async def test_thread_follow_up_without_mention_continues_the_conversation(
    bot: Harness, port: RecordingPort
) -> None:
    await bot.deliver(load_body("app_mention"))
    await bot.deliver(load_body("message_channel_thread"))
    assert [m.key.thread_id for m in port.messages] == [MENTION_TS, MENTION_TS]
    assert [p["thread_ts"] for p in bot.posts("C0SUPPORT")] == [MENTION_TS, MENTION_TS]


async def test_thread_reply_where_the_bot_has_no_conversation_is_left_alone(
    bot: Harness, port: RecordingPort
) -> None:
    assert await bot.deliver(load_body("message_channel_thread")) == 200
    assert port.messages == []
    assert bot.posts() == []
    assert bot.fake.calls_to("reactions.add") == []


async def test_staff_replying_in_the_thread_is_not_answered(
    bot: Harness, port: RecordingPort
) -> None:
    await bot.deliver(load_body("app_mention"))
    staff_reply = {"user": "U0STAFF1", "ts": "1700000170.000100", "text": "I'll take it from here"}
    await bot.deliver(load_body("message_channel_thread", **staff_reply))
    await bot.deliver(load_body("message_channel_thread"))
    assert [m.author_id for m in port.messages] == ["U0CUSTOMER", "U0CUSTOMER"]
    assert bot.fake.calls_to("usergroups.users.list") == [{"usergroup": GROUP}]


async def test_staff_can_still_ask_the_bot_with_a_mention(
    bot: Harness, port: RecordingPort
) -> None:
    await bot.deliver(load_body("app_mention", user="U0STAFF1"))
    assert [m.author_id for m in port.messages] == ["U0STAFF1"]


async def test_without_usergroups_read_every_thread_reply_is_followed(
    http_bot: Harness, port: RecordingPort, caplog: pytest.LogCaptureFixture
) -> None:
    http_bot.fake.fail("usergroups.users.list", "missing_scope")
    await http_bot.deliver(load_body("app_mention"))
    await http_bot.deliver(load_body("message_channel_thread", user="U0STAFF1"))
    assert [m.author_id for m in port.messages] == ["U0CUSTOMER", "U0STAFF1"]
    assert "missing_scope" in caplog.text


async def test_retried_event_is_acked_and_answered_once(bot: Harness, port: RecordingPort) -> None:
    body = load_body("app_mention")
    assert await bot.deliver(body) == 200
    assert await bot.deliver(body, retry=1) == 200
    assert await bot.deliver(body, retry=2) == 200
    # The adapter does not dedupe; it hands the port the same message id every time.
    assert {m.message_id for m in port.messages} == {f"C0SUPPORT:{MENTION_TS}"}
    assert len(bot.posts()) == 1


async def test_mention_and_its_message_twin_give_one_reply(
    bot: Harness, port: RecordingPort
) -> None:
    await bot.deliver(load_body("app_mention"))
    await bot.deliver(load_body("message_channel_mention"))
    assert len(port.messages) == 2
    assert port.messages[0] == port.messages[1]
    assert len(bot.posts()) == 1


@pytest.mark.parametrize(
    "fixture",
    ["own_message", "bot_message", "other_app_post", "message_changed", "message_deleted",
     "channel_join", "message_channel_top"],
)  # fmt: skip
async def test_events_that_are_not_customer_text_are_acked_and_ignored(
    bot: Harness, port: RecordingPort, fixture: str
) -> None:
    assert await bot.deliver(load_body(fixture)) == 200
    assert port.messages == []
    assert bot.activity() == []


@pytest.mark.parametrize(
    "headers",
    [
        {"secret": None},
        {"secret": "wrong-secret"},
        {"secret": SECRET, "signature": "v0=" + "0" * 64},
        {"secret": SECRET, "timestamp": int(time.time()) - 600},
    ],
    ids=["missing", "wrong-secret", "bad-signature", "stale"],
)
async def test_unsigned_or_badly_signed_requests_get_401_and_nothing_happens(
    http_bot: Harness, port: RecordingPort, headers: dict
) -> None:
    status = await post_event(http_bot.events_url, load_body("message_im"), **headers)
    await http_bot.bot.drain()
    assert status == 401
    assert port.messages == []
    assert http_bot.activity() == []


async def test_url_verification_is_answered(http_bot: Harness) -> None:
    status = await post_event(
        http_bot.events_url,
        {"token": "t", "challenge": "c-123", "type": "url_verification"},
        secret=SECRET,
    )
    assert status == 200


async def test_model_output_cannot_ping(slack: FakeSlack, desk: Desk) -> None:
    port = RecordingPort(
        answer=lambda m: Reply("Hi <!channel> <!here> <!everyone> <@U0ALL> <!subteam^S0X> <#C0G>")
    )
    async with running_bot(slack, port, desk=desk) as harness:
        await harness.deliver(load_body("app_mention"))
    [post] = harness.posts()
    for text in (post["text"], post["blocks"][0]["text"]):
        assert "<" not in text
        assert "&lt;!channel&gt;" in text


async def test_long_answer_is_posted_in_order_in_the_thread(slack: FakeSlack, desk: Desk) -> None:
    answer = "\n".join(f"Step {i}: do the thing." for i in range(3000))
    async with running_bot(
        slack, RecordingPort(answer=lambda m: Reply(answer)), desk=desk
    ) as harness:
        await harness.deliver(load_body("app_mention"))
    posts = harness.posts()
    assert len(posts) > 10
    assert all(p["thread_ts"] == MENTION_TS and len(p["text"]) <= 4000 for p in posts)
    assert "\n".join(p["text"] for p in posts) == answer


async def test_rate_limited_post_is_retried(
    slack: FakeSlack, desk: Desk, port: RecordingPort
) -> None:
    slack.fail("chat.postMessage", "ratelimited")  # HTTP 429 with Retry-After: 0
    async with running_bot(slack, port, desk=desk) as harness:
        await harness.deliver(load_body("message_im"))
    assert [p["channel"] for p in slack.calls_to("chat.postMessage")] == ["D0DM", "D0DM"]
    assert slack.reactions == set()


async def test_failed_post_is_logged_not_raised(
    slack: FakeSlack, desk: Desk, port: RecordingPort, caplog: pytest.LogCaptureFixture
) -> None:
    slack.fail("chat.postMessage", "not_in_channel")
    async with running_bot(slack, port, desk=desk) as harness:
        assert await harness.deliver(load_body("app_mention")) == 200
        await harness.deliver(load_body("message_im"))
    assert "not_in_channel" in caplog.text
    assert "slack:T0TEAM:C0SUPPORT:" in caplog.text
    assert [p["channel"] for p in slack.calls_to("chat.postMessage")] == ["C0SUPPORT", "D0DM"]
    assert slack.reactions == set()


async def test_port_failure_is_logged_and_nothing_is_shown(
    slack: FakeSlack, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: IncomingMessage) -> Reply:
        raise RuntimeError("database is on fire")

    async with running_bot(slack, RecordingPort(answer=broken), desk=desk) as harness:
        assert await harness.deliver(load_body("message_im")) == 200
    assert harness.posts() == []
    assert slack.reactions == set()
    [record] = [r for r in caplog.records if r.exc_info]
    assert "slack:T0TEAM:D0DM:-" in record.getMessage()


async def test_doubled_delivery_leaves_the_reaction_to_the_first(
    slack: FakeSlack, desk: Desk, port: RecordingPort
) -> None:
    slack.fail("assistant.threads.setStatus", "not_allowed")
    slack.reactions.add(("C0SUPPORT", MENTION_TS, "eyes"))
    async with running_bot(slack, port, desk=desk) as harness:
        await harness.deliver(load_body("app_mention"))
    assert slack.calls_to("reactions.remove") == []
    assert len(harness.posts()) == 1


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_bad_bot_token_fails_start_with_one_sentence(
    slack: FakeSlack, port: RecordingPort, desk: Desk, mode: str
) -> None:
    settings = slack_settings(slack, mode=mode, bot_token="xoxb-revoked")
    bot = SlackBot(settings=settings, port=port, desk=desk)
    with pytest.raises(StartError) as raised:
        await bot.start()
    sentence = str(raised.value)
    assert sentence.startswith("SLACK_BOT_TOKEN was refused by Slack (invalid_auth)")
    assert "\n" not in sentence and "xoxb-revoked" not in sentence
    assert [m for m, _ in slack.calls] == ["auth.test"], "nothing else was tried"


@pytest.mark.parametrize("code", ["account_inactive", "token_revoked"])
async def test_revoked_or_deactivated_bot_token_fails_start(
    slack: FakeSlack, port: RecordingPort, desk: Desk, code: str
) -> None:
    slack.fail("auth.test", code)
    bot = SlackBot(settings=slack_settings(slack), port=port, desk=desk)
    with pytest.raises(StartError, match=f"SLACK_BOT_TOKEN was refused by Slack \\({code}\\)"):
        await bot.start()


async def test_bad_app_token_fails_start_instead_of_retrying_forever(
    slack: FakeSlack, port: RecordingPort, desk: Desk
) -> None:
    settings = slack_settings(slack, mode="socket", app_token="xapp-revoked")
    bot = SlackBot(settings=settings, port=port, desk=desk)
    with pytest.raises(StartError, match=r"SLACK_APP_TOKEN was refused by Slack \(invalid_auth\)"):
        await bot.start()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bot_token": None}, "SLACK_BOT_TOKEN"),
        ({"bot_token": "xapp-wrong-kind"}, "SLACK_BOT_TOKEN"),
        ({"mode": "socket", "app_token": None}, "SLACK_APP_TOKEN"),
        ({"mode": "http", "signing_secret": None}, "SLACK_SIGNING_SECRET"),
        ({"support_group_id": "@support"}, "SLACK_SUPPORT_GROUP_ID"),
        ({"staff_channel": "#support-staff"}, "SLACK_STAFF_CHANNEL"),
    ],
)
async def test_missing_settings_are_named(
    slack: FakeSlack, port: RecordingPort, desk: Desk, overrides: dict, field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        SlackBot(settings=slack_settings(slack, **overrides), port=port, desk=desk)


def test_signature_helper_matches_slacks_documented_example() -> None:
    # From Slack's "Verifying requests from Slack" guide.
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect"
        "&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554"
        "%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", body, 1531420618) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_manifest_asks_for_exactly_what_the_adapter_uses() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",  # app_mention
        "channels:history",  # message.channels: thread follow-ups
        "groups:history",  # message.groups: the same in private channels
        "im:history",  # message.im
        "chat:write",  # chat.postMessage
        "reactions:write",  # the progress reaction
        "usergroups:read",  # usergroups.users.list: staff replies in threads
        "users:read",  # users.info: the name on a relayed staff reply
        "files:read",  # url_private: customers' photos and PDFs, staff files for a DM
        "files:write",  # files.uploadV2: photos to the staff thread, staff files to a DM
        "assistant:write",  # the agent view's suggested prompts
    }
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "agent_session_stopped",  # the stop button
        "app_home_opened",  # the Messages tab: suggested prompts
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
    }
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    agent = manifest["features"]["agent_view"]
    assert agent["agent_description"]
    # Slack shows at most 4 prompts, each a title and the message it sends.
    assert 0 < len(agent["suggested_prompts"]) <= 4
    assert all(set(p) == {"title", "message"} for p in agent["suggested_prompts"])
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


async def test_staff_list_is_cached_then_refreshed(slack: FakeSlack) -> None:
    now = 0.0
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    staff = StaffDirectory(client=client, group_id=GROUP, clock=lambda: now)
    assert await staff.is_staff("U0STAFF1")
    assert not await staff.is_staff("U0CUSTOMER")
    assert len(slack.calls_to("usergroups.users.list")) == 1
    now = REFRESH_SECONDS
    assert await staff.is_staff("U0STAFF2")
    assert len(slack.calls_to("usergroups.users.list")) == 2
    nobody = StaffDirectory(client=client, group_id=None)
    assert not await nobody.is_staff("U0STAFF1")
    assert len(slack.calls_to("usergroups.users.list")) == 2


async def test_failed_staff_lookup_is_retried_not_cached(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    now = 0.0
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    staff = StaffDirectory(client=client, group_id=GROUP, clock=lambda: now)
    slack.fail("usergroups.users.list", "internal_error", times=2)
    assert not await staff.is_staff("U0STAFF1")
    assert "internal_error" in caplog.text
    assert not await staff.is_staff("U0STAFF1"), "not every message retries"
    assert len(slack.calls_to("usergroups.users.list")) == 1
    now = RETRY_SECONDS
    assert not await staff.is_staff("U0STAFF1")
    now = 2 * RETRY_SECONDS
    assert await staff.is_staff("U0STAFF1"), "found well before the refresh interval"
    assert len(slack.calls_to("usergroups.users.list")) == 3
    # Once known, a failed refresh keeps the members it had.
    now += REFRESH_SECONDS
    slack.fail("usergroups.users.list", "ratelimited")
    assert await staff.is_staff("U0STAFF1")
    assert len(slack.calls_to("usergroups.users.list")) == 4


async def test_staff_names_are_looked_up_once(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    staff = StaffDirectory(client=client, group_id=GROUP)
    slack.fail("users.info", "user_not_found")
    assert await staff.name("U0STAFF1") == "U0STAFF1"
    assert await staff.name("U0STAFF1") == "name-U0STAFF1"
    assert await staff.name("U0STAFF1") == "name-U0STAFF1"
    assert slack.calls_to("users.info") == [{"user": "U0STAFF1"}, {"user": "U0STAFF1"}]


async def test_a_file_off_slacks_hosts_reaches_the_port_unfetched(
    bot: Harness, port: RecordingPort
) -> None:
    # The fixture's url_private is on files.slack.test: not Slack's, so the token stays home.
    assert await bot.deliver(load_body("file_share")) == 200
    [message] = port.messages
    [receipt] = message.attachments
    assert (receipt.name, receipt.size, receipt.data) == ("receipt.png", 48213, None)
    assert receipt.problem == Problem.UNAVAILABLE
    assert message.text == ""
    assert bot.fake.downloads == []
    assert len(bot.posts("D0DM")) == 1, "the engine's answer is posted"


async def test_clean_start_logs_no_warning(
    slack: FakeSlack,
    port: RecordingPort,
    desk: Desk,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As deployed: the token is in the environment, where Bolt looks for it too.
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.bot_token)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    caplog.set_level(logging.INFO)
    for mode in ("socket", "http"):
        async with running_bot(slack, port, desk=desk, mode=mode) as harness:
            await harness.deliver(load_body("message_im"))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Slack: signed in as bot user U0BOT" in caplog.text


async def test_web_api_calls_share_one_http_session(bot: Harness) -> None:
    for n in range(4):
        await bot.deliver(load_body("message_im", ts=f"170000002{n}.000100", text=f"m{n}"))
    calls = bot.fake.peers
    # auth.test, then per message a reaction, a post and the reaction's removal: all over the
    # same kept-alive connection (the reaction goes beside the post, so at most one more).
    assert len(calls) >= 13
    assert len(set(calls)) <= 2


async def test_close_closes_the_http_session(bot: Harness) -> None:
    await bot.deliver(load_body("message_im"))
    assert bot.fake.connections >= 1
    await bot.bot.close()
    await bot.fake.wait_connections(0)


def test_http_host_setting_defaults_to_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SlackSettings(_env_file=None).http_host == "0.0.0.0"
    monkeypatch.setenv("SLACK_HTTP_HOST", "127.0.0.1")
    assert SlackSettings(_env_file=None).http_host == "127.0.0.1"


async def test_close_lets_an_accepted_message_finish(
    slack: FakeSlack, desk: Desk, port: RecordingPort
) -> None:
    release = slack.hold("chat.postMessage")
    async with running_bot(slack, port, desk=desk) as harness:
        await harness.deliver(load_body("message_im"), wait=False)
        await slack.wait_for("chat.postMessage")
        closing = asyncio.create_task(harness.bot.close())
        release.set()
        await closing
    cleared = [c for c in slack.calls_to("assistant.threads.setStatus") if not c["status"]]
    assert cleared, "the message was finished, not cut off"


async def test_close_cancels_what_outlasts_the_grace_period(
    slack: FakeSlack,
    desk: Desk,
    port: RecordingPort,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("bots.slack.bot.CLOSE_GRACE_SECONDS", 0.01)
    release = slack.hold("chat.postMessage")
    async with running_bot(slack, port, desk=desk) as harness:
        await harness.deliver(load_body("message_im"), wait=False)
        await slack.wait_for("chat.postMessage")
    release.set()
    assert "cancelling 1 unfinished task(s)" in caplog.text
    assert slack.statuses == {}, "even a cancelled message clears its status"
