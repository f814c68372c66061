"""Settings, read from the environment or `.env` (pydantic-settings).

Everything has an embedded default, so the bot runs with no configuration at all: state in
`./.state`, an MLflow registry in SQLite inside it, and two local environments, `dev` and `prod`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.resources import Resources


class Limits(BaseModel):
    """The most an environment allows one endpoint to ask for."""

    cpu: float = 4
    memory_mb: int = 8192
    replicas: int = 4
    gpus: int = 0


class PromotionOrder(BaseModel):
    """A version may be deployed here only once it has served healthy in `after` for
    `minutes`; an admin may override with a reason."""

    after: str
    minutes: float = Field(default=30.0, ge=0)


CONSOLE_USER = "console"  # the user id of whoever types at the console front


class Environment(BaseModel):
    name: str
    target: Literal["local", "cml"] = "local"
    default: Resources = Field(default_factory=lambda: Resources(cpu=1, memory_mb=1024, replicas=1))
    limits: Limits = Field(default_factory=Limits)
    # local target: endpoints of this environment get ports from this range
    port_range: tuple[int, int] = (18000, 18999)
    # local target: "local" serves only models the bot's runtime satisfies (others are
    # refused at build); "uv" serves those others from their own environment, built with uv
    env_manager: Literal["local", "uv"] = "local"
    # cml target: the workspace, and the name of the variable that holds its API v2 key
    url: str = ""
    api_key_env: str = "CML_API_KEY"
    project_id: str = ""
    runtime_identifier: str = ""
    # cml target: "builtin" (our client) or "cmlapi" (the installed cmlapi package); unset,
    # cmlapi inside a CML session, where Cloudera's package is at hand, else builtin
    client: Literal["builtin", "cmlapi"] | None = None
    # models are created with authentication on unless an environment says otherwise
    model_auth: bool = True
    build_timeout_s: float = 1800.0
    deploy_timeout_s: float = 1800.0
    # who may change what serves here: user ids (U0123ABCD) or group handles (@mlops-admins)
    admins: list[str] = Field(default_factory=lambda: [CONSOLE_USER])
    developers: list[str] = Field(default_factory=list)
    # approving a deploy here asks "are you sure?" first; unset: environments named like
    # production (prod, production, prd, live)
    production: bool | None = None
    # versions must have served healthy in another environment first (unset: no order)
    promotion: PromotionOrder | None = None
    # after a switch the endpoint is watched this long; failing health, or more than
    # `max_error_rate` of at least `watch_min_requests` requests answered 5xx, rolls it back
    # to what served before, by itself (0: not watched)
    watch_s: float = Field(default=300.0, ge=0)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    watch_min_requests: int = Field(default=20, ge=1)

    @property
    def is_production(self) -> bool:
        if self.production is not None:
            return self.production
        return self.name.lower() in ("prod", "production", "prd", "live")

    @model_validator(mode="after")
    def _check(self) -> Environment:
        if self.port_range[0] > self.port_range[1]:
            raise ValueError(f"port_range of {self.name} is empty: {self.port_range}")
        if self.target == "cml" and not (self.url and self.project_id):
            raise ValueError(f"environment {self.name} (cml) needs `url` and `project_id`")
        return self


def _embedded_environments() -> list[Environment]:
    return [
        Environment(name="dev", port_range=(18000, 18499)),
        Environment(name="prod", port_range=(18500, 18999)),
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATOPS_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    state_dir: Path = Path(".state")
    database_url: str = ""
    mlflow_tracking_uri: str = ""
    environments: list[Environment] = Field(default_factory=_embedded_environments)
    default_environment: str = "dev"
    # how long a model server may take to load its model and answer /ping
    start_timeout_s: float = 60.0
    # how long a /promote approval request stays open
    approval_ttl_s: float = 24 * 3600.0
    # an operation's hold on its endpoint lapses after this, should its bot die mid-way
    lock_ttl_s: float = 2 * 3600.0
    # a bot process holds an operation this long past its last heartbeat (every third of
    # it); when its holder dies, another process takes the operation over after this
    lease_s: float = Field(default=30.0, gt=0)
    # an operation found unfinished (its bot died) this long after it was asked for is
    # failed instead of resumed; and after this many takeovers, too
    operation_timeout_s: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # how often a bot process looks for queued operations and ones whose holder died
    runner_poll_s: float = Field(default=1.0, gt=0)
    # the longest one call to the MLflow registry waits on a server that refuses or is silent
    registry_wait_s: float = Field(default=30.0, gt=0, le=300)
    # how long a Slack user group's member list is trusted before it is fetched again
    group_cache_ttl_s: float = 300.0
    # registry events: the address MLflow delivers its webhooks to (this bot's
    # `/mlflow/webhook`, as the tracking server reaches it) and the secret they are signed
    # with; without a tracking server (the embedded registry) the bot polls every
    # `registry_poll_s` seconds instead (0: no registry events)
    registry_webhook_url: str = ""
    registry_webhook_secret: SecretStr | None = None
    registry_poll_s: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.state_dir = self.state_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'chatops.db'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.state_dir / 'mlflow.db'}"
        names = [e.name for e in self.environments]
        if len(set(names)) != len(names):
            raise ValueError(f"environment names repeat: {names}")
        if self.default_environment not in names:
            raise ValueError(
                f"default_environment {self.default_environment!r} is not one of {names}"
            )
        for env in self.environments:
            if env.promotion is not None and env.promotion.after not in names:
                raise ValueError(
                    f"{env.name}: promotion.after {env.promotion.after!r} is not one of {names}"
                )
            if env.promotion is not None and env.promotion.after == env.name:
                raise ValueError(f"{env.name}: promotion.after names the environment itself")
        return self

    def environment(self, name: str | None) -> Environment | None:
        wanted = name or self.default_environment
        return next((e for e in self.environments if e.name == wanted), None)

    @property
    def artifact_root(self) -> Path:
        return self.state_dir / "mlartifacts"
