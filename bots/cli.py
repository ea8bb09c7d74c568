"""The ``supportbot`` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Iterable
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, NoReturn

import typer
from pydantic_settings import BaseSettings

from bots.app import open_runtime, serve
from bots.console import chat as console_chat
from bots.registry import conversation_link, platforms
from core import logs
from core.clock import utcnow
from core.config import ConfigError, Settings, load_group, load_settings
from core.stats import as_json as stats_json
from core.stats import as_table as stats_table
from core.stats import period
from core.text import sanitize
from core.types import ConversationKey, StartError
from storage.database import open_database
from storage.stats import read as read_stats

app = typer.Typer(no_args_is_help=True, help="Claude customer support for Slack and Discord.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")
for _entry in platforms().values():
    if _entry.commands is not None:
        app.add_typer(_entry.commands(), name=_entry.name)

ALL = "all"
Platform = StrEnum("Platform", [*platforms(), ALL])
"""What ``supportbot run`` takes: a platform's name, or ``all`` of them in one process."""


def _settings(*, log_level: str | None = None, **overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"Configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    logs.configure(level=log_level or settings.log_level, json=settings.log_format == "json")
    # At DEBUG these log request and event bodies, and so what customers write.
    logs.quiet("slack_sdk", "slack_bolt", "discord")
    return settings


def _fail(message: str) -> None:
    typer.echo(f"Configuration error:\n{message}", err=True)
    raise typer.Exit(2)


def _could_not_start(errors: Iterable[BaseException]) -> NoReturn:
    typer.echo("Could not start:\n" + "\n".join(str(e) for e in errors), err=True)
    raise typer.Exit(1)


def _start(work: Coroutine[Any, Any, None]) -> None:
    """Run a command's work; a ``StartError`` (the database cannot be opened) ends it with its
    sentence and exit code 1, not a traceback."""
    try:
        asyncio.run(work)
    except StartError as exc:
        _could_not_start([exc])


@app.command()
def chat(
    conversation: Annotated[
        str, typer.Option("--conversation", "-c", help="Conversation to start or resume.")
    ] = "default",
    demo_shop: Annotated[
        bool,
        typer.Option(
            "--demo-shop", help="Connect the demo shop's order system (shop.db here); needs a key."
        ),
    ] = False,
) -> None:
    """Chat with the bot in the terminal (no tokens needed)."""
    settings = _settings(log_level="WARNING", **({"demo_shop": True} if demo_shop else {}))
    # Bytes that are not UTF-8 arrive as U+FFFD instead of ending the chat with an error, and
    # what the terminal's encoding cannot show goes out as "?".
    for stream in (sys.stdin, sys.stdout):
        stream.reconfigure(errors="replace")  # type: ignore[attr-defined]

    async def session() -> None:
        async with open_runtime(settings) as runtime:
            assert settings.persona is not None
            await console_chat(
                runtime.engine,
                name=conversation,
                bot_name=settings.persona.name,
                type_out=_type_out,
            )

    _start(session())


def _type_out(text: str) -> None:
    """Show ``text`` at once, without ending the line (the chat's streamed answers)."""
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def history(
    key: Annotated[str, typer.Argument(help="Conversation key, e.g. console:local:default:-")],
) -> None:
    """Print the newest stored conversation at KEY."""
    settings = _settings(log_level="WARNING")
    try:
        parsed = ConversationKey.parse(key)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc

    async def show() -> None:
        async with open_runtime(settings) as runtime:
            turns = await runtime.store.history(parsed)
        if not turns:
            typer.echo(f"No conversation stored at {key}.")
        for turn in turns:
            # Stored text is sanitized on the way in; once more here, for what a terminal acts on.
            shown = sanitize(str(turn.text or turn.content))
            typer.echo(f"[{turn.seq}] {turn.role}/{turn.kind}: {shown}")

    _start(show())


@app.command()
def escalations() -> None:
    """List open and claimed escalations, oldest first, with their age and a link."""
    settings = _settings(log_level="WARNING")

    async def show() -> None:
        async with open_runtime(settings) as runtime:
            live = await runtime.desk.live()
        if not live:
            typer.echo("No open escalations.")
        now = utcnow()
        for view in live:
            minutes = int((now - view.created_at).total_seconds() // 60)
            who = f" by {view.claimed_by}" if view.claimed_by else ""
            typer.echo(
                f"#{view.id} {view.state}{who}, {_age(minutes)} old, {view.key.platform}: "
                f"{view.reason}\n    {conversation_link(view.key)}"
            )

    _start(show())


@app.command()
def files(
    escalation: Annotated[int, typer.Argument(help="Escalation number, as in the staff notice.")],
    to: Annotated[
        Path | None, typer.Option("--to", help="Directory to save into (default: escalation-N).")
    ] = None,
) -> None:
    """Save the customer's photos and PDFs of escalation N's conversation into a directory."""
    settings = _settings(log_level="WARNING")
    folder = to or Path(f"escalation-{escalation}")

    async def save() -> None:
        async with open_runtime(settings) as runtime:
            kept = await runtime.desk.files(escalation)
        if not kept:
            typer.echo(f"No files kept for escalation {escalation}.")
            return
        folder.mkdir(parents=True, exist_ok=True)
        for number, attachment in enumerate(kept, start=1):
            # The name is the customer's: only its last part, behind a number (no clashes).
            path = folder / f"{number}-{PurePosixPath(attachment.name).name}"
            path.write_bytes(attachment.data or b"")
            typer.echo(str(path))

    _start(save())


@app.command()
def actions() -> None:
    """List the configured tool servers and their tools: read-only, write or staff-only."""
    settings = _settings(log_level="WARNING")
    servers = settings.actions.servers if settings.actions is not None else {}
    if not servers:
        typer.echo(
            "No tool servers configured: set SUPPORTBOT_MCP_CONFIG to a TOML file "
            "(or SUPPORTBOT_DEMO_SHOP=true)."
        )
        return

    async def show() -> None:
        # Imported here: the mcp SDK takes a second or two to import.
        from core.mcp_tools import McpTools

        async with McpTools(servers) as tools:
            await tools.ready(max(s.timeout_seconds for s in servers.values()))
            status, specs = tools.status(), tools.tools()
        for name, config in servers.items():
            where = f"HTTP {config.url}" if config.url else f"stdio {config.command}"
            state = "connected" if status[name] else "NOT REACHABLE"
            typer.echo(f"{name} ({where}): {state}")
            for spec in (s for s in specs if s.server == name):
                typer.echo(f"  {spec.name:40} {spec.access:22} {spec.title}")

    _start(show())


@app.command()
def stats(
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 12h, 7d or 2w.")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What the bot did: conversations, deflection, escalations, feedback, tokens and cost."""
    settings = _settings(log_level="WARNING")
    try:
        back = period(since)
    except ValueError as exc:
        typer.echo(f"--since {exc}", err=True)
        raise typer.Exit(2) from exc

    async def show() -> None:
        database = await open_database(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout_seconds,
            command_timeout=settings.database_command_timeout_seconds,
        )
        until = utcnow()
        try:
            figures = await read_stats(
                database, since=until - back, until=until, model=settings.claude.model
            )
        finally:
            await database.dispose()
        report = figures.report(settings.prices)
        typer.echo(stats_json(report) if as_json else stats_table(report))

    _start(show())


def _age(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} days"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending database migrations (the bot also does this at start)."""
    settings = _settings()

    async def migrate() -> None:
        database = await open_database(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout_seconds,
            command_timeout=settings.database_command_timeout_seconds,
        )
        await database.dispose()

    _start(migrate())
    typer.echo("Database is up to date.")


@app.command()
def run(
    platform: Annotated[Platform, typer.Argument(help="Which platform adapters to run.")],
) -> None:
    """Run the bot on Slack, Discord, or both in one process."""
    settings = _settings()
    entries = platforms()
    names = sorted(entries) if platform == ALL else [str(platform)]
    chosen: dict[str, BaseSettings] = {}
    for name in names:
        entry = entries[name]
        try:
            chosen[name] = load_group(entry.settings)
        except ConfigError as exc:
            _fail(str(exc))
        missing = entry.missing(chosen[name])
        if missing:
            _fail(f"{', '.join(missing)} must be set to run on {entry.title}.")
    try:
        asyncio.run(serve(settings, chosen))
    except* ConfigError as group:
        _fail("\n".join(str(exc) for exc in group.exceptions))
    except* StartError as group:
        _could_not_start(group.exceptions)


def main() -> None:
    app()
