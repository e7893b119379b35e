"""Service settings from ``FUNNELBOT_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.args import telegram_user_id
from bot.clock import ClockFileError, read_instant
from funnels.scripts.model import web_address_problem

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./funnelbot.db"


def _admin_id(text: str) -> int:
    telegram_id = telegram_user_id(text)
    if telegram_id is None:
        raise ValueError(f"{text[:40]!r} is not a Telegram user id (digits, 1 to 2^53 - 1)")
    return telegram_id


def signing_key(secret: str) -> bytes:
    """The key of a Standard Webhooks secret: ``whsec_`` and at least 24 bytes in
    base64 (the prefix may be left out)."""
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise ValueError("a signing secret is whsec_ followed by base64") from None
    if len(key) < 24:
        raise ValueError(
            "a signing secret needs at least 24 random bytes (whsec_ + 32 base64 characters)"
        )
    return key


_TELEGRAM_FORMS = {
    "bot_token": (
        re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,100}"),
        "not a bot token: @BotFather gives one like 123456789:AAH… (the bot's id, a colon, "
        "then letters, digits, _ and -)",
    ),
    "webhook_secret": (
        re.compile(r"[A-Za-z0-9_-]{1,256}"),
        "Telegram takes 1 to 256 characters A-Z, a-z, 0-9, _ and - as the webhook's secret token",
    ),
}
"""A value's form, and what is wrong with it otherwise, for the settings Telegram reads."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FUNNELBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A refused value is never printed whole (it may be a token or a secret); the
        # messages quote what is safe to quote themselves.
        hide_input_in_errors=True,
    )

    bot_token: SecretStr | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = None
    """Base of tracked links (``{public_url}/r/{code}``): the address people reach this
    service at. Unset: ``http://HTTP_HOST:HTTP_PORT``, only right for a local trial."""
    # NoDecode: the validator reads "1,2,3" itself (pydantic-settings would insist on JSON).
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    events_secret: SecretStr | None = None
    """Standard Webhooks secret (``whsec_`` + base64) that signs inbound events."""
    scripts_dir: Path | None = None
    tick_seconds: float = Field(default=5.0, gt=0, le=300)
    payout_webhook_url: str | None = None
    payout_secret: SecretStr | None = None
    log_format: Literal["auto", "json", "text"] = "auto"
    """``funnelbot run``'s log lines: JSON objects, plain text, or (``auto``) text on a
    terminal and JSON otherwise."""
    api_rate: float = Field(default=20.0, ge=0, le=100_000)
    """Requests a second each API key may make on the stats and ops API, in bursts of
    twice as many (counted in Redis for all processes when ``redis_url`` is set); 0: no
    limit."""
    clock_file: Path | None = None
    """For drills and benchmarks: ``now`` is the instant this file holds (ISO 8601 with
    an offset), shared by every process given the same file; unset: the machine's
    clock."""

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        # "1,2,3" as well as the JSON list pydantic-settings understands.
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(f"{value[:40]!r} is not a JSON list of ids") from None
        if isinstance(value, str):
            return [_admin_id(v) for v in value.replace(" ", "").split(",") if v]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("admin_ids")
    @classmethod
    def _telegram_ids(cls, value: list[int]) -> list[int]:
        for telegram_id in value:
            _admin_id(str(telegram_id))
        return value

    @field_validator("clock_file", mode="before")
    @classmethod
    def _clock_file(cls, value: object) -> object:
        if isinstance(value, str | Path) and not str(value).strip():
            return None  # FUNNELBOT_CLOCK_FILE= (empty): the machine's clock
        if isinstance(value, str | Path):
            try:
                read_instant(Path(value))
            except ClockFileError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("bot_token", "webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``FUNNELBOT_BOT_TOKEN=`` (an .env line left empty) means not set."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("bot_token", "webhook_secret")
    @classmethod
    def _telegram_form(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """In the form Telegram writes it (aiogram refuses a malformed token with a
        traceback at start-up; Telegram a malformed secret at the first setWebhook). A
        secret, so never repeated in the message."""
        form, problem = _TELEGRAM_FORMS[str(info.field_name)]
        if value is not None and not form.fullmatch(value.get_secret_value()):
            raise ValueError(f"{problem}; the value is not shown")
        return value

    @field_validator("events_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        problem = web_address_problem(value)
        if problem is None and ("?" in value or "#" in value):
            problem = "a base address takes no ?query or #fragment"
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError(
                "FUNNELBOT_WEBHOOK_URL is set but FUNNELBOT_WEBHOOK_SECRET is not: Telegram's "
                "updates could not be told from anyone else's"
            )
        return self

    @field_validator("payout_webhook_url")
    @classmethod
    def _payout_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value[:60]!r} is not an http:// or https:// URL")
        return value or None

    @field_validator("payout_secret")
    @classmethod
    def _payout_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _payouts_need_secret(self) -> Settings:
        if self.payout_webhook_url and self.payout_secret is None:
            raise ValueError(
                "FUNNELBOT_PAYOUT_WEBHOOK_URL is set but FUNNELBOT_PAYOUT_SECRET is not: "
                "reward events must be signed"
            )
        return self

    @property
    def links_base(self) -> str:
        """Where tracked links start: ``PUBLIC_URL``, else this process's own address."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def tracked_link(self, code: str) -> str:
        """The address of the tracked link ``code`` (``GET /r/{code}``)."""
        return f"{self.links_base}/r/{code}"

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")
