"""The fake Anthropic API behaves like the real one for the real `AsyncAnthropic` client."""

import asyncio
from collections.abc import AsyncIterator

import anthropic
import pytest
from anthropic.types import ToolUseBlock

from tests.fakes.anthropic_api import (
    FakeAnthropic,
    drop,
    hang,
    overloaded,
    rate_limited,
    spend_limited,
    stream_error,
    text,
    tool_use,
)

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test") as c:
        yield c


async def test_create_returns_text_and_usage(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue(text("Hi there", usage={"cache_read_input_tokens": 42}))

    message = await client.messages.create(
        model=MODEL, max_tokens=100, system="Be nice.", messages=HELLO
    )

    assert message.content[0].type == "text"
    assert message.content[0].text == "Hi there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert message.usage.cache_read_input_tokens == 42
    [request] = fake.requests
    assert request.system == "Be nice."
    assert request.last_user_text == "Hello"
    assert not request.stream
    assert request.headers["authorization"] == "Bearer test"


async def test_default_answers_when_queue_is_empty(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.default = lambda body: text(f"echo {len(body['messages'])}")

    message = await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert message.content[0].type == "text"
    assert message.content[0].text == "echo 1"


async def test_stream_yields_text_and_final_message(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue(text("Hello there, friend", stop_reason="max_tokens"))

    async with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        chunks = [chunk async for chunk in stream.text_stream]
        final = await stream.get_final_message()

    assert len(chunks) > 1
    assert "".join(chunks) == "Hello there, friend"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Hello there, friend"
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens > 1
    assert fake.requests[0].stream


async def test_streamed_tool_use_is_parsed(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    args = {"reason": "customer asked for a human being, twice"}
    fake.queue(tool_use("escalate_to_human", args, text="Escalating.", id="toolu_1"))
    tools = [
        {
            "name": "escalate_to_human",
            "description": "Hand over to a person.",
            "input_schema": {"type": "object", "properties": {"reason": {"type": "string"}}},
        }
    ]

    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO, tools=tools
    ) as stream:
        final = await stream.get_final_message()

    assert final.stop_reason == "tool_use"
    block = final.content[1]
    assert isinstance(block, ToolUseBlock)
    assert (block.id, block.name, block.input) == ("toolu_1", "escalate_to_human", args)
    assert fake.requests[0].tools[0]["name"] == "escalate_to_human"


async def test_rate_limit_is_retried(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue(rate_limited(), text("Done"))

    message = await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert message.content[0].type == "text"
    assert message.content[0].text == "Done"
    assert len(await fake.wait_for_requests(2)) == 2


async def test_overloaded_raises(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue(overloaded())

    with pytest.raises(anthropic.OverloadedError):
        await client.with_options(max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=HELLO
        )


async def test_spend_limit_raises_its_own_class(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue(spend_limited())

    with pytest.raises(anthropic.EnforcedSpendLimitReachedError) as caught:
        await client.with_options(max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=HELLO
        )

    assert caught.value.status_code == 429
    assert "retry-after" not in caught.value.response.headers


async def test_stream_error_is_a_200_status_error(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue(stream_error(partial_text="Let me check"))
    chunks: list[str] = []

    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
            chunks.extend([chunk async for chunk in stream.text_stream])

    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"
    assert not isinstance(caught.value, anthropic.OverloadedError)
    assert len(fake.requests) == 1  # not retried


async def test_stream_error_without_streaming_is_a_529(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue(stream_error())

    with pytest.raises(anthropic.OverloadedError):
        await client.with_options(max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=HELLO
        )


async def test_hang_times_out(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue(hang())

    with pytest.raises(anthropic.APITimeoutError):
        await client.with_options(max_retries=0, timeout=0.3).messages.create(
            model=MODEL, max_tokens=10, messages=HELLO
        )


async def test_drop_is_a_connection_error(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue(drop())

    with pytest.raises(anthropic.APIConnectionError) as caught:
        await client.with_options(max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=HELLO
        )

    assert not isinstance(caught.value, anthropic.APITimeoutError)


async def test_refusal_has_stop_details(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "No."}
    fake.queue(text("I can't help with that.", stop_reason="refusal", stop_details=details))

    async with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
        final = await stream.get_final_message()

    assert final.stop_reason == "refusal"
    assert final.stop_details is not None
    assert final.stop_details.category == "cyber"


async def test_count_tokens_varies_with_input(client: anthropic.AsyncAnthropic) -> None:
    short = await client.messages.count_tokens(model=MODEL, messages=HELLO)
    long = await client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Hello " * 100}]
    )

    assert 0 < short.input_tokens < long.input_tokens


async def test_missing_api_key_is_rejected(fake: FakeAnthropic) -> None:
    no_key = anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="x", default_headers={"Authorization": anthropic.Omit()}
    )

    async with no_key:
        with pytest.raises(anthropic.AuthenticationError):
            await no_key.messages.create(model=MODEL, max_tokens=10, messages=HELLO)


async def test_x_api_key_is_accepted(fake: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=fake.base_url,
        api_key="x",
        default_headers={"Authorization": anthropic.Omit(), "x-api-key": "test"},
    )

    async with client:
        await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)

    assert fake.requests[0].headers["x-api-key"] == "test"
    assert "authorization" not in fake.requests[0].headers


async def test_unknown_route_is_a_404(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-sonnet-4-6")


async def test_wait_for_requests_times_out() -> None:
    async with FakeAnthropic() as fake:
        with pytest.raises(TimeoutError):
            await fake.wait_for_requests(1, timeout=0.05)


async def test_closing_the_fake_releases_a_hung_request() -> None:
    async with (
        FakeAnthropic() as fake,
        anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test", max_retries=0) as client,
    ):
        fake.queue(hang())
        call = asyncio.create_task(
            client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
        )
        await fake.wait_for_requests(1)

        async with asyncio.timeout(0.5):
            await fake.close()
            with pytest.raises(anthropic.APIConnectionError):
                await call
