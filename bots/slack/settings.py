"""``SLACK_*``: the Slack adapter's settings, read only when the bot runs on Slack."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from core.config import env_config


class SlackSettings(BaseSettings):
    model_config = env_config("SLACK_")

    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    mode: Literal["socket", "http"] = "socket"
    api_url: str = "https://slack.com/api/"
    http_host: str = "0.0.0.0"
    http_port: int = 3000
    support_group_id: str | None = None
    staff_channel: str | None = None


def required(settings: SlackSettings) -> dict[str, object]:
    """What must be set to run, by variable name: the tokens the chosen mode needs."""
    needed: dict[str, object] = {"SLACK_BOT_TOKEN": settings.bot_token}
    if settings.mode == "socket":
        needed["SLACK_APP_TOKEN"] = settings.app_token
    else:
        needed["SLACK_SIGNING_SECRET"] = settings.signing_secret
    return needed
