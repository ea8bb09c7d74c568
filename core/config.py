"""Typed settings: the only module that reads the environment.

Each group reads its own prefix (``SUPPORTBOT_``, ``ANTHROPIC_``) from the environment or an
optional ``.env`` file; each platform's group (``SLACK_``, ``DISCORD_``) lives with its adapter
and is read through ``load_group``. The persona (voice, scope, knowledge, fallback texts,
topics) comes from a TOML or YAML file; the shipped demo is ``core/demo_persona.toml``.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from core.actions import DEMO_SHOP, ActionsConfig, demo_shop
from core.hours import SupportHours
from core.stats import DEFAULT_PRICES, ModelPrice

DEMO_PERSONA = Path(__file__).with_name("demo_persona.toml")
G = TypeVar("G", bound=BaseSettings)


def env_config(prefix: str) -> SettingsConfigDict:
    """The ``model_config`` of a settings group read from ``PREFIX*`` variables or ``.env``."""
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore")


class ConfigError(Exception):
    """A setting or the persona file is wrong; the message names the field."""


class Topic(BaseModel):
    name: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1)


class KnowledgeEntry(BaseModel):
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    keywords: list[str] = []


class Fallbacks(BaseModel):
    """What the customer reads when Claude cannot answer, by cause. Each names a next step."""

    rate_limited: str
    overloaded: str
    timeout: str
    connection: str
    server_error: str
    spend_limit: str
    auth: str
    refusal: str
    truncated: str
    unknown: str


class FileTexts(BaseModel):
    """What the customer is told about their files (``core.files``). Each may use the
    placeholders shown in its default; ``{name}`` is the file's name."""

    unsupported_type: str = "I can't open {ext} files — could you send a JPEG or PNG (or a PDF)?"
    not_readable: str = (
        "I can't open {name}: it is not a photo or PDF I can read — could you send a JPEG, "
        "PNG or PDF instead?"
    )
    damaged: str = "I couldn't open {name} — it seems to be damaged. Could you send it again?"
    too_large: str = (
        "{name} is too large for me: I can take photos of up to {image_mb} and PDFs of up to "
        "{pdf_mb} — could you send a smaller copy?"
    )
    too_many_pixels: str = "{name} is too large for me to open — could you send a smaller photo?"
    too_many_pages: str = (
        "{name} has {pages} pages, more than the {max_pages} I can read — could you send just "
        "the pages that matter?"
    )
    encrypted: str = (
        "{name} is password-protected, so I can't read it — could you send a copy without a "
        "password?"
    )
    no_pages: str = "{name} has no pages I can read — could you send it again?"
    not_downloaded: str = "I couldn't download {name} — could you try sending it again?"
    too_many_files: str = (
        "I can look at up to {max_files} files in one message, so I left out {names} — could "
        "you send the rest in another message?"
    )
    saved: str = "I've saved your {what} with this conversation, and the team will look at {them}."
    """Said with a hand-off; ``{what}`` is "photo", "3 photos", "PDF" or "2 files"."""

    @model_validator(mode="after")
    def _placeholders_known(self) -> FileTexts:
        for name, said in self:
            try:
                said.format(**FILE_TEXT_FIELDS)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{name}: unknown placeholder or stray brace ({exc})") from exc
        return self


class FeedbackTexts(BaseModel):
    """What the customer reads around 👍 / 👎 and "Did we solve it?" (``core.feedback``)."""

    thanks: str = Field("Thanks for the feedback!", min_length=1)
    """Said (privately where the platform can) after a 👍, or a 👎's form is sent."""
    sorry: str = Field(
        "Sorry that didn't help. You can talk to a person, or tell us what was wrong.",
        min_length=1,
    )
    """Said privately after a 👎, with "Talk to a person" and "What was wrong?"."""
    not_yours: str = Field("Only the customer who asked can rate this answer.", min_length=1)
    solved_question: str = Field("Did we solve it?", min_length=1, max_length=150)
    """Asked once when the support team resolves an escalation people helped with."""
    solved_thanks: str = Field("Thanks for letting us know!", min_length=1)


FILE_TEXT_FIELDS = dict.fromkeys(
    (
        "name",
        "names",
        "ext",
        "image_mb",
        "pdf_mb",
        "pages",
        "max_pages",
        "max_files",
        "what",
        "them",
    ),
    "x",
)
"""Every placeholder a ``FileTexts`` sentence may use."""


