"""The Slack app manifest, made from the command registry: `chatops manifest`.

What it registers is exactly what the front listens to: the namespace command (`/mlops`), the
commands Slack leaves free when direct commands are on, the events of mentions, DMs and the
App Home, and only the scopes those need. `manifest.yml` and README's command list are this
module's output (a test fails when they drift).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from commands.naming import DIRECT, NAMESPACE, RESERVED, Naming
from commands.registry import COMMANDS

EVENTS_PATH = "/slack/events"
# what the bot reads and writes, and why: slash commands; posting progress and answers;
# resolving `@group` handles in role lists; each person's time zone (`/history --at`);
# opening a DM when it cannot post in a channel;
# reading mentions and DMs typed to it; reading its own threads back (in public and private
# channels and DMs) before telling an end again, so a failure is not posted twice
SCOPES = [
    "commands",
    "chat:write",
    "usergroups:read",
    "users:read",
    "im:write",
    "app_mentions:read",
    "im:history",
    "channels:history",
    "groups:history",
]
BOT_EVENTS = ["app_mention", "message.im", "app_home_opened"]
HEADER = """\
# Slack app manifest, made by `chatops manifest{options}` from the bot's commands.
# https://api.slack.com/apps -> Create New App -> From an app manifest -> paste this.
# {mode}
"""


def slash_commands(*, command: str = NAMESPACE, direct: bool = True) -> list[str]:
    """The slash commands the front registers: the namespace, then the direct ones (each
    once: a namespace named like a command is that command's only slash command)."""
    return Naming(command, direct).slash_commands()


def manifest(
    *, command: str = NAMESPACE, direct: bool = True, http_url: str | None = None
) -> dict[str, Any]:
    """The manifest as Slack's schema has it. Without `http_url`: Socket Mode (no public URL
    needed); with it, Slack sends commands, clicks and events there."""
    url = _events_url(http_url) if http_url else None
    at = {"url": url} if url else {}
    names = ", ".join(COMMANDS)
    commands: list[dict[str, Any]] = [
        {
            "command": f"/{command}",
            **at,
            "description": "Deploy, scale and watch MLflow models (every command)",
            "usage_hint": f"<command> [arguments] — {names}",
            "should_escape": False,
        }
    ]
    for name in Naming(command, direct).registered_names():
        module = COMMANDS[name]
        commands.append(
            {
                "command": f"/{name}",
                **at,
                "description": module.SUMMARY[0].upper() + module.SUMMARY[1:],
                "usage_hint": module.USAGE.partition(" ")[2] or "(no arguments)",
                "should_escape": False,
            }
        )
    settings: dict[str, Any] = {
        "event_subscriptions": {**({"request_url": url} if url else {}), "bot_events": BOT_EVENTS},
        "interactivity": {"is_enabled": True, **({"request_url": url} if url else {})},
        "org_deploy_enabled": False,
        "socket_mode_enabled": url is None,
        "token_rotation_enabled": False,
    }
    return {
        "display_information": {
            "name": "chatops",
            "description": "Deploy MLflow model versions to live endpoints from Slack.",
            "background_color": "#1d3557",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": "chatops", "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": list(SCOPES)}},
        "settings": settings,
    }


def _events_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(EVENTS_PATH) else url + EVENTS_PATH


def render(*, command: str = NAMESPACE, direct: bool = True, http_url: str | None = None) -> str:
    """The manifest as YAML, with a header saying how it was made and how to use it."""
    options = "".join(
        (
            f" --command {command}" if command != NAMESPACE else "",
            "" if direct else " --no-direct",
            f" --http-url {http_url}" if http_url else "",
        )
    )
    mode = (
        f"HTTP mode: Slack sends every request to {_events_url(http_url)}."
        if http_url
        else "Socket Mode: no public URL needed (give --http-url URL for HTTP mode)."
    )
    body = yaml.safe_dump(
        manifest(command=command, direct=direct, http_url=http_url),
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return HEADER.format(options=options, mode=mode) + body


def command_list(*, command: str = NAMESPACE) -> str:
    """README's list of commands: every one through the namespace, and its direct form."""
    lines = []
    direct_names = Naming(command).registered_names()
    for name, module in COMMANDS.items():
        typed = f"/{command} {module.USAGE}"
        direct = f" (or `/{name}`)" if name in direct_names else ""
        lines.append(f"- `{typed}`{direct} — {module.SUMMARY}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="chatops manifest",
        description="Print the Slack app manifest for this bot's commands. Example: "
        "chatops manifest --http-url https://chatops.example.com > manifest.yml",
    )
    parser.add_argument(
        "--command",
        default=None,
        help="the command that takes every subcommand (default: $CHATOPS_SLACK_COMMAND or mlops)",
    )
    parser.add_argument(
        "--http-url",
        default=None,
        help="the bot's public URL, for HTTP mode (default: Socket Mode)",
    )
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="only the namespace command: no /deploy, /scale … (Enterprise Grid orgs)",
    )
    args = parser.parse_args(argv)
    from bot.slack.settings import SlackSettings

    try:
        configured = SlackSettings(
            **({"CHATOPS_SLACK_COMMAND": args.command} if args.command else {})
        )
    except ValueError as exc:
        problems = "; ".join(str(e.get("msg", "")) for e in getattr(exc, "errors", list)())
        print(f"cannot make the manifest: {problems or exc}", file=sys.stderr)
        return 2
    if args.http_url and not args.http_url.startswith(("https://", "http://")):
        print(f"--http-url must start with https:// (got {args.http_url!r})", file=sys.stderr)
        return 2
    direct = configured.direct_commands and not args.no_direct
    sys.stdout.write(render(command=configured.command, direct=direct, http_url=args.http_url))
    return 0


assert not {NAMESPACE, *DIRECT} & RESERVED, "a reserved Slack command would be registered"
