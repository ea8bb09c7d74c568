"""The shared support workflow (bots/common) over a recording platform and the real engine.

``RecordingPlatform`` is the port's fake: it records what the workflow asked it to post, so
these tests pin the rules every platform inherits without any platform's SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from bots.common import AnswerStream, Inbound, Press, StaffReply, Workflow
from bots.common.platform import Found, NotStreamed
from bots.common.workflow import CLOSED, ONLY_STAFF
from core.config import DEMO_PERSONA, Persona
from core.desk import REPING_RETRY, Desk
from core.engine import Engine, Limits
from core.escalation import Action, State
from core.types import ConversationKey, EscalationView, IncomingMessage, Relayed, Reply, StaffPost
from storage.memory import MemoryStore
from tests.engine_helpers import message

THREAD = ConversationKey("test", "T1", "C1", "1700000000.000100")
DM = ConversationKey("test", "T1", "D1", "-")
STAFF_ID = "U-staff"
NOW = datetime(2026, 12, 2, 12, 0)
NOTICE = StaffPost("C-staff", "notice")
LIMITS = Limits(token_budget=12000, idle_timeout=timedelta(hours=24), max_input_chars=8000)


def limited_engine(store: MemoryStore, clock: list[datetime]) -> Engine:
    """A limited-mode engine (no Claude, so the knowledge base decides every answer)."""
    persona = Persona.load(DEMO_PERSONA).model_copy(update={"support_hours": None})
    return Engine(store=store, llm=None, persona=persona, limits=LIMITS, clock=lambda: clock[0])


@dataclass
class RecordingPlatform:
    """Records every post; ``fail_relays`` makes relays into DMs fail."""

    name: str = "test"
    staff: set[str] = field(default_factory=lambda: {STAFF_ID})
    fail_relays: bool = False
    fail_repings: bool = False
    has_staff_channel: bool = True
    fail_replies: int = 0
    """How many reply posts fail (each still lands when ``made``: an unknown outcome)."""
    made: bool = False
    shown: list[str] = field(default_factory=list)
    """Replies the customer can see, as the platform lists them."""
    looked: int = 0
    replies: list[tuple[ConversationKey, str, bool, bool]] = field(default_factory=list)
    notices: list[tuple[int, bool]] = field(default_factory=list)
    updates: list[tuple[int, str]] = field(default_factory=list)
    repings: list[int] = field(default_factory=list)
    to_staff: list[tuple[StaffPost, str]] = field(default_factory=list)
    to_customer: list[Relayed] = field(default_factory=list)
    told: list[tuple[str, str]] = field(default_factory=list)
    working_on: list[str] = field(default_factory=list)

    def is_direct(self, key: ConversationKey) -> bool:
        return key.channel_id.startswith("D")

    async def is_staff(self, user_id: str, context: Any) -> bool:
        return user_id in self.staff

    def person(self, user_id: str) -> str:
        return f"@{user_id}"

    async def staff_name(self, user_id: str, context: Any) -> str:
        return f"Name of {user_id}"

    async def prepare(self, inbound: Inbound) -> None:
        return None

    @asynccontextmanager
    async def working(self, inbound: Inbound) -> AsyncIterator[None]:
        self.working_on.append(inbound.message.message_id)
        yield

    def answer_stream(self, inbound: Inbound) -> AnswerStream:
        return NotStreamed()

    async def post_reply(
        self,
        inbound: Inbound,
        reply: Reply,
        *,
        ping: bool,
        offer_person: bool,
        shown: int = 0,
    ) -> bool:
        self.replies.append((inbound.message.key, reply.text, ping, offer_person))
        if self.fail_replies:
            self.fail_replies -= 1
            if self.made:
                self.shown.append(reply.text)
            return False
        self.shown.append(reply.text)
        return True

    async def clear_leftovers(self, inbound: Inbound) -> None:
        return None  # this platform never streams

    async def posted_reply(self, inbound: Inbound, text: str, *, late: bool) -> Found | None:
        self.looked += 1
        return Found(f"m-{self.shown.index(text)}") if text in self.shown else None

    async def post_notice(self, view: EscalationView, *, ping: bool) -> StaffPost | None:
        self.notices.append((view.id, ping))
        if not self.has_staff_channel:
            return None
        return StaffPost("C-staff", f"notice-{view.id}")

    async def posted_notice(self, view: EscalationView) -> StaffPost | None:
        return None  # this platform's notices either get through or fail outright

    async def posted_reping(self, view: EscalationView) -> bool:
        return False  # as its re-pings

    async def update_notice(self, view: EscalationView, post: StaffPost) -> bool:
        self.updates.append((view.id, str(view.state)))
        return True

    async def post_reping(self, view: EscalationView, *, now: datetime) -> bool:
        self.repings.append(view.id)
        return not self.fail_repings

    async def relay_to_staff(self, post: StaffPost, message: IncomingMessage) -> bool:
        self.to_staff.append((post, message.text))
        return True

    async def relay_to_customer(self, relayed: Relayed) -> bool:
        self.to_customer.append(relayed)
        return not self.fail_relays

    async def tell_staff(self, post: StaffPost, user_id: str, text: str, context: Any) -> None:
        self.told.append((user_id, text))


@dataclass
class Kit:
    platform: RecordingPlatform
    workflow: Workflow
    desk: Desk
    clock: list[datetime]

    async def say(self, text: str, *, key: ConversationKey = THREAD, **fields: Any) -> None:
        inbound_fields = {k: fields.pop(k) for k in ("follow_up", "addressed") if k in fields}
        incoming = replace(message(text, key=key, direct=key == DM), **fields)
        await self.workflow.customer_turn(Inbound(incoming, **inbound_fields))

    async def escalate(self, key: ConversationKey = THREAD) -> EscalationView:
        await self.say("I want to talk to a human", key=key)
        [view] = await self.desk.live()
        return view


@pytest.fixture
async def kit() -> AsyncIterator[Kit]:
    """The workflow over a limited-mode engine and the in-memory store: its rules need no
    database."""
    store = MemoryStore()
    clock = [NOW]
    engine = limited_engine(store, clock)
    desk = Desk(store=store, clock=lambda: clock[0])
    platform = RecordingPlatform()
    workflow = Workflow(platform=platform, port=engine, desk=desk, clock=lambda: clock[0])
    yield Kit(platform, workflow, desk, clock)
    await workflow.close(grace=1)


async def test_an_answer_offers_a_person_and_shows_the_bot_working(kit: Kit) -> None:
    await kit.say("How long does a refund take?")

    [(key, said, ping, offer)] = kit.platform.replies
    assert key == THREAD and "5–7 business days" in said
    assert (ping, offer) == (False, True)
    assert len(kit.platform.working_on) == 1


async def test_a_follow_up_is_answered_only_where_the_bot_has_a_conversation(kit: Kit) -> None:
    elsewhere = replace(THREAD, thread_id="1700000000.999")
    await kit.say("How long does a refund take?", key=elsewhere, follow_up=True)
    assert kit.platform.replies == []

    await kit.say("How long does a refund take?")
    await kit.say("And shipping?", follow_up=True)
    assert len(kit.platform.replies) == 2


async def test_a_thread_escalation_pings_in_the_thread_and_the_notice_does_not(kit: Kit) -> None:
    view = await kit.escalate()

    [(_, _, ping, offer)] = kit.platform.replies
    assert ping and not offer
    assert kit.platform.notices == [(view.id, False)]
    stored = await kit.desk.get(view.id)
    assert stored is not None and stored.staff == StaffPost("C-staff", f"notice-{view.id}")


async def test_a_dm_escalation_pings_in_the_notice(kit: Kit) -> None:
    view = await kit.escalate(DM)

    [(_, _, ping, _)] = kit.platform.replies
    assert not ping
    assert kit.platform.notices == [(view.id, True)]


async def test_a_second_trigger_redraws_the_notice_without_a_ping(kit: Kit) -> None:
    view = await kit.escalate()
    await kit.say("Please, a person!")

    assert [ping for _, _, ping, _ in kit.platform.replies] == [True, False]
    assert kit.platform.notices == [(view.id, False)]
    assert kit.platform.updates == [(view.id, "open")]


async def test_staff_are_answered_only_when_they_address_the_bot(kit: Kit) -> None:
    await kit.say("How long does a refund take?", author_id=STAFF_ID)
    assert len(kit.platform.replies) == 1

    view = await kit.escalate()
    await kit.say("I'll take it from here.", author_id=STAFF_ID, addressed=False)
    await kit.say("Thanks! Is it on its way?")

    # The staff post took the conversation over: neither it nor the next message got a reply.
    assert len(kit.platform.replies) == 2
    stored = await kit.desk.get(view.id)
    assert stored is not None and stored.state == State.OPEN


async def test_a_claimed_escalation_is_not_repinged(kit: Kit) -> None:
    view = await kit.escalate()
    await kit.workflow.staff_press(Press(Action.CLAIM, view.id, STAFF_ID, NOTICE))
    await kit.workflow.reping(view)  # fell due before the claim: the re-read sees it

    assert kit.platform.repings == []
    assert kit.platform.updates == [(view.id, "claimed")]


async def test_an_unclaimed_escalation_is_repinged(kit: Kit) -> None:
    view = await kit.escalate()
    await kit.workflow.reping(view)

    assert kit.platform.repings == [view.id]


async def test_a_reping_whose_post_fails_is_tried_again_a_minute_later(kit: Kit) -> None:
    view = await kit.escalate()
    kit.clock[0] = NOW + timedelta(minutes=10)
    [due] = await kit.desk.due_repings({"test"})
    kit.platform.fail_repings = True
    await kit.workflow.reping(due)

    not_yet = await kit.desk.due_repings({"test"})
    kit.clock[0] += REPING_RETRY
    [again] = await kit.desk.due_repings({"test"})
    kit.platform.fail_repings = False
    await kit.workflow.reping(again)
    kit.clock[0] += REPING_RETRY

    assert not_yet == []
    assert again.id == view.id
    assert kit.platform.repings == [view.id, view.id]
    assert await kit.desk.due_repings({"test"}) == [], "posted: not again"


async def test_only_staff_can_press_and_a_late_press_is_told_who_was_first(kit: Kit) -> None:
    view = await kit.escalate()
    post = StaffPost("C-staff", f"notice-{view.id}")
    kit.platform.staff.add("U-other")

    await kit.workflow.staff_press(Press(Action.CLAIM, view.id, "U-customer", post))
    await kit.workflow.staff_press(Press(Action.CLAIM, view.id, STAFF_ID, post))
    await kit.workflow.staff_press(Press(Action.CLAIM, view.id, "U-other", post))

    assert kit.platform.told == [
        ("U-customer", ONLY_STAFF),
        ("U-other", f"@{STAFF_ID} has already claimed this escalation."),
    ]
    stored = await kit.desk.get(view.id)
    assert stored is not None and stored.state == State.CLAIMED


async def test_dm_relay_both_ways_then_closed_and_kept_when_not_delivered(kit: Kit) -> None:
    view = await kit.escalate(DM)
    post = StaffPost("C-staff", f"notice-{view.id}")

    await kit.say("My order number is 1234", key=DM)
    assert kit.platform.to_staff == [(post, "My order number is 1234")]

    await kit.workflow.staff_thread_turn(StaffReply(post, STAFF_ID, "", "On it!", "s1"))
    [relayed] = kit.platform.to_customer
    assert relayed.key == DM and relayed.text == "On it!"
    assert relayed.staff_name == f"Name of {STAFF_ID}"

    kit.platform.fail_relays = True
    await kit.workflow.staff_thread_turn(StaffReply(post, STAFF_ID, "Ann", "Still there?", "s2"))
    await kit.workflow.staff_press(Press(Action.RESOLVE, view.id, STAFF_ID, post))
    await kit.workflow.staff_thread_turn(StaffReply(post, STAFF_ID, "Ann", "Bye!", "s3"))

    # The failed reply waits in the staff outbox (tests/test_staff_outbox.py): staff are told
    # only if it is given up.
    assert kit.platform.told == [(STAFF_ID, CLOSED)]
    assert len(kit.platform.to_customer) == 2
    [waiting] = await kit.desk.waiting({"test"})
    assert (waiting.kind, waiting.text, waiting.author_id) == ("reply", "Still there?", STAFF_ID)


async def test_one_conversation_is_handled_in_arrival_order(kit: Kit) -> None:
    first = kit.workflow.customer(Inbound(message("How long does a refund take?", key=THREAD)))
    second = kit.workflow.customer(Inbound(message("What about shipping?", key=THREAD)))
    assert first is not None and second is not None
    await kit.workflow.drain()

    said = [text for _, text, _, _ in kit.platform.replies]
    assert len(said) == 2 and "refund" in said[0].casefold()


async def test_after_close_new_work_is_refused(kit: Kit) -> None:
    await kit.workflow.close(grace=1)

    assert kit.workflow.customer(Inbound(message("Hello?"))) is None
    await kit.workflow.drain()
    assert kit.platform.replies == []


class Unsure:
    """The engine as the port, except that the store cannot say whether a conversation exists
    (the database is down)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def is_active(self, key: ConversationKey) -> bool:
        raise ConnectionError("the database is down")


