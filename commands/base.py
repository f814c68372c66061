"""What every command module shares: the usage error, the context a handler runs in, tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

from core.admission.roles import Actor
from core.config import NAME as NAME  # one rule for names, settings and commands alike
from core.events import EndpointStatus, Notice, Outcome, Refusal, Reporter
from core.marks import command
from core.moments import UTC_ZONE, Zone

if TYPE_CHECKING:  # the front that only parses need not import MLflow
    from core.admission.approvals import ApprovalRequested, Decided
    from core.admission.plans import PlanReport
    from core.oncall.status import Problems
    from core.oncall.timemachine import ServedAt
    from core.registry.runs import Registered
    from core.runtime import Runtime
    from core.store.models import AuditRow
    from core.tokens import Issued, Revoked, TokenList


class CommandName(StrEnum):
    DEPLOY = "deploy"
    SCALE = "scale"
    STATUS = "status"
    REGISTER = "register"
    PROMOTE = "promote"
    APPROVE = "approve"
    REJECT = "reject"
    HISTORY = "history"
    HELP = "help"


@dataclass(frozen=True)
class UsageError:
    """The text could not be understood: what was wrong, the correct form, an example."""

    problem: str
    usage: str = ""
    example: str = ""
    ok: bool = False

    @property
    def text(self) -> str:
        lines = [self.problem]
        if self.usage:
            lines.append(f"Usage: `{command(self.usage)}`")
        if self.example:
            lines.append(f"Example: `{command(self.example)}`")
        return "\n".join(lines)


@dataclass(frozen=True)
class HelpText:
    """Help asked for: every command, or `command` in detail; a front renders it from the
    command table (`commands.registry.describe`)."""

    command: str | None = None
    ok: bool = True


@dataclass(frozen=True)
class StatusReport:
    endpoints: list[EndpointStatus]
    detail: bool
    env: str | None
    ok: bool = True
    problems: Problems | None = None  # what readiness found wrong, for an admin only
    public: bool = False  # asked to be shown to the channel
    page: int = 1  # which part of a list longer than a front shows at once


@dataclass(frozen=True)
class HistoryReport:
    entries: list[AuditRow]
    endpoint: str | None
    ok: bool = True

    @property
    def text(self) -> str:
        if not self.entries:
            return "Nothing recorded yet" + (f" for {self.endpoint}." if self.endpoint else ".")
        return "\n".join(history_line(e) for e in self.entries)


def history_line(e: AuditRow) -> str:
    approver = f", approved by {e.approver}" if e.approver else ""
    op = f" ({e.operation_id})" if e.operation_id else ""
    return (
        f"{e.at:%Y-%m-%d %H:%M:%S} {e.actor_name}: `{e.command}` in {e.env} -> "
        f"{e.outcome}{op}{approver}" + (f" — {e.detail}" if e.detail else "")
    )


Reply: TypeAlias = (
    "Outcome | Notice | Refusal | UsageError | HelpText | StatusReport | HistoryReport"
    " | ApprovalRequested | Decided | Registered | PlanReport | ServedAt"
    " | Issued | TokenList | Revoked"
)


@dataclass(frozen=True)
class Context:
    """Who asks, through which reporter progress goes, and the core that does the work.

    A front may say more: the namespace its commands are typed through (`/mlops deploy …`),
    that the request is taken again after the process that first ran it died (`resume`), and
    where a decided promotion request reports (`on_decided`: the front shows the verdict on
    the request and hands back the reporter of its thread), the time zone the asker
    reads times in (`zone`), whether its answer is for the asker's eyes only (`private`), and
    whether a deploy they may only ask for becomes a request (`or_request`)."""

    core: Runtime
    actor: Actor
    reporter: Reporter
    text: str
    namespace: str | None = None
    resume: bool = False
    on_decided: Callable[[Decided], Reporter] | None = None
    # the asker's time zone, asked for only when a command reads or shows a time; UTC
    # when the front knows none
    zone: Callable[[], Zone] | None = None
    # the front shows the answer to the asker alone (Slack: ephemeral or in their DM), so it
    # may show a secret made for them (a personal API token)
    private: bool = False
    # the asker says only "serve this" (MLflow's `create_deployment`): a deploy they may not
    # run but may ask for becomes a promotion request (the core decides which)
    or_request: bool = False

    def time_zone(self) -> Zone:
        return self.zone() if self.zone is not None else UTC_ZONE


MAX_TEXT = 500


def check_name(value: str, what: str, usage: str, example: str) -> UsageError | None:
    if NAME.match(value):
        return None
    return UsageError(
        f"`{_shown(value)}` is not a valid {what}: use letters, digits, `.`, `_` or `-`, "
        "starting with a letter or digit",
        usage,
        example,
    )


def _shown(value: str, limit: int = 40) -> str:
    value = value.replace("`", "'")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def shown(value: str) -> str:
    """A piece of user text fit to quote back: no backticks, not too long."""
    return _shown(value)


def tokens(text: str) -> list[str]:
    return text.split()


# a flag as typed (`--dry-run`), or as chat clients turn its two dashes into one long dash
_FLAG = re.compile(r"^(?:--|\u2014|\u2013|\u2014-|\u2013-)([A-Za-z][A-Za-z-]*)$")
DRY_RUN = frozenset({"dry-run", "dryrun"})


def flag(word: str) -> str | None:
    """The flag `word` is, lower-case and without its dashes (`--Dry-Run`, `—dry-run`:
    "dry-run"); None when it is no flag (a lone dash in a reason is none)."""
    match = _FLAG.match(word)
    return match.group(1).lower() if match else None


# curly quotes, as Slack clients type them
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def take_flag(text: str, name: str) -> tuple[str, str | None] | None:
    """`text` without its `--name <value>`, and the value (None when the flag is not there);
    None when the value's quote never closes. The value is quoted, or the words after the
    flag up to the next `--flag`, its spaces collapsed."""
    words = text.translate(_QUOTES).split(" ")
    at = next((i for i, w in enumerate(words) if flag(w) == name), None)
    if at is None:
        return text, None
    before, after = words[:at], " ".join(words[at + 1 :]).strip()
    if after[:1] in ('"', "'"):
        close = after.find(after[0], 1)
        if close < 0:
            return None
        value, rest = after[1:close], after[close + 1 :]
    else:
        taken = after.split()
        cut = next((i for i, w in enumerate(taken) if flag(w) is not None), len(taken))
        value, rest = " ".join(taken[:cut]), " ".join(taken[cut:])
    return " ".join([*before, rest]).strip(), " ".join(value.split())


def take_word(text: str, name: str) -> tuple[str, str | None]:
    """`text` without its `--name <word>`, and the word ("" when the flag ends the text, None
    when the flag is not there)."""
    words = tokens(text)
    at = next((i for i, w in enumerate(words) if flag(w) == name), None)
    if at is None:
        return text, None
    value = words[at + 1] if at + 1 < len(words) and flag(words[at + 1]) is None else ""
    kept = words[:at] + words[at + 1 + (1 if value else 0) :]
    return " ".join(kept), value


def dry_run(text: str) -> tuple[str, bool]:
    """`text` without its `--dry-run` flag (wherever it was typed), and whether it had one."""
    words = tokens(text)
    kept = [w for w in words if flag(w) not in DRY_RUN]
    return " ".join(kept), len(kept) != len(words)
