"""`chatops check`: the readiness table, and the Slack part of it (the core knows no Slack).

Slack's checks: the bot token is valid (`auth.test`), it was granted every scope the bot
uses (Slack lists them in the `x-oauth-scopes` header of each answer), and the front's mode
has what it needs: an app token (xapp-) for Socket Mode, a signing secret for HTTP.
"""

from __future__ import annotations

import logging
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.manifest import SCOPES
from bot.slack.settings import Mode, SlackSettings
from core.config import Settings
from core.oncall.checks import Finding, Report, Verdict

SLACK = "slack"
# what the manifest (manifest.yml) asks for; the bot fails without any one of them
# the scopes manifest.yml asks for: a token granted fewer misses something the bot does
NEEDED_SCOPES = tuple(SCOPES)
TIMEOUT_S = 10


def slack_findings(slack: SlackSettings, mode: Mode) -> list[Finding]:
    """Slack's rows for a bot that would start in `mode`."""
    if mode is Mode.CONSOLE:
        return [
            Finding.skipped(
                SLACK,
                "token",
                "not configured: `chatops run` starts the console (set SLACK_BOT_TOKEN and "
                "SLACK_APP_TOKEN or SLACK_SIGNING_SECRET for Slack)",
            )
        ]
    findings = [_mode_finding(slack, mode)]
    assert slack.bot_token is not None  # a Slack mode has one
    client = WebClient(
        token=slack.bot_token.get_secret_value(), base_url=slack.api_url, timeout=TIMEOUT_S
    )
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error") or exc.response.status_code)
        return [
            Finding.problem(
                SLACK,
                "token",
                f"auth.test refused SLACK_BOT_TOKEN: {error}",
                "reinstall the app and copy its Bot User OAuth Token (xoxb-) to SLACK_BOT_TOKEN",
            ),
            Finding.skipped(SLACK, "scopes", "not checked: the token failed"),
            *findings,
        ]
    except (SlackClientError, OSError) as exc:
        return [
            Finding.problem(
                SLACK,
                "token",
                f"Slack at {slack.api_url} cannot be reached: {type(exc).__name__}",
                "check the network path to Slack (and SLACK_API_URL if set)",
            ),
            Finding.skipped(SLACK, "scopes", "not checked: Slack did not answer"),
            *findings,
        ]
    who = f"@{answer.get('user')} in {answer.get('team')} ({answer.get('team_id')})"
    return [Finding.ok(SLACK, "token", f"valid: {who}"), _scopes_finding(answer.headers), *findings]


def _scopes_finding(headers: dict[str, str]) -> Finding:
    raw = next((v for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    if raw is None:
        return Finding.problem(
            SLACK,
            "scopes",
            "Slack did not say which scopes the token has (no x-oauth-scopes header)",
            "check the app's OAuth & Permissions page against manifest.yml",
        )
    granted = {s.strip() for s in raw.split(",") if s.strip()}
    missing = [s for s in NEEDED_SCOPES if s not in granted]
    if missing:
        return Finding.problem(
            SLACK,
            "scopes",
            f"missing {', '.join(missing)}",
            "add them under OAuth & Permissions (or from manifest.yml) and reinstall the app",
        )
    return Finding.ok(SLACK, "scopes", f"all {len(NEEDED_SCOPES)} needed granted")


def _mode_finding(slack: SlackSettings, mode: Mode) -> Finding:
    if mode is Mode.SOCKET:
        token = slack.app_token.get_secret_value() if slack.app_token else ""
        if not token.startswith("xapp-"):
            return Finding.problem(
                SLACK,
                "socket mode",
                "SLACK_APP_TOKEN is not an app-level token (xapp-)",
                "create an app-level token with connections:write under Basic Information",
            )
        return Finding.ok(SLACK, "socket mode", "app-level token present")
    if slack.signing_secret is None or not slack.signing_secret.get_secret_value():
        return Finding.problem(
            SLACK,
            "http mode",
            "SLACK_SIGNING_SECRET is not set: requests could not be verified",
            "copy the Signing Secret from Basic Information to SLACK_SIGNING_SECRET",
        )
    return Finding.ok(SLACK, "http mode", "signing secret present")


def render(report: Report) -> object:
    """The report as a rich table: one row per check, what to do when it failed."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="chatops check", title_justify="left")
    for column in ("", "scope", "check", "found", "what to do"):
        table.add_column(column, overflow="fold")
    marks = {
        Verdict.OK: ("ok", "green"),
        Verdict.PROBLEM: ("FAIL", "bold red"),
        Verdict.SKIPPED: ("-", "dim"),
    }
    for f in report.findings:
        mark, style = marks[f.verdict]
        table.add_row(Text(mark, style=style), f.scope, f.check, Text(f.detail), Text(f.fix))
    return table


def log_readiness(settings: Settings, slack: SlackSettings, mode: Mode) -> threading.Thread:
    """One paragraph in the log on whether everything is ready, written by a thread (the
    checks may wait on the network). Run where MLflow is loaded anyway (the worker process,
    the console): the checks import it, and the Slack front never does."""
    from core.oncall.checks.readiness import readiness
    from core.scrub import register_settings

    def run() -> None:
        register_settings(settings)
        slack.register_secrets()
        report = readiness(settings, front=slack_findings(slack, mode))
        logging.getLogger("chatops.check").log(
            logging.INFO if report.ok else logging.WARNING, "%s", report.summary()
        )

    thread = threading.Thread(target=run, name="readiness", daemon=True)
    thread.start()
    return thread
