"""The requests the Slack front acknowledges, as typed jobs: a slash command, a mention of the
bot, a direct message to it, a button click, the App Home opened.

The front records one of these before it acks (`core.store.jobs.JobQueue`: on SQLite in the
intake file beside the state database); the worker reads it back with `job_of` and runs it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from bot.slack.rendering.ids import ALIAS_ANNOUNCED, CANARY, DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED
from commands.base import NAME
from commands.naming import NAMESPACE, Naming
from commands.registry import split
from core.registry.events import version_number

FRONT = "slack"


class _Named(BaseModel):
    """How the front that recorded a job names commands (its settings then): what the job's
    answers say to type."""

    namespace: str = NAMESPACE
    direct: bool = True

    @property
    def naming(self) -> Naming:
        return Naming(self.namespace, self.direct)


class _Slash(_Named):
    command: str
    text: str = ""
    user_id: str
    channel_id: str = ""
    response_url: str = ""

    @property
    def line(self) -> str:
        return f"{self.command} {self.text}".strip()

    @property
    def entry(self) -> tuple[str, str]:
        """The grammar's command and its arguments."""
        return split(self.line, namespace=self.namespace)


class SlashCommand(_Slash):
    """`/deploy iris v1` as Slack sent it (also `/approve <id>` typed by hand)."""

    kind: Literal["command"] = "command"


class Query(_Slash):
    """`status`, `history`: quick, never queued behind deploys."""

    kind: Literal["query"] = "query"


class _Typed(_Named):
    """Text typed to the bot in a message: the same grammar as the slash commands."""

    text: str
    user_id: str
    channel_id: str
    ts: str = ""
    # the thread it was typed in: answers and progress go there
    thread_ts: str | None = None
    response_url: str = ""  # there is none: answers go to the channel or thread

    @property
    def line(self) -> str:
        return self.text

    @property
    def entry(self) -> tuple[str, str]:
        return split(self.text, namespace=self.namespace)


class Mention(_Typed):
    """`@chatops deploy iris v3` in a channel or a thread (the mention itself left out)."""

    kind: Literal["mention"] = "mention"


class DirectMessage(_Typed):
    """`deploy iris v3` in a direct message to the bot."""

    kind: Literal["dm"] = "dm"


class HomeOpened(_Named):
    """Someone opened the bot's App Home: it is published for them."""

    kind: Literal["home"] = "home"
    user_id: str
    response_url: str = ""

    @property
    def line(self) -> str:
        return "(App Home)"


class ButtonClick(_Named):
    """Approve or Reject clicked on an approval request's message."""

    kind: Literal["decision"] = "decision"
    approve: bool
    request: str
    user_id: str
    channel_id: str = ""
    response_url: str = ""

    @property
    def line(self) -> str:
        verb = "approve" if self.approve else "reject"
        return f"{self.naming.typed(f'{verb} {self.request}')} (button)"

    @property
    def entry(self) -> tuple[str, str]:
        """The command the button stands for: `/approve <request>` or `/reject <request>`."""
        return ("approve" if self.approve else "reject"), self.request


class RegistryNotice(_Named):
    """A registry event MLflow delivered to the front's webhook (its signature checked): a
    worker announces it, unless another bot process did."""

    kind: Literal["registry"] = "registry"
    event: str  # MLflow's name for it: `model_version.created`, …
    model: str
    version: int
    alias: str = ""
    tag: str = ""
    value: str = ""
    delivery: str = ""  # MLflow's delivery id
    user_id: str = ""
    response_url: str = ""

    @property
    def line(self) -> str:
        return f"(registry event {self.event} of {self.model} v{self.version})"


# what each button of an announcement stands for
_ANNOUNCED = {DEPLOY_ANNOUNCED: "deploy", PROMOTE_ANNOUNCED: "promote", ALIAS_ANNOUNCED: "alias"}


class AnnouncedAction(_Named):
    """*Deploy to dev* or *Request promotion to prod* clicked on a registry announcement, or
    *Deploy v7 to prod* or *Move @prod back to v6* on a drifted alias's: run as the command
    it stands for, by whoever clicked, its progress in the announcement's thread."""

    kind: Literal["announced"] = "announced"
    action: Literal["deploy", "promote", "alias"]
    model: str
    version: int
    env: str
    user_id: str
    channel_id: str = ""
    thread_ts: str | None = None
    response_url: str = ""

    @property
    def line(self) -> str:
        if self.action == "alias":  # moved back only while what it is moved to serves
            return f"/{self.namespace} alias {self.model} v{self.version} in {self.env} if serving"
        return f"/{self.namespace} {self.action} {self.model} v{self.version} to {self.env}"

    @property
    def entry(self) -> tuple[str, str]:
        return split(self.line, namespace=self.namespace)

    @classmethod
    def of_click(cls, body: dict[str, Any], *, namespace: str) -> AnnouncedAction | None:
        """The click as the command it stands for; None when the button's value is not one
        the bot wrote. The value is whatever the clicker's client sends: a name that is not
        one word would put more into the command line than the button shows."""
        action = (body.get("actions") or [{}])[0]
        try:
            value = json.loads(str(action.get("value", "")))
            names = (str(value["model"]), str(value["env"]))
            kind = _ANNOUNCED.get(str(action.get("action_id")))
            if kind is None or not all(NAME.match(n) for n in names):
                return None
            return cls(
                action=kind,  # type: ignore[arg-type]  # one of the Literal's, by _ANNOUNCED
                model=str(value["model"]),
                version=clicked_version(value["version"]),
                env=str(value["env"]),
                user_id=str((body.get("user") or {}).get("id", "")),
                channel_id=str((body.get("channel") or {}).get("id", "")),
                thread_ts=str((body.get("container") or {}).get("message_ts") or "") or None,
                response_url=str(body.get("response_url", "")),
                namespace=namespace,
            )
        except (ValueError, TypeError, KeyError):
            return None


