"""Settings: the only reader of the environment.

Secrets are ``SecretStr`` so they never print or log by accident.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///mailqbot.sqlite3"
DEFAULT_METRICS_PORT = 9464


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default=DEFAULT_SLACK_API_URL, alias="SLACK_API_URL")
    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    config_path: Path = Field(default=Path("mailqbot.toml"), alias="MAILQBOT_CONFIG")
    replica_id: str | None = Field(default=None, alias="MAILQBOT_REPLICA_ID")
    # Prometheus /metrics (host names, queue counts) has its own listener, on loopback
    # unless asked otherwise; never on the Slack listener. Port 0: no metrics listener.
    metrics_host: str = Field(default="127.0.0.1", alias="MAILQBOT_METRICS_HOST")
    metrics_port: int = Field(
        default=DEFAULT_METRICS_PORT, alias="MAILQBOT_METRICS_PORT", ge=0, le=65535
    )

    @property
    def api_url(self) -> str:
        """The Web API base URL as slack_sdk wants it (ending in a slash)."""
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"


def load_settings() -> Settings:
    return Settings()
