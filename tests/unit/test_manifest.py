"""The Slack app manifest offers every command, with the grammar the bot parses."""

from __future__ import annotations

from pathlib import Path

import yaml

from commands.registry import COMMANDS

MANIFEST = yaml.safe_load((Path(__file__).parents[2] / "manifest.yml").read_text())


def test_every_command_is_a_slash_command_with_its_usage() -> None:
    offered = {c["command"]: c for c in MANIFEST["features"]["slash_commands"]}
    assert set(offered) == {f"/{name}" for name in COMMANDS}
    for name, module in COMMANDS.items():
        hint = offered[f"/{name}"]["usage_hint"]
        assert f"/{name} {hint}" == module.USAGE
        assert offered[f"/{name}"]["url"].endswith("/slack/events")


def test_the_bot_asks_for_the_scopes_it_uses() -> None:
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "users:read", "usergroups:read", "im:write"} <= scopes
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
