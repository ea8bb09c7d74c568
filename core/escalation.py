"""The escalation lifecycle: its states, what staff may do in each, and where each action leads.

One table decides everything: which buttons a staff notification shows (on every platform),
whether a press changes anything, and whether the bot or people have the conversation.

```
open ──claim──► claimed ──resolve / hand_back──► resolved / handed_back
  └──────────────resolve / hand_back─────────────────┘
```
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    HANDED_BACK = "handed_back"

    @property
    def live(self) -> bool:
        """Open or claimed: the team has not finished with it yet."""
        return self in LIVE


class Action(StrEnum):
    """What a support-team member can do to an escalation."""

    CLAIM = "claim"
    RESOLVE = "resolve"
    HAND_BACK = "hand_back"


LIVE = frozenset({State.OPEN, State.CLAIMED})

_NEXT: dict[State, dict[Action, State]] = {
    State.OPEN: {
        Action.CLAIM: State.CLAIMED,
        Action.RESOLVE: State.RESOLVED,
        Action.HAND_BACK: State.HANDED_BACK,
    },
    State.CLAIMED: {Action.RESOLVE: State.RESOLVED, Action.HAND_BACK: State.HANDED_BACK},
    State.RESOLVED: {},
    State.HANDED_BACK: {},
}

LABELS = {Action.CLAIM: "Claim", Action.RESOLVE: "Resolve", Action.HAND_BACK: "Hand back to bot"}
"""The button label of each action, the same on every platform."""


def actions_for(state: State | str) -> tuple[Action, ...]:
    """The actions (and so the buttons) an escalation in ``state`` offers; none once closed."""
    return tuple(_NEXT[State(state)])


def after(state: State | str, action: Action | str) -> State | None:
    """The state ``action`` leads to from ``state``; ``None`` when it is not allowed there."""
    return _NEXT[State(state)].get(Action(action))


def people_have_it(*, human_active: bool, state: State | str | None) -> bool:
    """Whether people, not the bot, answer the conversation now.

    A claimed escalation, or a support-team member who spoke while one was live, silences the
    bot until the escalation is resolved or handed back.
    """
    return human_active or state == State.CLAIMED
