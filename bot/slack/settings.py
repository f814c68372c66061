"""Slack settings, from the environment or `.env`. Tokens are SecretStr: never printed."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.registry import NAMESPACE, RESERVED
from core.scrub import register_secret

COMMAND_NAME = re.compile(r"^[a-z0-9_-]{1,31}\Z")
NO_SECRET = (
    "SLACK_SIGNING_SECRET is not set: HTTP mode serves only requests Slack signed "
    "(Basic Information → App Credentials → Signing Secret)"
)


class Mode(StrEnum):
    SOCKET = "socket"
    HTTP = "http"
    CONSOLE = "console"


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    port: int = Field(default=3000, validation_alias=AliasChoices("PORT", "SLACK_PORT"))
    host: str = Field(default="0.0.0.0", validation_alias="SLACK_HOST")
    # when set, `/metrics` answers only `Authorization: Bearer <this>` (the port may face the
    # internet: Slack must reach `/slack/events` on it)
    metrics_token: SecretStr | None = Field(default=None, validation_alias="CHATOPS_METRICS_TOKEN")
    # teams (or Enterprise Grid orgs) whose requests are served, comma-separated; empty:
    # the team the bot token belongs to (auth.test)
    team_ids: str = Field(default="", validation_alias="SLACK_TEAM_IDS")
    # operations running at once; more wait their turn
    workers: int = Field(default=4, validation_alias="CHATOPS_SLACK_WORKERS")
    # the least time between two updates of one progress message (Slack allows ~1/s)
    update_interval: float = Field(default=1.0, validation_alias="CHATOPS_SLACK_UPDATE_INTERVAL")

    # where registry events (new versions, aliases, tags) are announced, and where on-call
    # hears of automatic rollbacks and endpoints that went down (channel ids; empty: nowhere)
    announce_channel: str = Field(default="", validation_alias="CHATOPS_ANNOUNCE_CHANNEL")
    oncall_channel: str = Field(default="", validation_alias="CHATOPS_ONCALL_CHANNEL")

    # the HTTP API (`/api/v1`, MLflow's `mlflow deployments -t chatops:/<env>`): the channel
    # where what it asks reports (operations' threads, promotion requests; empty: the
    # announce channel, else the asker's DM with the bot), how many calls one token may make
    # a minute, and how long a call waits for its answer
    api_channel: str = Field(default="", validation_alias="CHATOPS_API_CHANNEL")
    api_calls_per_minute: int = Field(default=60, ge=1, validation_alias="CHATOPS_API_RATE")
    api_wait_s: float = Field(default=3600.0, gt=0, validation_alias="CHATOPS_API_WAIT_S")

    # the one command that takes the whole grammar (`/mlops deploy …`), and whether the
    # commands Slack leaves free are offered on their own too (`/deploy …`); an Enterprise
    # Grid org, where another app may own `/deploy`, turns them off
    command: str = Field(default=NAMESPACE, validation_alias="CHATOPS_SLACK_COMMAND")
    direct_commands: bool = Field(default=True, validation_alias="CHATOPS_SLACK_DIRECT_COMMANDS")

    @field_validator("command")
    @classmethod
    def _command_name(cls, value: str) -> str:
        name = value.strip().lstrip("/").lower()
        if not COMMAND_NAME.match(name):
            raise ValueError(f"{name!r} is not a slash command name: 1-31 of a-z, 0-9, - and _")
        if name in RESERVED:
            raise ValueError(f"/{name} is one of Slack's own commands: choose another name")
        return name

    def register_secrets(self) -> None:
        """Tokens and the signing secret are masked in every text the bot sends or logs."""
        for secret in (self.bot_token, self.app_token, self.signing_secret, self.metrics_token):
            if secret is not None:
                register_secret(secret.get_secret_value())

    @property
    def mode(self) -> Mode:
        """Socket Mode when an app token is set, HTTP with a signing secret, else the console."""
        if self.bot_token and self.app_token:
            return Mode.SOCKET
        if self.bot_token and self.signing_secret:
            return Mode.HTTP
        return Mode.CONSOLE
