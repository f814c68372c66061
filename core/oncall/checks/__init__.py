"""`chatops check`: proves each environment, the registry, Slack and the state database ready
before the first deploy. Each check is a value (`Finding`); a `Report` holds them in order.

    report = Report(environment_findings(settings) + store_findings(settings))
    report.ok          # False when any finding is a problem
    report.summary()   # one paragraph for the log at start-up

No finding ever holds a secret: every text is scrubbed when the finding is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from core.scrub import scrub


def env_scope(name: str) -> str:
    """The scope of every finding about the environment `name`."""
    return f"env {name}"


class Verdict(StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    SKIPPED = "skipped"  # not checked, because a check it depends on failed or it does not apply


@dataclass(frozen=True)
class Finding:
    """One row of the check: what was checked (`scope`, `check`), what was found (`detail`)
    and, for a problem, what to do about it (`fix`)."""

    scope: str
    check: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", scrub(self.detail))
        object.__setattr__(self, "fix", scrub(self.fix))

    @classmethod
    def ok(cls, scope: str, check: str, detail: str) -> Finding:
        return cls(scope, check, Verdict.OK, detail)

    @classmethod
    def problem(cls, scope: str, check: str, detail: str, fix: str) -> Finding:
        return cls(scope, check, Verdict.PROBLEM, detail, fix)

    @classmethod
    def skipped(cls, scope: str, check: str, detail: str) -> Finding:
        return cls(scope, check, Verdict.SKIPPED, detail)


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    def __init__(self, findings: Iterable[Finding]) -> None:
        object.__setattr__(self, "findings", tuple(findings))

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.verdict is Verdict.PROBLEM)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One paragraph: how many checks passed, and each problem with what to do."""
        scopes = list(dict.fromkeys(f.scope for f in self.findings))
        passed = sum(f.verdict is Verdict.OK for f in self.findings)
        head = f"Readiness: {passed} of {len(self.findings)} checks passed over {', '.join(scopes)}"
        if self.ok:
            return head + "; nothing to fix."
        told = "; ".join(f"{f.scope} {f.check}: {f.detail} -> {f.fix}" for f in self.problems)
        count = len(self.problems)
        return f"{head}; {count} problem(s): {told}. `chatops check` shows the table."
