"""The Slack app manifest: what Slack's schema accepts, no command Slack keeps for itself, and
the copies in the repository (manifest.yml, README's command list) made from the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.slack.manifest import command_list, manifest, render
from commands.registry import COMMANDS, RESERVED

ROOT = Path(__file__).parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "slack-app-manifest.schema.json").read_text())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "manifest", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"direct": False}, {"http_url": "https://chatops.example.com"}, {"command": "ml"}],
)
def test_slacks_schema_accepts_the_manifest(options: dict[str, Any]) -> None:
    jsonschema.validate(manifest(**options), SCHEMA)


def test_no_command_slack_keeps_for_itself_is_registered() -> None:
    assert {"status", "help", "remind", "who", "invite", "search", "away"} <= RESERVED
    offered = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert "/mlops" in offered and "/deploy" in offered and "/scale" in offered
    assert not {f"/{name}" for name in RESERVED} & offered
    grid = {c["command"] for c in manifest(direct=False)["features"]["slash_commands"]}
    assert grid == {"/mlops"}


def test_every_direct_command_carries_the_grammar_the_bot_parses() -> None:
    for entry in manifest()["features"]["slash_commands"][1:]:
        name = entry["command"].lstrip("/")
        assert f"{name} {entry['usage_hint']}" == COMMANDS[name].USAGE


def test_http_mode_sends_commands_clicks_and_events_to_the_bot() -> None:
    made = manifest(http_url="https://chatops.example.com/")
    url = "https://chatops.example.com/slack/events"
    assert {c["url"] for c in made["features"]["slash_commands"]} == {url}
    assert made["settings"]["event_subscriptions"]["request_url"] == url
    assert made["settings"]["interactivity"]["request_url"] == url
    assert made["settings"]["socket_mode_enabled"] is False
    assert manifest()["settings"]["socket_mode_enabled"] is True


def test_mentions_dms_and_the_app_home_are_subscribed_with_only_the_scopes_used() -> None:
    made = manifest()
    assert set(made["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.im",
        "app_home_opened",
    }
    assert made["features"]["app_home"]["home_tab_enabled"] is True
    scopes = made["oauth_config"]["scopes"]["bot"]
    assert {"commands", "chat:write", "app_mentions:read", "im:history"} <= set(scopes)
    # `/history <endpoint> --at …` reads and shows times in the asker's zone (users.info)
    assert "users:read" in scopes
    # a failure told again is looked for in its thread first (conversations.replies)
    assert {"channels:history", "groups:history"} <= set(scopes)


def test_manifest_yml_is_what_chatops_manifest_prints() -> None:
    printed = _cli()
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render()
    assert (ROOT / "manifest.yml").read_text() == printed.stdout, (
        "manifest.yml drifted: run `chatops manifest > manifest.yml`"
    )
    assert yaml.safe_load(printed.stdout) == manifest()


def test_a_reserved_or_malformed_namespace_is_refused_by_name() -> None:
    refused = _cli("--command", "status")
    assert refused.returncode == 2
    assert "/status is one of Slack's own commands" in refused.stderr
    assert refused.stdout == ""
    assert _cli("--command", "Bad Name!").returncode == 2
    renamed = _cli("--command", "ml", "--http-url", "https://bot.example.com")
    assert "command: /ml\n" in renamed.stdout and "/mlops" not in renamed.stdout


def test_readme_lists_the_commands_the_registry_has() -> None:
    readme = (ROOT / "README.md").read_text()
    begin, end = "<!-- commands: made by command_list() -->\n", "<!-- end of commands -->"
    listed = readme.split(begin, 1)[1].split(end, 1)[0]
    assert listed == command_list(), "README's command list drifted from the registry"
