"""FakeSlack itself, driven by the real slack-sdk, plus the bot's lifecycle on both transports."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.bot import SlackBot
from core.desk import Desk
from tests.fakes.slack_api import FakeSlack, post_action, post_event
from tests.slack_helpers import (
    SECRET,
    RecordingPort,
    load_body,
    press_body,
    running_bot,
    slack_settings,
)


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def test_json_form_and_query_bodies_are_recorded(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="json body")
    ts = posted["ts"]
    await client.api_call("chat.update", data={"channel": "C1", "ts": ts, "text": "form"})
    await client.api_call("conversations.info", http_verb="GET", params={"channel": "D1"})
    assert slack.calls == [
        ("chat.postMessage", {"channel": "C1", "text": "json body"}),
        ("chat.update", {"channel": "C1", "ts": ts, "text": "form"}),
        ("conversations.info", {"channel": "D1"}),
    ]
    assert slack.message("C1", ts)["text"] == "form"
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="C1", ts="1.2", text="gone")


async def test_wait_for_counts_matching_calls(slack: FakeSlack, client: AsyncWebClient) -> None:
    waiter = asyncio.create_task(
        slack.wait_for("chat.postMessage", lambda p: p["channel"] == "C2", count=2)
    )
    for channel in ("C1", "C2", "C2"):
        await client.chat_postMessage(channel=channel, text="hi")
    assert [p["channel"] for p in await waiter] == ["C2", "C2"]
    with pytest.raises(TimeoutError):
        await slack.wait_for("chat.postMessage", count=4, timeout=0.05)


async def test_failures_limits_and_auth_answer_like_slack(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", "not_in_channel")
    with pytest.raises(SlackApiError, match="not_in_channel"):
        await client.chat_postMessage(channel="C1", text="hi")
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.chat_postMessage(
            channel="C1", text="x", blocks=[{"type": "markdown", "text": "x" * 12001}]
        )
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await AsyncWebClient(token="xoxb-other", base_url=slack.api_url).auth_test()
    await client.reactions_add(channel="C1", timestamp="1.1", name="eyes")
    with pytest.raises(SlackApiError, match="already_reacted"):
        await client.reactions_add(channel="C1", timestamp="1.1", name="eyes")
    posted = await client.chat_postMessage(channel="C1", text="ok", thread_ts="1.1")
    assert posted["message"]["thread_ts"] == "1.1"
    link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    assert link["permalink"].endswith(posted["ts"].replace(".", ""))


async def test_bot_serves_socket_mode_until_closed(slack: FakeSlack, desk: Desk) -> None:
    bot = SlackBot(settings=slack_settings(slack, mode="socket"), port=RecordingPort(), desk=desk)
    await bot.start()
    waiting = asyncio.create_task(bot.wait())
    ack = await slack.send_envelope(load_body("message_im"))
    assert ack["envelope_id"]
    [post] = await slack.wait_for("chat.postMessage")
    assert post["channel"] == "D0DM"
    assert not waiting.done()
    await bot.close()
    await waiting
    await slack.wait_disconnected()


async def test_form_encoded_button_press_is_signed_like_slack(slack: FakeSlack, desk: Desk) -> None:
    async with running_bot(slack, RecordingPort(), desk=desk) as harness:
        await harness.deliver(load_body("message_im"))
        [answer] = slack.messages
        payload = press_body(answer, "talk_to_human", user="U0CUSTOMER")
        assert await post_action(harness.events_url, payload, secret="wrong") == 401
        assert await post_action(harness.events_url, payload, secret=SECRET) == 200


async def test_http_endpoint_stops_on_close(slack: FakeSlack, desk: Desk) -> None:
    async with running_bot(slack, RecordingPort(), desk=desk) as harness:
        url = harness.events_url
        assert await post_event(url, load_body("own_message"), secret=SECRET) == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await post_event(url, load_body("own_message"), secret=SECRET)
