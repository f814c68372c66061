"""Slack settings, from the environment or `.env`. Tokens are SecretStr: never printed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.scrub import register_secret


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
    # teams (or Enterprise Grid orgs) whose requests are served, comma-separated; empty:
    # the team the bot token belongs to (auth.test)
    team_ids: str = Field(default="", validation_alias="SLACK_TEAM_IDS")
    # operations running at once; more wait their turn
    workers: int = Field(default=4, validation_alias="CHATOPS_SLACK_WORKERS")
    # the least time between two updates of one progress message (Slack allows ~1/s)
    update_interval: float = Field(default=1.0, validation_alias="CHATOPS_SLACK_UPDATE_INTERVAL")

    def register_secrets(self) -> None:
        """Tokens and the signing secret are masked in every text the bot sends or logs."""
        for secret in (self.bot_token, self.app_token, self.signing_secret):
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
