"""Service settings from ``FUNNELBOT_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./funnelbot.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FUNNELBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    bot_token: SecretStr | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    events_secret: SecretStr | None = None
    payout_webhook_url: str | None = None
    payout_secret: SecretStr | None = None
    admin_ids: list[int] = Field(default_factory=list)
    scripts_dir: Path | None = None
    tick_seconds: float = Field(default=5.0, gt=0, le=300)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        # "1,2,3" as well as the JSON list pydantic-settings understands.
        if isinstance(value, str) and not value.strip().startswith("["):
            return [int(v) for v in value.replace(" ", "").split(",") if v]
        if isinstance(value, int):
            return [value]
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError(
                "FUNNELBOT_WEBHOOK_URL is set but FUNNELBOT_WEBHOOK_SECRET is not: Telegram's "
                "updates could not be told from anyone else's"
            )
        return self

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")
