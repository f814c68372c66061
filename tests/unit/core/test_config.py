"""Settings as a team writes them: README's examples work as written; what is wrong is told
one line a problem, naming the variable, the path inside it, what was given, what is
expected; environment names are ones commands can say."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from commands.base import UsageError
from commands.registry import parse, split
from core.config import Settings, SettingsProblem


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No `.env` and no CHATOPS_ variable but the test's own."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CHATOPS_"):
            monkeypatch.delenv(name)


def problem(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsProblem) as caught:
        Settings()
    text = str(caught.value)
    assert "errors.pydantic.dev" not in text and "validation error" not in text
    return text


def test_readme_s_watch_window_example_works_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CHATOPS_ENVIRONMENTS",
        '[{"name": "prod", "watch_s": 600, "max_error_rate": 0.02, "watch_min_requests": 50}]',
    )
    settings = Settings()
    assert settings.default_environment == "prod"  # the only one: commands name it by default
    assert settings.environment(None) is not None


def test_the_default_environment_is_the_first_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().default_environment == "dev"
    monkeypatch.setenv("CHATOPS_ENVIRONMENTS", '[{"name": "staging"}, {"name": "live"}]')
    assert Settings().default_environment == "staging"
    monkeypatch.setenv("CHATOPS_DEFAULT_ENVIRONMENT", "live")
    assert Settings().default_environment == "live"


def test_invalid_json_says_which_variable_and_where(monkeypatch: pytest.MonkeyPatch) -> None:
    text = problem(monkeypatch, CHATOPS_ENVIRONMENTS='[{"name": "prod", "watch_s": 600,}]')
    assert text == (
        "CHATOPS_ENVIRONMENTS is not valid JSON at line 1, column 34 (near "
        '\'od", "watch_s": 600,}]\'): Expecting property name enclosed in double quotes'
    )


def test_each_problem_is_one_line_with_variable_path_given_and_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = problem(
        monkeypatch,
        CHATOPS_ENVIRONMENTS='[{"name": "prod", "port_range": [18000, "x"], "target": "k8s"}]',
        CHATOPS_LEASE_S="-1",
    )
    assert text.splitlines() == [
        "CHATOPS_ENVIRONMENTS[0].target given 'k8s'; expected 'local' or 'cml'",
        "CHATOPS_ENVIRONMENTS[0].port_range[1] given 'x'; expected a valid integer, unable to "
        "parse string as an integer",
        "CHATOPS_LEASE_S given '-1'; expected greater than 0",
    ]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"CHATOPS_DEFAULT_ENVIRONMENT": "qa"},
            "CHATOPS_DEFAULT_ENVIRONMENT given 'qa'; expected one of the environments: dev, prod",
        ),
        (
            {"CHATOPS_ENVIRONMENTS": '[{"name": "prod", "port_range": [9, 1]}]'},
            "CHATOPS_ENVIRONMENTS[0]: port_range given [9, 1]; expected [low, high] with low "
            "<= high",
        ),
        (
            {"CHATOPS_ENVIRONMENTS": '[{"name": "prod", "promotion": {"after": "dev"}}]'},
            "CHATOPS_ENVIRONMENTS[0].promotion.after given 'dev'; expected another of the "
            "environments: prod",
        ),
        (
            {"CHATOPS_ENVIRONMENTS": "[]"},
            "CHATOPS_ENVIRONMENTS given []; expected at least one environment",
        ),
    ],
)
def test_the_settings_own_checks_say_it_the_same_way(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    assert problem(monkeypatch, **variables) == expected


@pytest.mark.parametrize("name", ["my prod", "eu/prod", "-prod", "prod!"])
def test_an_environment_name_no_command_can_say_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # the grammar refuses the name in `/deploy iris v1 to <name>`: the settings refuse it too
    said = parse(*split(f"/deploy iris v1 to {name}"))
    assert isinstance(said, UsageError)
    text = problem(monkeypatch, CHATOPS_ENVIRONMENTS=f'[{{"name": "{name}"}}]')
    assert text == (
        f"CHATOPS_ENVIRONMENTS[0].name given {name!r}; expected a name commands can say: "
        "letters, digits, `.`, `_` or `-`, starting with a letter or digit, at most 128"
    )


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("prod.eu", "expected a registry alias: letters, digits, `_` or `-`, at most 255"),
        ("latest", "the registry reserves `latest` and v<number>; expected another"),
        ("V7", "the registry reserves `latest` and v<number>; expected another"),
    ],
)
def test_an_alias_the_registry_would_refuse_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, alias: str, expected: str
) -> None:
    # else every switch would be told "the registry refused" long after the bot started
    text = problem(monkeypatch, CHATOPS_ENVIRONMENTS=f'[{{"name": "prod", "alias": "{alias}"}}]')
    assert text == f"CHATOPS_ENVIRONMENTS[0].alias given {alias!r}; {expected}"


def test_a_password_given_in_a_wrong_value_is_not_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = problem(
        monkeypatch,
        CHATOPS_REGISTRY_POLL_S="http://alice:hunter22-pass@mlflow:5000",
    )
    assert "hunter22-pass" not in text
    assert text.startswith("CHATOPS_REGISTRY_POLL_S given 'http://***@mlflow:5000'")


ROOT = Path(__file__).resolve().parents[3]


def _readme_table() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])]


def test_env_example_offers_every_setting_readme_s_table_lists() -> None:
    listed = _readme_table()
    assert "CHATOPS_REGISTRY_WEBHOOK_SECRET" in listed and "PORT" in listed
    example = (ROOT / ".env.example").read_text()
    offered = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert sorted(set(listed) - offered) == []


def test_readme_s_table_lists_every_setting_of_the_core() -> None:
    fields = {f"CHATOPS_{name.upper()}" for name in Settings.model_fields}
    assert sorted(fields - set(_readme_table())) == []


def test_finished_jobs_are_kept_as_long_as_the_settings_say(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from core.runtime import Runtime
    from core.store.jobs import JobState
    from tests.clock import FakeClock
    from tests.unit.core.store.test_jobs import FRONTS, KINDS, Asked

    monkeypatch.setenv("CHATOPS_KEEP_DONE_S", "3600")
    clock = FakeClock()
    runtime = Runtime(Settings(state_dir=tmp_path / "state"), clock=clock)
    queue = runtime.jobs

    def ran(key: str) -> str:
        queue.record(key=key, front="slack", job=Asked(text=key), kind="command")
        taken = queue.claim("bot", lease_s=60, fronts=FRONTS, kinds=KINDS)
        assert taken is not None
        queue.finish(taken, JobState.DONE)
        return taken.id

    try:
        old = ran("old")
        clock.advance(2 * 3600)
        ran("new")
        assert queue.get(old) is None
    finally:
        runtime.close()


def test_finished_jobs_are_kept_longer_than_slack_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().keep_done_s == 24 * 3600
    said = problem(monkeypatch, CHATOPS_KEEP_DONE_S="60")
    assert said.startswith("CHATOPS_KEEP_DONE_S given '60'; expected") and "600" in said


def test_an_environment_name_ending_in_a_line_break_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = problem(monkeypatch, CHATOPS_ENVIRONMENTS='[{"name": "prod\\n"}]')  # shown without it
    assert text.startswith(
        "CHATOPS_ENVIRONMENTS[0].name given 'prod'; expected a name commands can say"
    )
