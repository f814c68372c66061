"""What the watch windows and the sentinel tell people, in Slack: a word in the thread of
the operation that switched, and messages in the on-call channel (`CHATOPS_ONCALL_CHANNEL`);
an endpoint that went down between rollouts comes with a *Roll back* button, whose click is
a job of its own that the core admits as `/rollback` (admins only)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from bot.slack.intake.jobs import RollbackClick, clicked_version
from bot.slack.posting.links import CHANNEL, thread_link
from bot.slack.posting.poster import Poster
from bot.slack.rendering.blocks import Blocks, decided, fallback, section
from bot.slack.rendering.ids import ROLLBACK
from bot.slack.rendering.mrkdwn import BUTTON, fit_line, shown
from commands.naming import DEFAULT, Naming
from core.oncall.alerts import Alert, AlertKind

log = logging.getLogger("chatops.slack")


class OnCall:
    """The Slack front's `Alerts`."""

    front = "slack"

    def __init__(
        self,
        *,
        poster: Poster,
        channel: str = "",
        people: Iterable[str] = (),
        naming: Naming = DEFAULT,
    ) -> None:
        self.poster = poster
        self.channel = channel  # on-call's channel id; "" : on-call hears nothing here
        # the people the settings name; mentions are only those the core marks as meant
        # (`core.marks.person`): any `<@…>` a user typed is shown literally
        self.people = tuple(people)
        self.naming = naming  # how the commands alerts name are typed

    def thread_of(self, where: dict[str, Any], command: str) -> dict[str, Any]:
        """A `reply_to` that makes an operation report in the thread `where` names (a
        `ThreadReporter.where`): its own message in that thread, kept current there."""
        if where.get("front") != "slack" or not where.get("channel"):
            return {}
        return {
            "front": "slack",
            "channel": where["channel"],
            "user": where.get("user") or "",
            "command": command,
            "thread_ts": where.get("thread_ts") or where.get("ts"),
            "ts": None,
            "job": "",
        }

    def tell(self, alert: Alert) -> dict[str, Any]:
        text = shown(alert.text, self.naming)
        if alert.kind is AlertKind.CLEAN:
            self._in_thread(alert.where, f":white_check_mark: {text}")
            return {}
        if alert.kind in (AlertKind.ROLLING_BACK, AlertKind.NOT_ROLLED_BACK):
            self._in_thread(alert.where, text)
            channel = str(alert.where.get("channel") or "")
            if CHANNEL.fullmatch(channel) and channel != self.channel:
                text += f" {self._thread_in(channel, alert.where)}"
            return self._to_oncall(text, [section(text)])
        if alert.kind is AlertKind.ABORTED:  # its thread heard it as the deploy's end
            text = f":no_entry: {text}"
            channel = str(alert.where.get("channel") or "")
            if CHANNEL.fullmatch(channel) and channel != self.channel:
                text += f" {self._thread_in(channel, alert.where)}"
            return self._to_oncall(text, [section(text)])
        if alert.kind is AlertKind.ROLLED_BACK:
            mark = ":white_check_mark:" if alert.ok else ":x:"
            return self._to_oncall(
                f"{mark} {text}", [section(f"{mark} {text}")], thread=alert.oncall
            )
        if alert.kind is AlertKind.DOWN:
            blocks: Blocks = [section(text)]
            if alert.rollback_to is not None and alert.version is not None:
                blocks.append(rollback_button(alert))
            return self._to_oncall(text, blocks)
        self._up(alert.oncall, text)
        return {}

    def _thread_in(self, channel: str, where: dict[str, Any]) -> str:
        """Where the deploy's thread is, linked when Slack gives its permalink: on-call opens
        it in one click."""
        link = thread_link(self.poster, {**where, "channel": channel})
        if link:
            return THREAD_LINKED.format(link=link, channel=channel)
        return THREAD_IN.format(channel=channel)

    # -- posting ---------------------------------------------------------------------------
    def _in_thread(self, where: dict[str, Any], text: str) -> None:
        channel, ts = where.get("channel"), where.get("thread_ts") or where.get("ts")
        if where.get("front") == "slack" and channel and ts:
            self.poster.try_call(
                "chat.postMessage",
                channel=channel,
                thread_ts=ts,
                text=fallback(text),
                blocks=[section(text)],
            )

    def _to_oncall(
        self, text: str, blocks: Blocks, *, thread: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if not self.channel:
            log.warning("no on-call channel (CHATOPS_ONCALL_CHANNEL): %.300s", text)
            return {}
        posted = self.poster.try_call(
            "chat.postMessage",
            channel=self.channel,
            text=fallback(text),
            blocks=blocks,
            thread_ts=(thread or {}).get("ts") or None,
        )
        if posted is None:
            log.warning("on-call was not told: %.300s", text)
            return {}
        return {"channel": posted.get("channel"), "ts": posted.get("ts"), "blocks": blocks}

    def _up(self, where: dict[str, Any], text: str) -> None:
        """The announcement of an outage loses its button and says it is over."""
        if where.get("ts"):
            self.poster.try_call(
                "chat.update",
                channel=where["channel"],
                ts=where["ts"],
                text=fallback(text),
                blocks=decided(list(where.get("blocks") or []), text),
            )


def rollback_button(alert: Alert) -> dict[str, Any]:
    """*Roll back*, confirmed first, bound to the endpoint and the version it served."""
    value = {"env": alert.env, "endpoint": alert.endpoint, "version": alert.version}
    question = CONFIRM.format(
        endpoint=alert.endpoint, env=alert.env, v=alert.version, to=alert.rollback_to
    )
    return {
        "type": "actions",
        "block_id": fit_line(f"rollback-{alert.env}-{alert.endpoint}", 255),
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": fit_line(BUTTON_TEXT, BUTTON)},
                "action_id": ROLLBACK,
                "value": json.dumps(value),
                "style": "danger",
                "confirm": {
                    "title": {"type": "plain_text", "text": fit_line(CONFIRM_TITLE, 100)},
                    "text": {"type": "plain_text", "text": fit_line(question, 300)},
                    "confirm": {"type": "plain_text", "text": BUTTON_TEXT},
                    "deny": {"type": "plain_text", "text": "Not now"},
                    "style": "danger",
                },
            }
        ],
    }


def click_of(body: dict[str, Any]) -> RollbackClick | None:
    """The job for a click on *Roll back*; None when its value is not one of ours."""
    action = (body.get("actions") or [{}])[0]
    try:
        value = json.loads(str(action.get("value") or ""))
        return RollbackClick(
            env=str(value["env"]),
            endpoint=str(value["endpoint"]),
            version=clicked_version(value["version"]),
            user_id=str((body.get("user") or {}).get("id", "")),
            channel_id=str((body.get("channel") or {}).get("id", "")),
            thread_ts=str((body.get("message") or {}).get("ts") or "") or None,
            response_url=str(body.get("response_url", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


# -- texts (mrkdwn; values are escaped before they go in) -----------------------------------
THREAD_IN = "Its thread is in <#{channel}>."
THREAD_LINKED = "<{link}|Its thread> is in <#{channel}>."
BUTTON_TEXT = "Roll back"
CONFIRM_TITLE = "Roll back?"
CONFIRM = "Roll {endpoint} in {env} back from v{v} to v{to}? It is a rollout like /rollback."
BROKEN_BUTTON = "This button is not one I made, so nothing was done."
