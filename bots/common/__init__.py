"""The support workflow, written once for every platform.

A platform implements :class:`~bots.common.platform.Platform` (translate its events, render
text safely, post, update, whisper, show that the bot is working, tell staff from customers,
build links) and hands what it translated to :class:`~bots.common.workflow.Workflow`, which
owns the turn: ordering per conversation, follow-up gating, staff takeover, the staff notice,
re-pings, the DM relay both ways, staff-only buttons and graceful shutdown.
"""

from bots.common.platform import AnswerStream, Decided, Inbound, Platform, Press, StaffReply
from bots.common.workflow import Workflow

__all__ = ["AnswerStream", "Decided", "Inbound", "Platform", "Press", "StaffReply", "Workflow"]