def clicked_version(raw: object) -> int:
    """The version a button's value names: the whole number the bot wrote there. A forged
    `2.5`, `"2"` or `true` names none (`int()` would read 2, 2 and 1): ValueError."""
    number = (
        version_number(str(raw)) if isinstance(raw, int) and not isinstance(raw, bool) else None
    )
    if number is None:
        raise ValueError(f"a button's version is a whole number from 1, not {raw!r}")
    return number


class RollbackClick(_Named):
    """Roll back clicked on an endpoint announced down (it served `version` then)."""

    kind: Literal["rollback-click"] = "rollback-click"
    env: str
    endpoint: str
    version: int
    user_id: str
    channel_id: str = ""
    thread_ts: str | None = None  # the announcement: the rollback reports in its thread
    response_url: str = ""

    @property
    def line(self) -> str:
        typed = self.naming.typed(f"rollback {self.endpoint} in {self.env}")
        return f"{typed} (button, from v{self.version})"

    @property
    def entry(self) -> tuple[str, str]:
        """The command the button stands for: a rollback only while `version` serves."""
        return "rollback", f"{self.endpoint} in {self.env} from v{self.version}"


class CanaryClick(_Named):
    """Promote, Hold or Abort clicked on a canary's card: `/canary` as typed, only while the
    canary is still at the share the card showed."""

    kind: Literal["canary-click"] = "canary-click"
    env: str
    endpoint: str
    decision: Literal["promote", "hold", "abort"]
    at: int
    user_id: str
    channel_id: str = ""
    thread_ts: str | None = None  # the deploy's thread, where the card is
    response_url: str = ""

    @property
    def line(self) -> str:
        typed = self.naming.typed(f"canary {self.endpoint} {self.decision} in {self.env}")
        return f"{typed} (button, at {self.at}%)"

    @property
    def entry(self) -> tuple[str, str]:
        return "canary", f"{self.endpoint} {self.decision} in {self.env} at {self.at}%"

    @classmethod
    def of_click(cls, body: dict[str, Any]) -> CanaryClick | None:
        """The click as the command it stands for; None when its value is not one the bot
        wrote (names it would not take, a decision it does not know or not the button's, a
        share that is not a whole percent)."""
        action = (body.get("actions") or [{}])[0]
        try:
            value = json.loads(str(action.get("value") or ""))
            names = (str(value["endpoint"]), str(value["env"]))
            if not all(NAME.match(n) for n in names):
                return None
            # a Hold button whose value says abort would abort without the confirm dialog
            if action.get("action_id") != f"{CANARY}_{value['decision']}":
                return None
            at = value["at"]
            if type(at) is not int or not 0 <= at <= 100:  # 10.5 or true is no share it wrote
                return None
            message = body.get("message") or {}
            return cls(
                env=names[1],
                endpoint=names[0],
                decision=value["decision"],
                at=at,
                user_id=str((body.get("user") or {}).get("id", "")),
                channel_id=str((body.get("channel") or {}).get("id", "")),
                thread_ts=str(message.get("thread_ts") or message.get("ts") or "") or None,
                response_url=str(body.get("response_url", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


class ApiCall(_Named):
    """A call to the HTTP API (`/api/v1`, MLflow's `mlflow deployments`) by the owner of a
    token, as the command it stands for (`line`, built from names the API checked); the
    worker runs it like a typed line and records its answer for the waiting call."""

    kind: Literal["api"] = "api"
    call: Literal["create", "update", "delete", "list", "get"]
    line: str
    user_id: str
    token_id: str = ""  # which token: never the secret
    env: str
    name: str = ""
    wait: bool = False  # a developer's request: answer once it was decided
    channel_id: str = ""  # where operations and requests report (empty: the asker's DM)
    response_url: str = ""

    @property
    def entry(self) -> tuple[str, str]:
        return split(self.line, namespace=self.namespace)


# what a job is queued as (`JobRow.kind`): quick queries never wait behind operations
QUERIES = frozenset({"query"})  # registry notices too: announcing never waits on a deploy
OPERATIONS = frozenset({"command", "decision"})
Typed = Mention | DirectMessage
AnyJob = (
    SlashCommand
    | Query
    | Mention
    | DirectMessage
    | ButtonClick
    | HomeOpened
    | RegistryNotice
    | AnnouncedAction
    | RollbackClick
    | CanaryClick
    | ApiCall
)
_JOB: TypeAdapter[AnyJob] = TypeAdapter(Annotated[AnyJob, Field(discriminator="kind")])


def job_of(payload: dict[str, Any]) -> AnyJob:
    """The job a front recorded; ValueError (pydantic's) when it is not one."""
    return _JOB.validate_python(payload)
