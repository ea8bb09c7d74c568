"""The system side of a request: the persona (cached) and the engine's own context notes."""

from __future__ import annotations

from typing import Any

from core.config import Persona
from core.window import EPHEMERAL

ESCALATE_TOOL: dict[str, Any] = {
    "name": "escalate_to_human",
    "description": (
        "Hand the conversation to the human support team. Use it for billing problems or "
        "disputes, for questions outside the policies you were given or whose answer you would "
        "have to guess (order details, stock, prices, dates), and whenever the customer asks "
        "for a person. The customer is told a person will follow up; do not also promise it."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "description": "One short sentence for the support team: why a person is needed.",
            }
        },
        "required": ["reason"],
    },
}


SUMMARY_INSTRUCTIONS = (
    "You write hand-off notes for a customer-support team. From the conversation you are "
    "given, write at most three short sentences: what the customer needs, what they have "
    "already been told, and any order numbers or items mentioned. No greeting, no advice."
)


def persona_prompt(persona: Persona) -> str:
    return f"{persona.instructions.strip()}\n\nYou work for {persona.company}."


def system_blocks(
    persona: Persona, *, topic: str | None, previous_topic: str | None
) -> list[dict[str, Any]]:
    """The persona block is byte-stable and carries the cache breakpoint; notes follow it.

    Topic notes live here, on the system side, so nothing a customer types can forge one.
    """
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": persona_prompt(persona), "cache_control": EPHEMERAL}
    ]
    if topic is not None:
        note = f"Current topic of this conversation: {topic}."
        if previous_topic is not None and previous_topic != topic:
            note += (
                f" The customer has just moved on from {previous_topic} to {topic}: answer the "
                f"new question, and leave details of the earlier {previous_topic} matter out "
                "unless they refer back to it."
            )
        blocks.append({"type": "text", "text": note})
    return blocks
