"""Settings: the only reader of the environment.

Secrets are ``SecretStr`` so they never print or log by accident. Each field is read from
the environment variable its alias names (any case, as pydantic-settings would); values
given to ``Settings(...)`` win over the environment. A plain pydantic model rather than
pydantic-settings: importing that costs every command line ~0.1 s, for features (dotenv
files, cloud secret stores, JSON in variables) this does not use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot import startup

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///mailqbot.sqlite3"
DEFAULT_METRICS_PORT = 9464


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, given: Any) -> Any:
        """The environment's value for each field not given (variable names in any case)."""
        if not isinstance(given, dict):
            return given
        environ = {name.upper(): value for name, value in os.environ.items()}
        found = {}
        for name, field in cls.model_fields.items():
            alias = field.alias or name
            if alias not in given and name not in given and alias.upper() in environ:
                found[alias] = environ[alias.upper()]
        return {**found, **given}

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
    # The audit trail's key (never in the database): the secret itself, or a file holding
    # it. Neither set: a key file in the state directory, made on first use.
    audit_key: SecretStr | None = Field(default=None, alias="MAILQBOT_AUDIT_KEY")
    audit_key_file: Path | None = Field(default=None, alias="MAILQBOT_AUDIT_KEY_FILE")
    # Where the audit chain's head is checkpointed after every commit (outside the database,
    # so rows removed from its end are found); default: audit.head in the state directory.
    audit_checkpoint: Path | None = Field(default=None, alias="MAILQBOT_AUDIT_CHECKPOINT")
    state_dir: Path = Field(default=Path("mailqbot-state"), alias="MAILQBOT_STATE_DIR")

    # How long Socket Mode may stay disconnected (its retries included) before the process
    # gives up and exits, for the service manager to restart it.
    slack_give_up: float = Field(default=120.0, alias="MAILQBOT_SLACK_GIVE_UP", gt=0)
    # Logs: "text" or "json" (one JSON object a line); levels per logger, e.g.
    # "bot=debug,asyncssh=warning" (``bot.logs``).
    log_format: str = Field(default="text", alias="MAILQBOT_LOG_FORMAT", pattern="^(text|json)$")
    log_levels: str = Field(default="", alias="MAILQBOT_LOG_LEVELS")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """``postgres://``, ``postgresql://`` and ``sqlite:///`` as people write them, run
        on the drivers mailqbot uses (a ``ConfigError`` explains any other)."""
        return startup.database_url(value)

    @property
    def api_url(self) -> str:
        """The Web API base URL as slack_sdk wants it (ending in a slash)."""
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"


def load_settings() -> Settings:
    return Settings()
