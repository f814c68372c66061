"""`/plan` takes the grammar of the command it plans; `--dry-run` goes anywhere, also with the
long dash chat clients turn `--` into."""

from __future__ import annotations

import pytest

from commands.base import UsageError
from commands.plan import is_plan
from commands.registry import parse, split


@pytest.mark.parametrize(
    "line",
    [
        "/deploy iris v2 to prod --dry-run",
        "/deploy --dry-run iris v2",
        "/deploy iris v2 \u2014dry-run",
        "/scale iris 2 replicas in prod --DRY-RUN",
        "/rollback iris in prod --dry-run",
        "/mlops stop iris --dry-run",
        "/plan deploy iris @champion to prod",
        "/mlops plan scale iris 2cpu",
    ],
)
def test_plans_are_recognised_as_changing_nothing(line: str) -> None:
    found = parse(*split(line))
    assert not isinstance(found, UsageError), found
    assert is_plan(*found)


@pytest.mark.parametrize("line", ["/deploy iris v2 to prod", "/stop iris", "/status"])
def test_commands_without_the_flag_are_no_plans(line: str) -> None:
    found = parse(*split(line))
    assert not isinstance(found, UsageError) and not is_plan(*found)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("/plan", "Say which command to plan: deploy, scale, rollback or stop."),
        ("/plan lock iris", "`lock` cannot be planned: plan deploy, scale, rollback or stop."),
        ("/plan deploy iris", "Say which version of `iris` to deploy: v<N>, <N> or @<alias>."),
        ("/plan scale iris 4", "`4` needs a unit: 4cpu, 4gb, 4mb or 4 replicas."),
    ],
)
def test_a_plan_that_cannot_be_parsed_says_why(line: str, problem: str) -> None:
    found = parse(*split(line))
    assert isinstance(found, UsageError) and found.problem == problem
