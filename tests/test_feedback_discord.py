"""👍 / 👎 under answers on Discord: FakeDiscord's gateway (INTERACTION_CREATE, component and
modal-submit interactions) → discord.py → DiscordBot → the real engine, desk and database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bots.app import Runtime
from bots.discord.feedback import WHY_FIELD, WhyModal
from core.config import FeedbackTexts, Settings
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.discord_api import EPHEMERAL, FakeDiscord, custom_ids
from tests.harness import DiscordSide, open_bot
from tests.test_feedback_slack import ratings

WITHIN = 5.0


@pytest.fixture
async def bot(runtime: Runtime) -> AsyncIterator[DiscordSide]:
    async with open_bot("discord", runtime=runtime) as opened:
        assert isinstance(opened, DiscordSide)
        yield opened


@pytest.fixture
def texts(settings: Settings) -> FeedbackTexts:
    assert settings.persona is not None
    return settings.persona.feedback


async def click(bot: DiscordSide, message_id: int, custom_id: str, *, staff: bool = False) -> int:
    """Press ``custom_id`` on ``message_id``; returns once the press has been answered and
    what it set off has run."""
    fake = bot.fake
    by, roles = (fake.staff, [fake.world.support_role_id]) if staff else (fake.customer, [])
    interaction = await fake.click(message_id, custom_id, by=by, roles=roles)
    await fake.wait_for(lambda: bool(fake.answered(interaction)), within=WITHIN)
    await bot.adapter.drain()
    return interaction


def said(fake: FakeDiscord, interaction: int) -> tuple[str, bool]:
    """What answered the press, and whether only the presser saw it."""
    [answered] = fake.answered(interaction)
    return answered.data.get("content") or "", answered.ephemeral


async def test_pressing_twice_keeps_one_row_with_the_last_rating(
    bot: DiscordSide, fake_claude: FakeAnthropic, database_url: str, texts: FeedbackTexts
) -> None:
    fake = bot.fake
    fake_claude.queue(text("Returns are free within 30 days."))
    answer = await bot.say("Can I return a rug?", where="dm")
    assert answer is not None and answer.buttons == ("talk", "up", "down")
    up, down = custom_ids(fake.messages[answer.ref])[1:]
    answer_id = int(up.rsplit(":", 1)[1])

    thanked = await click(bot, answer.ref, up)
    assert said(fake, thanked) == (texts.thanks, True)
    sorry = await click(bot, answer.ref, down)
    assert said(fake, sorry) == (texts.sorry, True)
    customer = str(fake.world.customer_id)
    assert await ratings(database_url) == [(answer_id, customer, "down", None)]

    # The 👎's private note offers a person and the form; someone else's press is refused.
    await click(bot, answer.ref, up)
    assert await ratings(database_url) == [(answer_id, customer, "up", None)]
    assert said(fake, await click(bot, answer.ref, down, staff=True)) == (texts.not_yours, True)
    assert await ratings(database_url) == [(answer_id, customer, "up", None)]


async def test_thumbs_down_offers_a_person_and_a_form_whose_comment_is_stored(
    bot: DiscordSide,
    fake_claude: FakeAnthropic,
    database_url: str,
    texts: FeedbackTexts,
    settings: Settings,
) -> None:
    fake = bot.fake
    fake_claude.queue(text("Returns are free within 30 days."))
    answer = await bot.say("Can I return a rug?", where="dm")
    assert answer is not None
    down = custom_ids(fake.messages[answer.ref])[2]
    answer_id = int(down.rsplit(":", 1)[1])
    await click(bot, answer.ref, down)
    [offer] = [m for m in fake.messages.values() if m.get("flags") == EPHEMERAL]
    assert custom_ids(offer) == ["supportbot:talk", f"supportbot:fb:why:{answer_id}"]

    # "What was wrong?" answers with the form itself, then its one line is stored.
    opened = await click(bot, int(offer["id"]), f"supportbot:fb:why:{answer_id}")
    [answered] = fake.answered(opened)
    assert answered.type == 9 and answered.data["custom_id"] == f"supportbot:fb:modal:{answer_id}"
    sent = await fake.submit_modal(opened, {WHY_FIELD: "Wrong colour of rug"})
    await fake.wait_for(lambda: bool(fake.answered(sent)), within=WITHIN)
    assert said(fake, sent) == (texts.thanks, True)
    customer = str(fake.world.customer_id)
    assert await ratings(database_url) == [(answer_id, customer, "down", "Wrong colour of rug")]

    # "Talk to a person" is the "Talk to a human" button: the hand-off and the staff notice.
    await click(bot, int(offer["id"]), "supportbot:talk")
    assert settings.persona is not None
    assert bot.conversation(where="dm")[-1].says(settings.persona.handoff)
    assert (await bot.staff_notice(where="dm")).says("The customer asked for a person")


async def test_the_fake_refuses_a_modal_discord_would_refuse(
    bot: DiscordSide, fake_claude: FakeAnthropic
) -> None:
    fake = bot.fake
    fake_claude.queue(text("Returns are free within 30 days."))
    answer = await bot.say("Can I return a rug?", where="dm")
    assert answer is not None
    # A button nothing handles, so the interaction is left for the test to answer.
    unhandled = {"type": 2, "style": 2, "label": "x", "custom_id": "test:unhandled"}
    fake.messages[answer.ref]["components"].append({"type": 1, "components": [unhandled]})
    interaction = await fake.click(answer.ref, "test:unhandled")

    modal = WhyModal(1, handler=None).to_dict()  # type: ignore[arg-type]
    assert (
        await callback(fake, interaction, {"type": 9, "data": {**modal, "title": "x" * 46}}) == 400
    )
    assert await callback(fake, interaction, {"type": 9, "data": modal}) == 200
    assert await callback(fake, interaction, {"type": 6}) == 400, "an interaction is answered once"
    submitted = await fake.submit_modal(interaction, {WHY_FIELD: "late"})
    assert await callback(fake, submitted, {"type": 9, "data": modal}) == 400, "no modal on a modal"


async def callback(fake: FakeDiscord, interaction: int, body: dict[str, object]) -> int:
    """Answer ``interaction`` as a client would (the token is its only credential)."""
    token = f"interaction-token-{interaction}"
    url = f"{fake.base_url}/api/v10/interactions/{interaction}/{token}/callback"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status
