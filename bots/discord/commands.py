"""``supportbot discord …``: Discord's own commands."""

from __future__ import annotations

import typer

from bots.discord.settings import DiscordSettings
from core.config import ConfigError, load_group

commands = typer.Typer(no_args_is_help=True, help="Discord helpers.")


@commands.command("invite-url")
def invite_url_command() -> None:
    """Print the OAuth2 link that adds the bot to a server with the permissions it needs."""
    try:
        settings = load_group(DiscordSettings)
    except ConfigError as exc:
        typer.echo(f"Configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    if settings.application_id is None:
        typer.echo(
            "Configuration error:\nDISCORD_APPLICATION_ID must be set "
            "(Developer Portal → General Information).",
            err=True,
        )
        raise typer.Exit(2)
    from bots.discord.invite import invite_url

    typer.echo(invite_url(settings.application_id))
