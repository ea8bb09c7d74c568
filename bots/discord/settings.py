"""``DISCORD_*``: the Discord adapter's settings, read only when the bot runs on Discord."""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

from core.config import env_config


class DiscordSettings(BaseSettings):
    model_config = env_config("DISCORD_")

    token: SecretStr | None = None
    application_id: int | None = None
    support_channel_ids: Annotated[list[int], NoDecode] = []
    support_role_id: int | None = None
    staff_channel_id: int | None = None
    lock_solved_posts: bool = False
    """Lock a support forum's post when its escalation is resolved (customers then open a new
    post instead of reopening it)."""
    api_url: str | None = None
    """Where Discord's REST API is (``None``: Discord itself): a rate-limit proxy, or the
    tests' fake Discord. The bot calls ``<api_url>/api/v10/...``; discord.py's rate-limit
    warnings show that URL, so it holds no credentials (the token goes in a header)."""
    gateway_url: str | None = None
    """Where the gateway websocket is (``None``: Discord's), e.g. ``ws://127.0.0.1:8080/gw``."""

    @field_validator("support_channel_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def required(settings: DiscordSettings) -> dict[str, object]:
    """What must be set to run, by variable name."""
    return {"DISCORD_TOKEN": settings.token}
