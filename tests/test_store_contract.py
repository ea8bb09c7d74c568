"""One contract, three stores: the same scenarios against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from core.escalation import State
from core.files import Kept
from core.ports import (
    STAFF_LEASE,
    Conversation,
    ConversationStore,
    Finished,
    HandOff,
    Outbound,
    StaffKind,
    StaffOutbound,
    TurnWrites,
    Unanswered,
    new_outbox_id,
)
from core.types import ConversationKey, Kind, StaffPost
from storage.database import create_engine
from storage.repository import take_due_repings
from tests.conftest import migrate
from tests.store_fixtures import KEY, T0, Stores, incoming, store, stores, turn

__all__ = ["store", "stores"]  # the fixtures, imported to be used by name

OTHER = ConversationKey("test", "T1", "C2", "-")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


async def begin(
    store: ConversationStore,
    message_id: str,
    *,
    key: ConversationKey = KEY,
    kind: Kind = Kind.CUSTOMER,
    text: str = "Hello",
    now: datetime = T0,
    idle_after: timedelta | None = None,
    restart: bool = False,
) -> Conversation:
    found = await store.begin_turn(
        incoming(message_id, key=key, text=text),
        turn(kind, text, message_id=message_id),
        now=now,
        idle_after=idle_after,
        restart=restart,
    )
    assert found is not None
    return found


def hand_off(reason: str, *, reping_at: datetime = T0 + 10 * MINUTE) -> HandOff:
    return HandOff(
        reason=reason,
        summary=f"summary of {reason}",
        customer_id="U-customer",
        message_id="m-handoff",
        reping_at=reping_at,
    )


async def escalate(
    store: ConversationStore, key: ConversationKey = KEY, *, now: datetime = T0
) -> int:
    """Open an escalation at ``key``, its re-ping due ten minutes after ``now``."""
    conversation = await begin(store, f"esc-{key.channel_id}-{now}", key=key, now=now)
    finished = await store.finish_turn(
        conversation.id,
        TurnWrites(hand_off=hand_off("Wants a person", reping_at=now + 10 * MINUTE)),
        now=now,
    )
    escalation = finished.escalation
    assert escalation is not None and escalation.id is not None
    return escalation.id


# Deliveries


async def test_a_delivery_is_taken_once_per_platform(store: ConversationStore) -> None:
    await begin(store, "m-1")
    again = await store.begin_turn(
        incoming("m-1"), turn(Kind.CUSTOMER), now=T0, idle_after=None, restart=False
    )
    elsewhere = ConversationKey("other", "T1", "C1", "-")
    assert again is None
    assert await begin(store, "m-1", key=elsewhere) is not None
    assert [t.message_id for t in await store.history(KEY)] == ["m-1"]


async def test_deliveries_older_than_the_retention_are_forgotten(store: ConversationStore) -> None:
    await begin(store, "old", now=T0)
    await begin(store, "new", now=T0 + 2 * DAY)

    assert await store.forget_deliveries(T0 + DAY) == 1
    assert await store.forget_deliveries(T0 + DAY) == 0

    async def again(message_id: str) -> Conversation | None:
        return await store.begin_turn(
            incoming(message_id),
            turn(Kind.CUSTOMER),
            now=T0 + 3 * DAY,
            idle_after=None,
            restart=False,
        )

    assert await again("new") is None  # still within the retention: a duplicate
    assert await again("old") is not None  # forgotten: taken as new


async def test_concurrent_duplicates_from_two_replicas_are_taken_once(stores: Stores) -> None:
    replicas = [stores.store, stores.replica()]
    found = await asyncio.gather(
        *(
            r.begin_turn(
                incoming("dup"), turn(Kind.CUSTOMER), now=T0, idle_after=None, restart=False
            )
            for r in replicas * 3
        )
    )
    assert sum(f is not None for f in found) == 1
    assert len(await stores.store.history(KEY)) == 1


# Conversations: new, kept, idle, restart


async def test_turns_land_in_one_open_conversation_until_it_idles(store: ConversationStore) -> None:
    first = await begin(store, "m-1", idle_after=HOUR)
    second = await begin(store, "m-2", now=T0 + 50 * MINUTE, idle_after=HOUR)
    # Fifty minutes after the last turn is not idle, though T0 is over an hour ago.
    third = await begin(store, "m-3", now=T0 + 100 * MINUTE, idle_after=HOUR)
    later = await begin(store, "m-4", now=T0 + 4 * HOUR, idle_after=HOUR)

    assert first.fresh and not second.fresh and not third.fresh
    assert first.id == second.id == third.id
    assert later.fresh and later.id != first.id
    assert [t.message_id for t in later.window] == ["m-4"]
    assert [t.message_id for t in await store.history(KEY)] == ["m-4"]
    assert await store.is_active(KEY) and not await store.is_active(OTHER)


async def test_without_an_idle_limit_a_conversation_never_idles(store: ConversationStore) -> None:
    first = await begin(store, "m-1")
    later = await begin(store, "m-2", now=T0 + 1000 * HOUR)
    assert not later.fresh and later.id == first.id


async def test_restart_opens_a_fresh_conversation_and_keeps_the_phrase_out_of_the_window(
    store: ConversationStore,
) -> None:
    old = await begin(store, "m-1")
    fresh = await begin(store, "m-2", text="start over", restart=True)
    assert fresh.fresh and fresh.id != old.id
    assert fresh.window == ()
    [stored] = await store.history(KEY)
    assert stored.kind == Kind.RESTART and stored.text == "start over"


async def test_a_live_escalation_keeps_its_conversation_through_restart_and_idling(
    store: ConversationStore,
) -> None:
    escalation_id = await escalate(store)
    kept = await begin(store, "m-2", text="start over", restart=True, idle_after=HOUR)
    idle = await begin(store, "m-3", now=T0 + 48 * HOUR, idle_after=HOUR)

    assert not kept.fresh and not idle.fresh and kept.id == idle.id
    assert kept.escalation is not None and kept.escalation.id == escalation_id
    # Kept, "start over" is what the customer said, and Claude sees it.
    assert [(t.kind, t.text) for t in idle.window][-2:] == [
        (Kind.CUSTOMER, "start over"),
        (Kind.CUSTOMER, "Hello"),
    ]


# The window


async def test_the_window_holds_what_claude_sees_from_its_start(store: ConversationStore) -> None:
    first = await begin(store, "m-1", text="first question")
    await store.finish_turn(
        first.id,
        TurnWrites(turns=(turn(Kind.MODEL, "first answer"), turn(Kind.NOTICE, "a notice"))),
        now=T0,
    )
    second = await begin(store, "m-2", text="second question")
    assert [t.text for t in second.window] == ["first question", "first answer", "second question"]
    assert [t.seq for t in second.window] == [0, 1, 3]

    await store.finish_turn(
        second.id,
        TurnWrites(turns=(turn(Kind.TOOL_RESULT, "result"),), window_start=3, topic="orders"),
        now=T0,
    )
    assert await store.staff_turn(KEY, turn(Kind.STAFF, "Dana: hi", message_id="s-1"), now=T0)
    await begin(store, "m-3", kind=Kind.TOO_LONG, text="x" * 50)
    third = await begin(store, "m-4", text="third question")
    assert [t.kind for t in third.window] == [
        Kind.CUSTOMER,
        Kind.TOOL_RESULT,
        Kind.STAFF,
        Kind.CUSTOMER,
    ]
    assert third.window_start == 3 and third.topic == "orders"
    assert [t.kind for t in await store.history(KEY)] == [
        Kind.CUSTOMER,
        Kind.MODEL,
        Kind.NOTICE,
        Kind.CUSTOMER,
        Kind.TOOL_RESULT,
        Kind.STAFF,
        Kind.TOO_LONG,
        Kind.CUSTOMER,
    ]


async def test_each_replica_sees_what_the_others_wrote_in_the_window(stores: Stores) -> None:
    # A store may keep windows in memory: turns, refusals and window moves written through
    # another replica must still show in the next turn's window, as a newcomer reads it.
    a, b = stores.store, stores.replica()
    first = await begin(a, "m-1", text="first")
    await a.finish_turn(first.id, TurnWrites(turns=(turn(Kind.MODEL, "answer a"),)), now=T0)
    second = await begin(b, "m-2", text="second")
    await b.finish_turn(second.id, TurnWrites(turns=(turn(Kind.MODEL, "answer b"),)), now=T0)
    third = await begin(a, "m-3", text="third")
    assert [t.text for t in third.window] == ["first", "answer a", "second", "answer b", "third"]

    await b.finish_turn(third.id, TurnWrites(refused=(third.window[-1].seq,)), now=T0)
    fourth = await begin(a, "m-4", text="fourth")
    assert [t.text for t in fourth.window][-2:] == ["answer b", "fourth"]

    await b.finish_turn(fourth.id, TurnWrites(window_start=fourth.window[-1].seq), now=T0)
    assert await b.staff_turn(KEY, turn(Kind.STAFF, "Dana: on it", message_id="s-1"), now=T0)
    fifth = await begin(a, "m-5", text="fifth")
    newcomer = await begin(stores.replica(), "m-6", text="sixth")
    assert [t.text for t in fifth.window] == ["fourth", "Dana: on it", "fifth"]
    assert [t.text for t in newcomer.window] == ["fourth", "Dana: on it", "fifth", "sixth"]


async def test_finishing_with_nothing_to_write_changes_nothing(store: ConversationStore) -> None:
    first = await begin(store, "m-1")
    # Were the empty finish to touch the conversation, it would not have idled an hour later.
    assert await store.finish_turn(first.id, TurnWrites(), now=T0 + 50 * MINUTE) == Finished()
    later = await begin(store, "m-2", now=T0 + 70 * MINUTE, idle_after=HOUR)
    assert later.fresh


async def test_conversation_fields_change_only_when_given(store: ConversationStore) -> None:
    first = await begin(store, "m-1")
    await store.finish_turn(
        first.id, TurnWrites(topic="returns", window_start=0, dont_know_streak=1), now=T0
    )
    await store.finish_turn(first.id, TurnWrites(turns=(turn(Kind.MODEL, "ok"),)), now=T0)
    second = await begin(store, "m-2")
    assert (second.topic, second.window_start, second.dont_know_streak) == ("returns", 0, 1)


# Escalations


async def test_a_live_escalation_belongs_to_its_conversation_only(
    store: ConversationStore,
) -> None:
    await escalate(store)
    elsewhere = await begin(store, "m-other", key=OTHER)
    here = await begin(store, "m-here")
    assert elsewhere.escalation is None
    assert here.escalation is not None and here.escalation.key == KEY


async def test_one_live_escalation_per_conversation(store: ConversationStore) -> None:
    conversation = await begin(store, "m-1")
    first = (
        await store.finish_turn(
            conversation.id,
            TurnWrites(turns=(turn(Kind.NOTICE, "handing off"),), hand_off=hand_off("Billing")),
            now=T0,
        )
    ).escalation
    second = (
        await store.finish_turn(
            conversation.id, TurnWrites(hand_off=hand_off("Claude unavailable")), now=T0
        )
    ).escalation
    assert first is not None and first.new and first.id is not None
    assert second is not None and not second.new and second.id == first.id
    [live] = await store.live_escalations()
    assert live.id == first.id and live.state == State.OPEN and live.live
    assert live.reason == "Billing; Claude unavailable"
    assert live.summary == "summary of Claude unavailable"
    assert live.customer_message_id == "m-handoff" and live.key == KEY
    assert (await store.history(KEY))[-1].text == "handing off"

    closed = await store.transition(
        first.id, expected=State.OPEN, to=State.RESOLVED, staff_id="U-dana", now=T0
    )
    assert closed is not None and not closed.live
    again = (
        await store.finish_turn(conversation.id, TurnWrites(hand_off=hand_off("Again")), now=T0)
    ).escalation
    assert again is not None and again.new and again.id != first.id


async def test_two_replicas_handing_off_at_once_open_one_escalation(stores: Stores) -> None:
    conversation = await begin(stores.store, "m-1")
    replicas = [stores.store, stores.replica()]
    finished = await asyncio.gather(
        *(
            r.finish_turn(conversation.id, TurnWrites(hand_off=hand_off(f"r{i}")), now=T0)
            for i, r in enumerate(replicas * 2)
        )
    )
    made = [f.escalation for f in finished]
    assert sum(e is not None and e.new for e in made) == 1
    assert len({e.id for e in made if e is not None}) == 1
    assert len(await stores.store.live_escalations()) == 1


async def test_transitions_move_only_from_the_expected_state(store: ConversationStore) -> None:
    escalation_id = await escalate(store)
    refused = await store.transition(
        escalation_id, expected=State.CLAIMED, to=State.RESOLVED, staff_id="U-sam", now=T0
    )
    claimed = await store.transition(
        escalation_id, expected=State.OPEN, to=State.CLAIMED, staff_id="U-dana", now=T0 + HOUR
    )
    late = await store.transition(
        escalation_id, expected=State.OPEN, to=State.CLAIMED, staff_id="U-sam", now=T0 + HOUR
    )

    assert refused is None and late is None
    assert claimed is not None and claimed.state == State.CLAIMED
    assert claimed.claimed_by == "U-dana" and claimed.closed_by is None
    assert claimed.updated_at == T0 + HOUR
    assert await store.escalation(escalation_id) == claimed
    assert (
        await store.transition(
            999_999, expected=State.OPEN, to=State.CLAIMED, staff_id="U-dana", now=T0
        )
        is None
    )


async def test_concurrent_transitions_from_one_state_move_it_once(stores: Stores) -> None:
    escalation_id = await escalate(stores.store)
    replicas = [stores.store, stores.replica()]
    moved = await asyncio.gather(
        *(
            r.transition(escalation_id, expected=State.OPEN, to=to, staff_id=f"U-{i}", now=T0)
            for i, (r, to) in enumerate(
                zip(replicas * 2, [State.CLAIMED, State.RESOLVED] * 2, strict=True)
            )
        )
    )
    winners = [m for m in moved if m is not None]
    assert len(winners) == 1
    assert await stores.store.escalation(escalation_id) == winners[0]


async def test_closing_hands_the_conversation_back(store: ConversationStore) -> None:
    escalation_id = await escalate(store)
    conversation = await begin(store, "m-2")
    await store.finish_turn(conversation.id, TurnWrites(dont_know_streak=1), now=T0)
    assert await store.staff_turn(KEY, turn(Kind.STAFF, "On it", message_id="s-1"), now=T0)
    taken = await begin(store, "m-3")
    assert taken.human_active and taken.dont_know_streak == 1

    handed = await store.transition(
        escalation_id, expected=State.OPEN, to=State.HANDED_BACK, staff_id="U-dana", now=T0
    )
    back = await begin(store, "m-4")
    assert handed is not None and handed.closed_by == "U-dana" and handed.claimed_by is None
    assert not back.human_active and back.dont_know_streak == 0 and back.escalation is None
    assert await store.live_escalations() == []


async def test_staff_posts_take_over_only_a_live_escalation(store: ConversationStore) -> None:
    await begin(store, "m-1")
    assert await store.staff_turn(KEY, turn(Kind.STAFF, "FYI", message_id="s-1"), now=T0)
    assert not (await begin(store, "m-2")).human_active

    assert not await store.staff_turn(KEY, turn(Kind.STAFF, "dup", message_id="s-1"), now=T0)
    assert not await store.staff_turn(OTHER, turn(Kind.STAFF, "x", message_id="s-2"), now=T0)
    assert [t.text for t in await store.history(KEY)].count("FYI") == 1


async def test_a_staff_post_cancels_the_reping(store: ConversationStore) -> None:
    escalation_id = await escalate(store)
    other_id = await escalate(store, OTHER)
    assert await store.staff_turn(KEY, turn(Kind.STAFF, "Here", message_id="s-1"), now=T0)
    due = await store.due_repings(T0 + HOUR, platforms={"test"})
    assert [v.id for v in due] == [other_id]
    assert (await store.escalation(escalation_id)).state == State.OPEN  # type: ignore[union-attr]


async def test_due_repings_are_taken_once_for_their_platforms(stores: Stores) -> None:
    store = stores.store
    unclaimed = await escalate(store)
    claimed = await escalate(store, OTHER)
    await store.transition(
        claimed, expected=State.OPEN, to=State.CLAIMED, staff_id="U-dana", now=T0
    )
    assert await store.due_repings(T0 + 9 * MINUTE, platforms={"test"}) == []
    assert await store.due_repings(T0 + HOUR, platforms={"slack"}) == []

    replicas = [store, stores.replica()]
    taken = await asyncio.gather(
        *(r.due_repings(T0 + HOUR, platforms={"test", "slack"}) for r in replicas * 2)
    )
    assert sorted(v.id for views in taken for v in views) == [unclaimed]
    assert await store.due_repings(T0 + 2 * HOUR, platforms={"test"}) == []


async def test_live_escalations_oldest_first_and_staff_posts(store: ConversationStore) -> None:
    later = await escalate(store, OTHER, now=T0 + HOUR)
    earlier = await escalate(store)
    post = StaffPost("C-staff", "1700000001.000200")
    await store.attach_staff_post(earlier, post)

    assert [v.id for v in await store.live_escalations()] == [earlier, later]
    found = await store.escalation_at(post)
    assert found is not None and found.id == earlier and found.staff == post
    assert await store.escalation_at(StaffPost("C-staff", "nope")) is None
    assert await store.escalation(999_999) is None


async def test_history_is_the_newest_conversation_with_everything_in_it(
    store: ConversationStore,
) -> None:
    assert await store.history(KEY) == []
    await begin(store, "m-1", text="old")
    conversation = await begin(store, "m-2", text="start over", restart=True)
    await store.finish_turn(
        conversation.id, TurnWrites(turns=(turn(Kind.NOTICE, "Starting fresh"),)), now=T0
    )
    stored = await store.history(KEY)
    assert [(t.seq, t.kind, t.text) for t in stored] == [
        (0, Kind.RESTART, "start over"),
        (1, Kind.NOTICE, "Starting fresh"),
    ]


def test_the_reping_watcher_walks_its_index_not_every_conversation(tmp_path: Path) -> None:
    """At 400k conversations, scanning them all under the write lock cost 382 ms a tick."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}"
    asyncio.run(migrate(url))
    statement = take_due_repings(T0, {"slack"})
    compiled = str(
        statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )
    with closing(sqlite3.connect(tmp_path / "plan.db")) as database:
        plan = [row[3] for row in database.execute(f"EXPLAIN QUERY PLAN {compiled}")]

    assert any("USING INDEX ix_escalations_reping_at" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_a_refused_turn_is_kept_but_left_out_of_the_window(store: ConversationStore) -> None:
    first = await begin(store, "m-1", text="Something Claude refused")
    [refused] = first.window
    await store.finish_turn(first.id, TurnWrites(refused=(refused.seq,)), now=T0)

    later = await begin(store, "m-2", text="Hello again")

    assert [t.text for t in later.window] == ["Hello again"]
    assert [t.kind for t in await store.history(KEY)] == [Kind.REFUSED, Kind.CUSTOMER]


# Files


async def test_files_are_kept_once_per_conversation_and_found_by_escalation(
    store: ConversationStore,
) -> None:
    photo = Kept("table.jpg", "image/jpeg", b"\xff\xd8\xff pixels", width=4, height=3)
    receipt = Kept("receipt.pdf", "application/pdf", b"%PDF-1.7 pages", pages=1)
    conversation = await begin(store, "m-1")
    await store.keep_files(conversation.id, [photo, receipt], now=T0)
    await store.keep_files(conversation.id, [photo], now=T0)  # sent again, or redelivered
    other = await begin(store, "m-2", key=OTHER)

    found = await store.file_data(conversation.id, {photo.sha256, "unknown", receipt.sha256})
    assert found == {photo.sha256: photo.data, receipt.sha256: receipt.data}
    assert await store.file_data(other.id, {photo.sha256}) == {}, "per conversation"

    escalation_id = await escalate(store)
    assert await store.escalation_files(escalation_id) == [photo, receipt]
    assert await store.escalation_files(await escalate(store, OTHER)) == []


async def test_stripped_files_are_stored_in_place(store: ConversationStore) -> None:
    await begin(store, "m-1", text="look")
    conversation = await begin(store, "m-2", text="and this")
    [first, second] = conversation.window
    placeholder = replace(first, content=[{"type": "text", "text": "[photo: a.jpg]"}], tokens=9)

    await store.strip_files(conversation.id, [placeholder])

    [now_first, now_second] = (await begin(store, "m-3")).window[:2]
    assert (now_first.content, now_first.tokens) == (placeholder.content, 9)
    assert now_second == second


# Turns a dead process left unanswered


async def test_a_customer_turn_nobody_answered_is_found_and_resumed_once(
    store: ConversationStore,
) -> None:
    answered = await begin(store, "a-1", key=OTHER)
    await store.finish_turn(answered.id, TurnWrites(turns=(turn(Kind.MODEL, "Hi!"),)), now=T0)
    await begin(store, "m-1", text="Where is my order?")
    window = (T0 - MINUTE, T0 + MINUTE)

    [found] = await store.unanswered(platforms={"test"}, since=window[0], before=window[1])
    elsewhere = await store.unanswered(platforms={"slack"}, since=window[0], before=window[1])
    too_new = await store.unanswered(platforms={"test"}, since=window[0], before=T0)
    resumed = await store.resume_turn(found.conversation_id)
    assert resumed is not None
    await store.finish_turn(
        resumed.id, TurnWrites(turns=(turn(Kind.MODEL, "On its way."),)), now=T0
    )

    assert (found.key, found.customer_id, found.message_id) == (KEY, "U-customer", "m-1")
    assert (elsewhere, too_new) == ([], [])
    assert [t.text for t in resumed.window] == ["Where is my order?"]
    assert await store.resume_turn(found.conversation_id) is None, "answered meanwhile"
    assert await store.unanswered(platforms={"test"}, since=window[0], before=window[1]) == []


async def test_a_message_people_had_is_not_unanswered_after_they_resolve(
    store: ConversationStore,
) -> None:
    escalation_id = await escalate(store)
    await store.transition(
        escalation_id, expected=State.OPEN, to=State.CLAIMED, staff_id="U-staff", now=T0
    )
    await begin(store, "m-1", text="Thanks, that's all!")
    while_claimed = await store.unanswered(platforms={"test"}, since=T0 - HOUR, before=T0 + HOUR)
    await store.transition(
        escalation_id, expected=State.CLAIMED, to=State.RESOLVED, staff_id="U-staff", now=T0
    )

    assert while_claimed == []
    assert await store.unanswered(platforms={"test"}, since=T0 - HOUR, before=T0 + HOUR) == [], (
        "the person who had it answered that one"
    )


async def test_a_failed_reping_is_scheduled_again_while_the_escalation_is_open(
    store: ConversationStore,
) -> None:
    open_one, claimed = await escalate(store), await escalate(store, OTHER)
    later = T0 + 11 * MINUTE
    assert {v.id for v in await store.due_repings(later, platforms={"test"})} == {
        open_one,
        claimed,
    }
    await store.transition(claimed, expected=State.OPEN, to=State.CLAIMED, staff_id="U1", now=T0)

    await store.reping_at(open_one, later + MINUTE)
    await store.reping_at(claimed, later + MINUTE)

    assert await store.due_repings(later, platforms={"test"}) == []
    [again] = await store.due_repings(later + MINUTE, platforms={"test"})
    assert again.id == open_one


# The outbox


async def test_a_reply_waits_in_the_outbox_until_delivered_then_is_forgotten(
    stores: Stores,
) -> None:
    store = stores.store
    conversation = await begin(store, "m-1")
    answer = turn(Kind.MODEL, "Refunds take a week.")
    sent = Outbound(new_outbox_id(), "Refunds take a week.", reply_to="m-1")
    await store.finish_turn(conversation.id, TurnWrites(turns=(answer,), reply=sent), now=T0)
    other = await begin(store, "m-2", key=OTHER, now=T0 + MINUTE)
    notice = Outbound(new_outbox_id(), "Sorry, a hiccup.", reply_to="m-2")
    await store.finish_turn(other.id, TurnWrites(reply=notice), now=T0 + MINUTE)

    assert await store.undelivered(platforms={"test"}, before=T0) == []
    assert await store.undelivered(platforms={"slack"}, before=T0 + HOUR) == []
    waiting = await stores.replica().undelivered(platforms={"test"}, before=T0 + HOUR)
    assert [(w.id, w.text, w.at) for w in waiting] == [
        (sent.id, sent.text, T0),
        (notice.id, notice.text, T0 + MINUTE),
    ]
    [first, _] = waiting
    assert first.turn == Unanswered(conversation.id, KEY, "U-customer", "m-1", T0)

    await store.delivered({sent.id: "1700000001.000200"}, now=T0 + 2 * MINUTE)
    await stores.replica().delivered({sent.id: "again", "unknown": None}, now=T0 + HOUR)
    assert not await store.is_undelivered(sent.id)
    assert await stores.replica().is_undelivered(notice.id)
    [left] = await store.undelivered(platforms={"test"}, before=T0 + HOUR)
    assert left.id == notice.id

    # Delivered replies go with the retention; one still waiting stays whatever its age.
    await store.forget_deliveries(T0 + DAY)
    assert await store.is_undelivered(notice.id)
    assert [w.id for w in await store.undelivered(platforms={"test"}, before=T0 + DAY)] == [
        notice.id
    ]


async def test_a_replys_age_counts_from_when_it_was_written_not_from_its_turns_start(
    stores: Stores,
) -> None:
    # A turn that began at T0 and took 40 s (a Claude timeout, then the fallback) is not old
    # the moment its reply is written: no watcher redelivers it while the turn posts it.
    store = stores.store
    conversation = await begin(store, "m-1")
    written = T0 + timedelta(seconds=40)
    sent = Outbound(new_outbox_id(), "Sorry, a hiccup.", reply_to="m-1", at=written)
    await store.finish_turn(conversation.id, TurnWrites(reply=sent), now=T0)

    assert await store.undelivered(platforms={"test"}, before=written) == []
    [waiting] = await stores.replica().undelivered(platforms={"test"}, before=T0 + HOUR)
    assert (waiting.id, waiting.at) == (sent.id, written)


async def test_a_turn_that_fails_to_store_leaves_no_reply_in_the_outbox(
    store: ConversationStore,
) -> None:
    sent = Outbound(new_outbox_id(), "Refunds take a week.", reply_to="m-1")
    with pytest.raises(LookupError):
        await store.finish_turn(987654, TurnWrites(reply=sent), now=T0)
    assert not await store.is_undelivered(sent.id)
    assert await store.undelivered(platforms={"test"}, before=T0 + HOUR) == []


# The staff outbox


async def test_a_relay_is_kept_with_its_turn_in_a_dm_whose_escalation_has_a_notice(
    stores: Stores,
) -> None:
    store = stores.store
    escalation = await escalate(store)

    async def say(message_id: str, *, direct: bool = True) -> str | None:
        relay = StaffOutbound(new_outbox_id(), StaffKind.RELAY, "U-customer", "Still there?")
        message = replace(incoming(message_id, text="Still there?"), direct=direct)
        begun = await store.begin_turn(
            message,
            turn(Kind.CUSTOMER, "Still there?", message_id=message_id),
            now=T0,
            idle_after=None,
            restart=False,
            relay=relay,
        )
        assert begun is not None
        return begun.relayed

    assert await say("m-before-the-notice") is None
    await store.attach_staff_post(escalation, StaffPost("C-staff", "n-1"))
    assert await say("m-not-a-dm", direct=False) is None
    relayed = await say("m-dm")
    assert relayed is not None

    [waiting] = await stores.replica().staff_waiting(platforms={"test"})
    assert (waiting.id, waiting.kind, waiting.text, waiting.author_id) == (
        relayed,
        StaffKind.RELAY,
        "Still there?",
        "U-customer",
    )
    assert (waiting.escalation.id, waiting.at, waiting.due, waiting.tries) == (
        escalation,
        T0,
        T0 + STAFF_LEASE,
        0,
    )
    assert await store.staff_waiting(platforms={"slack"}) == []

    # One try at a time, whichever replica: taken by its count of tries.
    assert await store.take_staff(relayed, tries=0, until=T0 + HOUR)
    assert not await stores.replica().take_staff(relayed, tries=0, until=T0 + HOUR)
    await store.staff_retry(relayed, at=T0 + MINUTE)
    [again] = await store.staff_waiting(platforms={"test"})
    assert (again.tries, again.due) == (1, T0 + MINUTE)

    await stores.replica().staff_done(relayed, now=T0 + MINUTE, message_id="ts-1")
    assert await store.staff_waiting(platforms={"test"}) == []
    assert not await store.take_staff(relayed, tries=1, until=T0 + HOUR)
    await store.forget_deliveries(T0 + DAY)


async def test_a_staff_reply_is_kept_with_the_staff_turn_under_its_escalation(
    store: ConversationStore,
) -> None:
    escalation = await escalate(store)
    await store.attach_staff_post(escalation, StaffPost("C-staff", "n-1"))
    reply = StaffOutbound(new_outbox_id(), StaffKind.REPLY, "U-dana", "On it!", "Dana")
    said = turn(Kind.STAFF, "Dana: On it!", message_id="s-1")
    assert await store.staff_turn(KEY, said, now=T0, reply=reply)

    [waiting] = await store.staff_waiting(platforms={"test"})
    assert (waiting.id, waiting.kind, waiting.author_name) == (reply.id, StaffKind.REPLY, "Dana")
    assert await store.staff_done(reply.id, now=T0, message_id=None, given_up=True)
    assert not await store.staff_done(reply.id, now=T0, message_id=None, given_up=True), "once"
    assert await store.staff_waiting(platforms={"test"}) == []

    # Closed between the desk's read and the staff turn: the reply still goes out.
    await store.transition(
        escalation, expected=State.OPEN, to=State.RESOLVED, staff_id="U-dana", now=T0
    )
    late = StaffOutbound(new_outbox_id(), StaffKind.REPLY, "U-dana", "Bye!", "Dana")
    bye = turn(Kind.STAFF, "Dana: Bye!", message_id="s-2")
    assert await store.staff_turn(KEY, bye, now=T0, reply=late)
    waiting = await store.staff_waiting(platforms={"test"})
    [kept] = [w for w in waiting if w.kind is StaffKind.REPLY]
    assert (kept.id, kept.escalation.id) == (late.id, escalation)


async def test_a_notice_waits_for_a_redraw_of_its_latest_state(store: ConversationStore) -> None:
    escalation = await escalate(store)
    await store.attach_staff_post(escalation, StaffPost("C-staff", "n-1"))
    assert await store.staff_waiting(platforms={"test"}) == []

    await store.transition(
        escalation, expected=State.OPEN, to=State.CLAIMED, staff_id="U-dana", now=T0 + MINUTE
    )
    [claimed] = await store.staff_waiting(platforms={"test"})
    assert (claimed.kind, claimed.escalation.state, claimed.at) == (
        StaffKind.NOTICE,
        State.CLAIMED,
        T0 + MINUTE,
    )
    await store.transition(
        escalation, expected=State.CLAIMED, to=State.RESOLVED, staff_id="U-dana", now=T0 + HOUR
    )
    # A re-draw of the claim got through after the resolve: the resolve still waits.
    await store.notice_drawn(escalation, seen=T0 + MINUTE)
    [resolved] = await store.staff_waiting(platforms={"test"})
    assert (resolved.escalation.state, resolved.at) == (State.RESOLVED, T0 + HOUR)
    await store.notice_drawn(escalation, seen=T0 + HOUR)
    assert await store.staff_waiting(platforms={"test"}) == []


async def test_a_repeated_hand_off_marks_the_notice_for_a_redraw(store: ConversationStore) -> None:
    escalation = await escalate(store)
    await store.attach_staff_post(escalation, StaffPost("C-staff", "n-1"))
    conversation = await begin(store, "m-again", now=T0 + MINUTE)
    await store.finish_turn(
        conversation.id, TurnWrites(hand_off=hand_off("Asked again")), now=T0 + MINUTE
    )
    [pending] = await store.staff_waiting(platforms={"test"})
    assert (pending.kind, pending.at) == (StaffKind.NOTICE, T0 + MINUTE)
    assert "Asked again" in pending.escalation.reason


async def test_a_reply_keeps_what_redraws_its_buttons_and_ping_when_posted_late(
    stores: Stores,
) -> None:
    store = stores.store
    conversation = await begin(store, "m-1")
    answer = turn(Kind.MODEL, "Refunds take a week.")
    rated = Outbound(new_outbox_id(), answer.text, reply_to="m-1", proposal=7, offer_person=True)
    finished = await store.finish_turn(
        conversation.id, TurnWrites(turns=(answer,), answer=0, reply=rated), now=T0
    )
    asked = await begin(store, "m-2", now=T0 + MINUTE)
    handed = Outbound(new_outbox_id(), "A person will help.", reply_to="m-2")
    writes = TurnWrites(hand_off=hand_off("Wants a person", reping_at=T0 + HOUR), reply=handed)
    await store.finish_turn(asked.id, writes, now=T0 + MINUTE)
    again = await begin(store, "m-3", now=T0 + 2 * MINUTE)
    updated = Outbound(new_outbox_id(), "Noted for the team.", reply_to="m-3")
    writes = TurnWrites(hand_off=hand_off("Still waiting", reping_at=T0 + HOUR), reply=updated)
    await store.finish_turn(again.id, writes, now=T0 + 2 * MINUTE)

    waiting = await stores.replica().undelivered(platforms={"test"}, before=T0 + HOUR)
    assert [(w.id, w.answer_id, w.proposal, w.offer_person, w.ping) for w in waiting] == [
        (rated.id, finished.answer_id, 7, True, False),
        (handed.id, None, None, False, True),  # the hand-off opened the escalation: a ping
        (updated.id, None, None, False, False),  # it added to the live one: none
    ]
    assert finished.answer_id is not None


async def test_a_reply_given_up_is_never_offered_again_and_is_forgotten_on_schedule(
    stores: Stores,
) -> None:
    store = stores.store
    conversation = await begin(store, "m-1")
    lost = Outbound(new_outbox_id(), "Refunds take a week.", reply_to="m-1")
    await store.finish_turn(conversation.id, TurnWrites(reply=lost), now=T0)
    other = await begin(store, "m-2", key=OTHER, now=T0)
    kept = Outbound(new_outbox_id(), "Sorry, a hiccup.", reply_to="m-2")
    await store.finish_turn(other.id, TurnWrites(reply=kept), now=T0)

    given = await asyncio.gather(
        store.give_up(lost.id, now=T0 + MINUTE), stores.replica().give_up(lost.id, now=T0 + HOUR)
    )
    assert sorted(given) == [False, True], "of two replicas giving it up, one does"
    assert not await store.give_up("unknown", now=T0 + HOUR)
    assert not await stores.replica().is_undelivered(lost.id)
    [waiting] = await store.undelivered(platforms={"test"}, before=T0 + HOUR)
    assert waiting.id == kept.id
    await store.delivered({kept.id: None}, now=T0 + MINUTE)
    assert not await store.give_up(kept.id, now=T0 + HOUR), "delivered: nothing to give up"

    await store.forget_deliveries(T0 + DAY)
    if stores.url is not None:  # the rows themselves (the memory store's are not to be seen)
        assert await outbox_rows(stores.url) == 0, "given up and delivered replies both go"


async def outbox_rows(url: str) -> int:
    database = create_engine(url)
    try:
        async with database.connect() as connection:
            return int(await connection.scalar(text("SELECT count(*) FROM outbox")) or 0)
    finally:
        await database.dispose()