class SuggestedPrompt(BaseModel):
    """A prompt offered when a customer opens a conversation (Slack's suggested prompts):
    ``title`` is what they see, ``message`` what pressing it sends."""

    title: str = Field(min_length=1, max_length=75)
    message: str = Field(min_length=1, max_length=2000)


class Persona(BaseModel):
    name: str
    company: str
    instructions: str = Field(min_length=1)
    dont_know: str = Field(min_length=1)
    limited_mode: str = Field(min_length=1)
    empty_message: str = Field(min_length=1)
    too_long: str = Field(min_length=1)
    fresh_start: str = Field(min_length=1)
    fresh_start_phrases: list[str] = []
    handoff: str = Field(min_length=1)
    flood_notice: str = Field(
        "You're sending messages faster than I can read them, so I'll answer them all "
        "together in a moment.",
        min_length=1,
    )
    """Said once to a customer writing faster than ``SUPPORTBOT_FLOOD_PER_MINUTE``."""
    late_apology: str = Field(
        "Sorry for the slow reply: something went wrong on our side while I was answering.",
        min_length=1,
    )
    """Put before the answer to a message that waited longer than
    ``SUPPORTBOT_LATE_AFTER_MINUTES`` (a restart, a crash) for it."""
    handoff_step: str = Field("Passing you to our team…", min_length=1)
    """Shown while an answer streams, when Claude hands the conversation to people."""
    loading_messages: list[str] = Field(default_factory=list, max_length=10)
    """What Slack's loading status rotates through while the bot works (at most 10)."""
    suggested_prompts: list[SuggestedPrompt] = Field(default_factory=list, max_length=4)
    """Offered when a customer opens the bot's Messages tab or a new assistant thread (Slack
    takes at most 4)."""
    suggested_prompts_title: str = Field("", max_length=75)
    stopped: str = Field("You stopped this answer. Ask me again whenever you like.", min_length=1)
    """Ends an answer the customer stopped (Slack's stop button)."""
    actions_instructions: str = ""
    """Added to the instructions when the team's tool servers are connected (MCP actions)."""
    human_request_phrases: list[str] = []
    dont_know_markers: list[str] = []
    off_hours: str = Field(min_length=1, pattern=r"\{back\}")
    support_hours: SupportHours | None = None
    fallbacks: Fallbacks
    topics: list[Topic] = []
    knowledge: list[KnowledgeEntry] = []
    knowledge_min_score: float = Field(1.0, gt=0)
    files: FileTexts = FileTexts()
    feedback: FeedbackTexts = FeedbackTexts()

    @classmethod
    def load(cls, path: Path) -> Persona:
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"persona_file: cannot read {path}: {exc.strerror}") from exc
        try:
            data = yaml.safe_load(raw) if path.suffix in {".yaml", ".yml"} else tomllib.loads(raw)
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"persona_file: {path} is not valid: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, prefix=f"persona ({path})")) from exc


class ClaudeSettings(BaseSettings):
    """``ANTHROPIC_*``: the key and base URL keep the SDK's own variable names."""

    model_config = env_config("ANTHROPIC_")

    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = "claude-sonnet-4-6"
    max_tokens: int = Field(1024, ge=1, le=64000)
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    retry_after_cap_seconds: float = Field(10.0, ge=0)
    token_budget: int = Field(12000, ge=500)
    max_concurrency: int = Field(8, ge=1)
    # Prompt-cache lifetimes (README, "Prompt caching"): the tools and persona prefix, shared
    # by every conversation, and each conversation's history.
    cache_ttl_prefix: Literal["5m", "1h"] = "1h"
    cache_ttl_conversation: Literal["5m", "1h"] = "1h"

    @model_validator(mode="after")
    def _longer_ttl_first(self) -> ClaudeSettings:
        # The API refuses a 1-hour breakpoint after a 5-minute one.
        if (self.cache_ttl_prefix, self.cache_ttl_conversation) == ("5m", "1h"):
            raise ValueError("cache_ttl_conversation cannot outlive cache_ttl_prefix")
        return self


