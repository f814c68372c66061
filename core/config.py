"""Settings, read from the environment or `.env` (pydantic-settings).

Everything has an embedded default, so the bot runs with no configuration at all: state in
`./.state`, an MLflow registry in SQLite inside it, and two local environments, `dev` and `prod`.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as UnreadableSetting

from core.errors import ConfigError
from core.resources import Resources

PREFIX = "CHATOPS_"
# what a command can name (a model, an endpoint, an environment): the grammar's rule
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")  # \Z: "iris\n" is no name
NAME_RULE = "letters, digits, `.`, `_` or `-`, starting with a letter or digit, at most 128"
# what MLflow accepts as a registered model's alias
ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
ALIAS_RULE = "letters, digits, `_` or `-`, at most 255"
VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_SHOWN = 60  # how much of a wrong value a settings error quotes


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


MAX_CANARY_STEPS = 5


def canary_steps(steps: list[int]) -> list[int]:
    """`steps` if they make a canary (1 to 99 percent, rising, at most five), else
    ValueError saying why."""
    if len(steps) > MAX_CANARY_STEPS:
        raise ValueError(f"at most {MAX_CANARY_STEPS} canary steps; 100% comes after the last")
    for share in steps:
        if not 1 <= share <= 99:
            raise ValueError(
                f"{share}% is not a canary share: expected 1 to 99 (100 is the switch)"
            )
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError("canary shares must rise step by step, e.g. 10,50")
    return steps


class Thresholds(BaseModel):
    """A candidate that passes one of these at any step of a canary is aborted by itself;
    judged once it answered `min_requests` (unset: not judged on that)."""

    error_rate: float | None = Field(default=0.05, ge=0, le=1)
    p99_ms: float | None = Field(default=None, gt=0)
    # the share of shadowed predictions that differ from the serving version's
    disagreement: float | None = Field(default=None, ge=0, le=1)
    min_requests: int = Field(default=20, ge=1)


class Rollout(BaseModel):
    """How a deploy here reaches all traffic: `steps` (percent of requests the new version
    answers, each for `bake_s`) and `shadow` (percent of requests copied to it, its answers
    compared). No steps and no shadow: the switch moves all traffic at once."""

    steps: list[int] = Field(default_factory=list)
    shadow: int = Field(default=0, ge=0, le=100)
    bake_s: float = Field(default=300.0, ge=0)
    # after `bake_s` the next step begins by itself; else an admin promotes it
    auto_promote: bool = False
    # numbers in predictions agree within this (absolute)
    tolerance: float = Field(default=0.0, ge=0)
    abort: Thresholds = Field(default_factory=Thresholds)

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        return canary_steps(steps)


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
    # the registry alias that names what serves here (`@prod`): the bot moves it to the
    # version each switch leaves serving, and announces it when it moves outside the bot
    alias: str | None = None
    # canary steps and shadow traffic of a deploy here (local target only)
    rollout: Rollout = Field(default_factory=Rollout)

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not NAME.match(name):
            raise ValueError(f"expected a name commands can say: {NAME_RULE}")
        return name

    @field_validator("alias")
    @classmethod
    def _alias(cls, alias: str | None) -> str | None:
        if alias is not None and not ALIAS.match(alias):
            raise ValueError(f"expected a registry alias: {ALIAS_RULE}")
        if alias is not None and (alias.lower() == "latest" or VERSION_ALIAS.match(alias)):
            raise ValueError("the registry reserves `latest` and v<number>; expected another")
        return alias

    @property
    def is_production(self) -> bool:
        if self.production is not None:
            return self.production
        return self.name.lower() in ("prod", "production", "prd", "live")

    @model_validator(mode="after")
    def _check(self) -> Environment:
        if self.port_range[0] > self.port_range[1]:
            low, high = self.port_range
            raise ValueError(
                f"port_range given [{low}, {high}]; expected [low, high] with low <= high"
            )
        if self.target == "cml" and not (self.url and self.project_id):
            raise ValueError("target cml given without `url` or `project_id`; expected both")
        if self.target == "cml" and (self.rollout.steps or self.rollout.shadow):
            raise ValueError(
                "rollout steps or shadow given for a cml environment; canary and shadow traffic "
                "need the local target (a Workbench model serves one deployment at a time)"
            )
        return self


def _embedded_environments() -> list[Environment]:
    return [
        Environment(name="dev", port_range=(18000, 18499)),
        Environment(name="prod", port_range=(18500, 18999)),
    ]


class SettingsProblem(ConfigError, ValueError):
    """Settings that cannot work, one line per problem: the variable, the path inside it,
    what was given and what is expected (scrubbed, as every ChatOpsError)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    def __init__(self, **values: Any) -> None:
        """SettingsProblem when the environment, `.env` or `values` make settings that
        cannot work."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsProblem("\n".join(_line(e) for e in exc.errors())) from None
        except UnreadableSetting as exc:
            raise SettingsProblem(_unreadable(exc)) from None

    state_dir: Path = Path(".state")
    database_url: str = ""
    mlflow_tracking_uri: str = ""
    environments: list[Environment] = Field(default_factory=_embedded_environments)
    # unset: the first environment
    default_environment: str = ""
    # the name the console shows for its user (id `console`); unset: the login name
    console_user: str = ""
    # how long a model server may take to load its model and answer /ping
    start_timeout_s: float = 60.0
    # how long a /promote approval request stays open
    approval_ttl_s: float = 24 * 3600.0
    # how long a personal API token (`/mlops token`) works after it was made
    api_token_ttl_s: float = Field(default=90 * 24 * 3600.0, gt=0)
    # an operation's hold on its endpoint lapses after this, should its bot die mid-way
    lock_ttl_s: float = 2 * 3600.0
    # a bot process holds an operation this long past its last heartbeat (every third of
    # it); when its holder dies, another process takes the operation over after this
    lease_s: float = Field(default=30.0, gt=0)
    # an operation found unfinished (its bot died) this long after it was asked for is
    # failed instead of resumed; and after this many takeovers, too
    operation_timeout_s: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # how often a canary's counts are read, judged and shown, and its gate looked at
    canary_look_s: float = Field(default=5.0, gt=0)
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
    # finished jobs (and with them the keys that make Slack's retries record nothing), the
    # answers sent for them and remembered deliveries are deleted this long after they ended;
    # the audit trail, operations and what served are kept
    keep_done_s: float = Field(default=24 * 3600.0, ge=600)

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.state_dir = self.state_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'chatops.db'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.state_dir / 'mlflow.db'}"
        names = [e.name for e in self.environments]
        listed = ", ".join(names)
        if not names:
            raise ValueError(f"{PREFIX}ENVIRONMENTS given []; expected at least one environment")
        if len(set(names)) != len(names):
            raise ValueError(f"{PREFIX}ENVIRONMENTS: names given {listed}; expected each name once")
        if not self.default_environment:
            self.default_environment = names[0]
        if self.default_environment not in names:
            raise ValueError(
                f"{PREFIX}DEFAULT_ENVIRONMENT given {self.default_environment!r}; expected one "
                f"of the environments: {listed}"
            )
        for n, env in enumerate(self.environments):
            after = env.promotion.after if env.promotion is not None else None
            if after is not None and (after not in names or after == env.name):
                raise ValueError(
                    f"{PREFIX}ENVIRONMENTS[{n}].promotion.after given {after!r}; expected "
                    f"another of the environments: {listed}"
                )
        return self

    def environment(self, name: str | None) -> Environment | None:
        wanted = name or self.default_environment
        return next((e for e in self.environments if e.name == wanted), None)

    @property
    def artifact_root(self) -> Path:
        return self.state_dir / "mlartifacts"

    @property
    def serves_locally(self) -> bool:
        """Whether an environment serves on this machine: only then is the model-server
        runtime (the zygote) started."""
        return any(env.target == "local" for env in self.environments)


def _line(error: Any) -> str:
    """One pydantic error as one line: `CHATOPS_ENVIRONMENTS[0].port_range[1] given 'x';
    expected a valid integer`."""
    loc, message = error["loc"], str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # the settings' own checks name their variable
        return message
    where = f"{PREFIX}{str(loc[0]).upper()}" + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:]
    )
    if error["type"] == "value_error":  # our checks say what is expected (and was given)
        given = error.get("input")
        return (
            f"{where} given {_shown(given)}; {message}"
            if isinstance(given, str)
            else (f"{where}: {message}")
        )
    expected = message.removeprefix("Input should be ").removeprefix("Field ")
    if "secret" in str(loc[0]):
        return f"{where}: expected {expected}"
    return f"{where} given {_shown(error.get('input'))}; expected {expected}"


def _unreadable(exc: UnreadableSetting) -> str:
    """A variable whose text could not be read at all: where in it, and what is expected."""
    field = re.search(r'field "(\w+)"', str(exc))
    where = f"{PREFIX}{field.group(1).upper()}" if field else "a CHATOPS_ setting"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        near = cause.doc[max(0, cause.pos - 20) : cause.pos + 20]
        return (
            f"{where} is not valid JSON at line {cause.lineno}, column {cause.colno} (near "
            f"{_shown(near)}): {cause.msg}"
        )
    return f"{where} could not be read ({cause or exc}); expected JSON"


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…")
