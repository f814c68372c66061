"""`chatops check` against the CML emulator over HTTP, the Slack Web API emulator, a real
MLflow registry and real SQLite state databases."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID, MlflowRuns
from cmlapi_support import RecordingProxy

from bot.check import NEEDED_SCOPES, log_readiness, slack_findings
from bot.cli import main
from bot.slack.manifest import manifest
from bot.slack.settings import Mode, SlackSettings
from core.config import Environment, Settings
from core.oncall.checks import Finding, Verdict
from core.oncall.checks.cml import cml_findings
from core.oncall.checks.readiness import readiness
from core.store import migrate
from core.targets.cml import CMLClient
from core.targets.cml.models import CreateModelRequest
from emulators.cml import RunningEmulator, start_emulator
from emulators.cml.workspace import DEFAULT_RUNTIMES
from tests.slack_api.emulator import SlackEmulator

pytest_plugins = ["conftest_target", "conftest_cmlapi"]  # the fixture cmlapi

KEY_VAR = "CHATOPS_CHECK_CML_KEY"
BOT_TOKEN = "xoxb-4242-check-token-0a1b2c"
SIGNING_SECRET = "c0ffee5ecret0f0r0check0nly"
APP_TOKEN = "xapp-1-A0CHECK-4242-abcdef0123"
RUNTIME = str(DEFAULT_RUNTIMES[-1]["image_identifier"])
THEIRS = "7h31-r5a1-b2c3-d4e5"


@pytest.fixture
def workspace(mlflow_runs: MlflowRuns) -> Iterator[RunningEmulator]:
    """A workspace with our project and a private project of another user."""
    running = start_emulator(
        tracking_uri=mlflow_runs.tracking_uri,
        api_key=API_KEY,
        projects=[
            {"name": "demo", "id": PROJECT_ID},
            {"name": "theirs", "id": THEIRS, "owner": "someone-else"},
        ],
    )
    yield running
    running.stop()


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(bot_token=BOT_TOKEN).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate.upgrade(url)
    return url


def _env(workspace: RunningEmulator, **changes: str) -> Environment:
    fields = {
        "name": "prod",
        "target": "cml",
        "url": workspace.url,
        "api_key_env": KEY_VAR,
        "project_id": PROJECT_ID,
        "runtime_identifier": RUNTIME,
        **changes,
    }
    return Environment.model_validate(fields)


def _rows(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_a_ready_workspace_passes_every_check(
    workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    rows = _rows(cml_findings(_env(workspace)))
    assert {check: f.verdict for check, f in rows.items()} == {
        "URL": Verdict.OK,
        "API key": Verdict.OK,
        "project": Verdict.OK,
        "runtime": Verdict.OK,
        "resources": Verdict.OK,
    }
    assert f"demo ({PROJECT_ID})" in rows["project"].detail


def test_a_wrong_key_is_a_401_row_and_nothing_after_it_is_guessed(
    workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, "not-the-workspace-key")
    rows = _rows(cml_findings(_env(workspace)))
    assert rows["URL"].verdict is Verdict.OK
    assert rows["API key"].verdict is Verdict.PROBLEM
    assert "HTTP 401" in rows["API key"].detail
    assert f"${KEY_VAR}" in rows["API key"].fix
    assert (rows["project"].verdict, rows["runtime"].verdict) == (Verdict.SKIPPED,) * 2
    assert "not-the-workspace-key" not in repr(rows)


def test_a_key_without_api_access_is_told_apart_from_a_wrong_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the emulator knows no such user; CML answers 403 with the gateway's error body
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"code": 7, "message": "permission denied"})

    monkeypatch.setenv(KEY_VAR, API_KEY)
    env = Environment(name="prod", target="cml", url="http://cml.invalid", project_id="p")
    env = env.model_copy(update={"api_key_env": KEY_VAR})
    rows = _rows(cml_findings(env, transport=httpx.MockTransport(forbidden)))
    assert rows["API key"].verdict is Verdict.PROBLEM
    assert "HTTP 403" in rows["API key"].detail
    assert "refused" not in rows["API key"].detail


def test_an_unknown_project_and_another_users_private_project_are_told_apart(
    workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    missing = _rows(cml_findings(_env(workspace, project_id="n0ne-0f-th3s3")))["project"]
    assert missing.verdict is Verdict.PROBLEM
    assert missing.detail == "no project n0ne-0f-th3s3 in this workspace"
    private = _rows(cml_findings(_env(workspace, project_id=THEIRS)))["project"]
    assert private.verdict is Verdict.PROBLEM
    assert "HTTP 403" in private.detail
    assert "collaborator" in private.fix


def test_an_unknown_runtime_is_answered_with_the_closest_ones(
    workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    typo = RUNTIME.replace("python3.11", "python3.12")
    row = _rows(cml_findings(_env(workspace, runtime_identifier=typo)))["runtime"]
    assert row.verdict is Verdict.PROBLEM
    assert typo in row.detail
    assert f"closest: {RUNTIME}" in row.fix


def test_a_runtimes_project_without_a_runtime_fails_with_suggestions(
    workspace: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    row = _rows(cml_findings(_env(workspace, runtime_identifier="")))["runtime"]
    assert row.verdict is Verdict.PROBLEM
    assert "uses ML runtimes" in row.detail
    newest = [str(r["image_identifier"]) for r in DEFAULT_RUNTIMES if "3.11" in r["kernel"]]
    assert all(identifier in row.fix for identifier in newest)


def test_an_unreachable_url_skips_what_needs_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv(KEY_VAR, API_KEY)
    env = Environment.model_validate(
        {
            "name": "prod",
            "target": "cml",
            "url": f"http://127.0.0.1:{port}",
            "api_key_env": KEY_VAR,
            "project_id": PROJECT_ID,
        }
    )
    rows = _rows(cml_findings(env))
    assert rows["URL"].verdict is Verdict.PROBLEM
    assert [rows[c].verdict for c in ("API key", "project", "runtime")] == [Verdict.SKIPPED] * 3


def test_slack_token_scopes_and_mode(slack: SlackEmulator) -> None:
    http = SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url)
    assert [f.verdict for f in slack_findings(http, Mode.HTTP)] == [Verdict.OK] * 3
    assert slack.calls_to("auth.test")
    # an app installed from manifest.yml has exactly what the bot needs
    slack.scopes = manifest(http_url="https://bot.example.com")["oauth_config"]["scopes"]["bot"]
    assert [f.verdict for f in slack_findings(http, Mode.HTTP)] == [Verdict.OK] * 3

    slack.scopes = [s for s in NEEDED_SCOPES if s not in ("im:write", "usergroups:read")]
    scopes = _rows(slack_findings(http, Mode.HTTP))["scopes"]
    assert scopes.verdict is Verdict.PROBLEM
    assert scopes.detail == "missing usergroups:read, im:write"

    wrong = SlackSettings(bot_token="xoxb-0-wrong", app_token=APP_TOKEN, api_url=slack.api_url)
    rows = _rows(slack_findings(wrong, Mode.SOCKET))
    assert rows["token"].verdict is Verdict.PROBLEM
    assert "invalid_auth" in rows["token"].detail
    assert rows["socket mode"].verdict is Verdict.OK

    no_app = SlackSettings(bot_token=BOT_TOKEN, app_token="xoxb-not-app", api_url=slack.api_url)
    assert _rows(slack_findings(no_app, Mode.SOCKET))["socket mode"].verdict is Verdict.PROBLEM


def test_a_state_database_not_migrated_is_a_problem(
    tmp_path: Path, mlflow_runs: MlflowRuns
) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x TEXT)")
    settings = Settings(
        state_dir=tmp_path,
        database_url=f"sqlite:///{path}",
        mlflow_tracking_uri=mlflow_runs.tracking_uri,
    )
    row = readiness(settings).findings[-1]
    assert (row.scope, row.verdict) == ("database", Verdict.PROBLEM)
    assert "chatops db upgrade" in row.fix
    migrate.upgrade(settings.database_url)
    assert readiness(settings).findings[-1].verdict is Verdict.OK


def test_chatops_check_on_a_new_state_directory_exits_0(
    workspace: RunningEmulator,
    slack: SlackEmulator,
    mlflow_runs: MlflowRuns,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fresh = tmp_path / "new-state"  # not made yet: the bot has never run here
    _cli_env(
        monkeypatch,
        tmp_path,
        workspace=workspace,
        slack=slack,
        database=f"sqlite:///{fresh / 'chatops.db'}",
        registry=mlflow_runs.tracking_uri,
        key=API_KEY,
    )
    assert main(["check"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "FAIL" not in out and "new and empty" in out
    assert not (fresh / "chatops.db").exists()  # the check reads; the bot creates it


def _cli_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    workspace: RunningEmulator,
    slack: SlackEmulator,
    database: str,
    registry: str,
    key: str,
) -> None:
    env = {
        "name": "prod",
        "target": "cml",
        "url": workspace.url,
        "api_key_env": KEY_VAR,
        "project_id": PROJECT_ID,
        "runtime_identifier": RUNTIME,
    }
    for name, value in {
        "CHATOPS_ENVIRONMENTS": json.dumps([env]),
        "CHATOPS_DEFAULT_ENVIRONMENT": "prod",
        "CHATOPS_STATE_DIR": str(tmp_path / "state"),
        "CHATOPS_DATABASE_URL": database,
        "CHATOPS_MLFLOW_TRACKING_URI": registry,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        KEY_VAR: key,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)


def test_chatops_check_prints_a_table_and_exits_0_when_all_is_ready(
    workspace: RunningEmulator,
    slack: SlackEmulator,
    database: str,
    mlflow_runs: MlflowRuns,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_env(
        monkeypatch,
        tmp_path,
        workspace=workspace,
        slack=slack,
        database=database,
        registry=mlflow_runs.tracking_uri,
        key=API_KEY,
    )
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert "11 of 11 checks passed" in out
    for secret in (API_KEY, BOT_TOKEN, SIGNING_SECRET):
        assert secret not in out


def test_chatops_check_exits_1_naming_the_refused_key_without_showing_it(
    workspace: RunningEmulator,
    slack: SlackEmulator,
    database: str,
    mlflow_runs: MlflowRuns,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "cmlkey-wr0ng-9e8d7c6b5a"
    _cli_env(
        monkeypatch,
        tmp_path,
        workspace=workspace,
        slack=slack,
        database=database,
        registry=mlflow_runs.tracking_uri,
        key=wrong,
    )
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert f"${KEY_VAR} was refused (HTTP 401)" in " ".join(out.split())
    assert wrong not in out and API_KEY not in out


def test_the_start_up_log_says_in_one_paragraph_what_is_not_ready(
    workspace: RunningEmulator,
    slack: SlackEmulator,
    mlflow_runs: MlflowRuns,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(KEY_VAR, "cmlkey-wr0ng-9e8d7c6b5a")
    settings = Settings(
        state_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        mlflow_tracking_uri=mlflow_runs.tracking_uri,
        environments=[_env(workspace)],
        default_environment="prod",
    )
    http = SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, api_url=slack.api_url)
    with caplog.at_level(logging.INFO, logger="chatops.check"):
        log_readiness(settings, http, Mode.HTTP).join(timeout=60)
    [record] = [r for r in caplog.records if r.name == "chatops.check"]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert "1 problem(s)" in text  # the key; a new state database is not one
    assert "API key" in text and "no schema yet" not in text and "db upgrade" not in text
    assert "\n" not in text


def test_the_check_speaks_to_the_workspace_through_the_client_the_environment_names(
    workspace: RunningEmulator, cmlapi: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    proxy = RecordingProxy(workspace.url)
    try:
        rows = _rows(cml_findings(_env(workspace, url=proxy.url, client="cmlapi")))
        agents = proxy.api_user_agents()
    finally:
        proxy.close()

    assert all(row.verdict is Verdict.OK for row in rows.values()), rows
    assert agents and all(agent.startswith("Swagger-Codegen/") for agent in agents), agents


def test_the_check_lists_environments_sharing_a_project_and_any_name_clash(
    workspace: RunningEmulator, mlflow_runs: MlflowRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VAR, API_KEY)
    with CMLClient(base_url=workspace.url, api_key=API_KEY) as admin:
        for name in ("prod-eu-iris", "prod-churn", "someone-elses-model"):  # earlier names
            admin.create_model(CreateModelRequest(project_id=PROJECT_ID, name=name), PROJECT_ID)
    settings = Settings(
        state_dir=Path("/nonexistent"),
        database_url="sqlite:////nonexistent/state.db",
        mlflow_tracking_uri=mlflow_runs.tracking_uri,
        environments=[
            _env(workspace, name="prod"),
            _env(workspace, name="prod-eu"),
            _env(workspace, name="dev", project_id=THEIRS),  # another project: not a neighbour
        ],
        default_environment="prod",
    )

    rows = {
        (f.scope, f.check): f for f in readiness(settings).findings if f.scope.startswith("cml")
    }

    scope = f"cml project {PROJECT_ID}"
    assert set(rows) == {(scope, "shared"), (scope, "name clashes")}
    shared, clashes = rows[(scope, "shared")], rows[(scope, "name clashes")]
    assert shared.verdict is Verdict.OK and "prod, prod-eu" in shared.detail
    assert "<endpoint>@<env>" in shared.detail
    assert clashes.verdict is Verdict.PROBLEM
    assert "CML model prod-eu-iris" in clashes.detail
    assert "`eu-iris@prod` or `iris@prod-eu`" in clashes.detail
    assert "prod-churn" not in clashes.detail  # only prod's churn can be that one