class Settings(BaseSettings):
    """Everything the bot needs; ``SUPPORTBOT_*`` for the bot's own settings."""

    model_config = env_config("SUPPORTBOT_")

    persona_file: Path = DEMO_PERSONA
    database_url: str = "sqlite+aiosqlite:///supportbot.db"
    idle_timeout_hours: float = Field(24.0, gt=0)
    max_input_chars: int = Field(8000, ge=100)
    reping_minutes: float = Field(10.0, gt=0)
    database_connect_timeout_seconds: float = Field(5.0, gt=0)
    database_command_timeout_seconds: float = Field(15.0, gt=0)
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    turn_lock_wait_seconds: float = Field(300.0, gt=0)
    """Above the longest a turn holds its conversation: Claude's tries, then the reply's post
    and its four retries within the turn (up to ~165 s with the SDKs' 30 s timeouts)."""
    recover_after_seconds: float = Field(30.0, gt=0)
    recover_within_hours: float = Field(24.0, gt=0)
    outbox_give_up_minutes: float = Field(60.0, gt=0)
    """How long the outboxes try to deliver a reply, a relay, a staff reply or a notice re-draw
    before they give it up (README, "The outbox"): a customer answered hours late is told
    something out of date."""
    late_after_minutes: float = Field(15.0, ge=0)
    flood_per_minute: float = Field(6.0, ge=0)
    """Messages a customer may send a minute once ``flood_burst`` are spent (0: no limit)."""
    flood_burst: int = Field(3, ge=1)
    delivery_retention_days: float = Field(14.0, gt=0)
    # What a customer may send in one message (README, "Photos and files").
    max_files: int = Field(10, ge=0, le=100)
    max_image_mb: float = Field(5.0, gt=0, le=100)
    max_pdf_mb: float = Field(20.0, gt=0, le=100)
    max_pdf_pages: int = Field(100, ge=1, le=600)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    health_host: str = "0.0.0.0"
    health_port: int = Field(9090, ge=0, le=65535)
    """Liveness, readiness and Prometheus metrics for ``supportbot run`` (0: any free port)."""
    claude: ClaudeSettings = Field(default_factory=ClaudeSettings)
    persona: Persona | None = None
    # Actions over MCP (README, "Actions on the shop's systems").
    mcp_config: Path | None = None
    demo_shop: bool = False
    demo_shop_db: Path = Path("shop.db")
    actions: ActionsConfig | None = None
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict)
    """``supportbot stats``' prices (JSON, US dollars per million tokens), over
    ``core.stats.DEFAULT_PRICES``: ``{"my-model": {"input": 3, "output": 15}}``."""

    @property
    def prices(self) -> dict[str, ModelPrice]:
        return {**DEFAULT_PRICES, **self.model_prices}

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB")
        return url

    @model_validator(mode="after")
    def _load_persona(self) -> Settings:
        if self.persona is None:
            self.persona = Persona.load(self.persona_file)
        return self

    @model_validator(mode="after")
    def _load_actions(self) -> Settings:
        if self.actions is None:
            found = (
                ActionsConfig() if self.mcp_config is None else ActionsConfig.load(self.mcp_config)
            )
            if self.demo_shop and DEMO_SHOP not in found.servers:
                shop = demo_shop(sys.executable, self.demo_shop_db.resolve())
                found = found.model_copy(update={"servers": {DEMO_SHOP: shop, **found.servers}})
            self.actions = found
        return self


def describe(exc: ValidationError, *, prefix: str = "", env_prefix: str | None = None) -> str:
    """One line per problem, naming the field (as its environment variable when it has one)."""
    lines = []
    for err in exc.errors():
        names = [str(p) for p in err["loc"] if isinstance(p, str)]
        items = [p + 1 for p in err["loc"] if isinstance(p, int)]
        if env_prefix is not None:
            where = env_prefix + "_".join(names).upper()
        else:
            where = ".".join(names) or "(root)"
        where += "".join(f" (item {i})" for i in items)
        lines.append(f"{prefix + ': ' if prefix else ''}{where}: {err['msg']}")
    return "\n".join(lines)


def load_group(group: type[G]) -> G:
    """Read one settings group from the environment; a ``ConfigError`` names the variable."""
    try:
        return group()
    except ValidationError as exc:
        raise ConfigError(describe(exc, env_prefix=group.model_config["env_prefix"])) from exc


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning any problem into a ``ConfigError`` that names the field."""
    groups = {} if "claude" in overrides else {"claude": load_group(ClaudeSettings)}
    try:
        return Settings(**groups, **overrides)
    except (ValidationError, SettingsError) as exc:
        raise ConfigError(_explain(exc, env_prefix="SUPPORTBOT_")) from exc


def _explain(exc: ValidationError | SettingsError, *, env_prefix: str) -> str:
    if isinstance(exc, ValidationError):
        return describe(exc, env_prefix=env_prefix)
    # pydantic-settings says 'error parsing value for field "x" from source "..."'.
    field = str(exc).split('"')[1] if '"' in str(exc) else "?"
    return f"{env_prefix}{field.upper()}: cannot parse the value"