async def test_when_the_store_cannot_say_an_addressed_message_is_still_answered(
    kit: Kit,
) -> None:
    engine = limited_engine(MemoryStore(), kit.clock)
    workflow = Workflow(platform=kit.platform, port=Unsure(engine), desk=kit.desk)

    await workflow.customer_turn(Inbound(message("How long does a refund take?")))
    await workflow.customer_turn(Inbound(message("And shipping?"), follow_up=True))

    [(_, said, _, _)] = kit.platform.replies
    assert "5–7 business days" in said  # the follow-up nobody addressed was left alone


class Counting:
    """The engine as the port, counting the times it is asked whether a conversation exists."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.asked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def is_active(self, key: ConversationKey) -> bool:
        self.asked += 1
        return await self._engine.is_active(key)


async def test_an_addressed_message_shows_the_working_sign_without_asking_the_store(
    kit: Kit,
) -> None:
    # In a burst the store queues: the sign must not wait behind it.
    port = Counting(limited_engine(MemoryStore(), kit.clock))
    workflow = Workflow(platform=kit.platform, port=port, desk=kit.desk)

    await workflow.customer_turn(Inbound(message("How long does a refund take?")))
    await workflow.customer_turn(Inbound(message("And shipping?"), follow_up=True))

    assert len(kit.platform.replies) == 2 and len(kit.platform.working_on) == 2
    assert port.asked == 1  # the follow-up nobody addressed asks; the addressed one never does


async def test_without_a_staff_channel_a_notice_is_not_tried_again(kit: Kit) -> None:
    kit.platform.has_staff_channel = False
    view = await kit.escalate()
    kit.clock[0] += timedelta(minutes=10)
    [due] = await kit.desk.due_repings({"test"})
    await kit.workflow.reping(due)  # the first re-ping: the notice again, nowhere to post it
    kit.clock[0] += timedelta(days=1)

    assert kit.platform.notices == [(view.id, False), (view.id, True)]
    assert await kit.desk.due_repings({"test"}) == [], "nothing left to try every minute"


@pytest.mark.parametrize("made", [False, True], ids=["refused", "unknown-outcome"])
async def test_a_reply_whose_post_failed_is_tried_again_and_delivered_once(
    kit: Kit, made: bool
) -> None:
    kit.platform.fail_replies, kit.platform.made = 1, made
    await kit.say("How long does a refund take?")

    [(_, said, _, offer_person)] = kit.platform.replies[:1]
    assert kit.platform.shown == [said], "on the platform once"
    assert kit.platform.looked == 1, "the platform was asked before posting again"
    assert len(kit.platform.replies) == (1 if made else 2)
    assert offer_person, "the retry keeps what the reply had under it"
    assert kit.platform.working_on == [kit.platform.working_on[0]], "one working sign"
