"""A spike of customers queues for Claude instead of tripping its rate limit."""

from __future__ import annotations

import asyncio

from core.claude import ClaudeClient
from core.config import ClaudeSettings
from tests.fakes.anthropic_api import FakeAnthropic, held, text


async def test_calls_beyond_the_cap_wait_for_a_slot(fake_claude: FakeAnthropic) -> None:
    release = asyncio.Event()
    fake_claude.queue(*(held(text(f"Answer {n}"), release) for n in range(3)))
    client = ClaudeClient(
        settings=ClaudeSettings(
            _env_file=None, api_key="test-key", base_url=fake_claude.base_url, max_concurrency=2
        )
    )
    question = [{"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]}]
    try:
        calls = [
            asyncio.create_task(client.respond(system=[], messages=question, tools=[]))
            for _ in range(3)
        ]
        # All three started before the first two reached the API (that takes round trips), so
        # by now the third is waiting for a slot in the client, not at the API.
        await fake_claude.wait_for_requests(2)
        assert client.queued == 1 and len(fake_claude.requests) == 2

        release.set()
        answers = await asyncio.gather(*calls)
    finally:
        await client.aclose()

    assert len(fake_claude.requests) == 3 and client.queued == 0
    assert sorted(a.content[0]["text"] for a in answers) == ["Answer 0", "Answer 1", "Answer 2"]
