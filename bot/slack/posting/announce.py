"""Registry announcements in Slack: the message (escaped, within Slack's limits) with its
*Deploy to dev* and *Request promotion to prod* buttons, posted to the announce channel; and
an environment's alias drifted from what serves there, with *Deploy v7 to prod* and *Move
@prod back to v6*.

The buttons only name the command they stand for; who may run it is decided by the core
when the click is run as that command (`AnnouncedAction`), exactly as if it were typed.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from bot.slack.intake.jobs import FRONT, RegistryNotice
from bot.slack.posting.poster import Poster
from bot.slack.rendering import messages
from bot.slack.rendering.blocks import Blocks, context, fallback, fields, metrics, section
from bot.slack.rendering.ids import ALIAS_ANNOUNCED, DEPLOY_ANNOUNCED, PROMOTE_ANNOUNCED
from bot.slack.rendering.mrkdwn import BUTTON, SECTION, escape, fit, fit_line
from core.announcements import Announcement
from core.drift import Drift, is_drift
from core.outbox import ANNOUNCE
from core.registry.events import RegistryEvent, RegistryEventKind
from core.store.jobs import JobState

if TYPE_CHECKING:
    from core.announcements import RegistryFeed
    from core.runtime import Runtime

log = logging.getLogger("chatops.slack")
MAX_BUTTON_VALUE = 2000
ALIASES = frozenset({RegistryEventKind.ALIAS_CREATED, RegistryEventKind.ALIAS_DELETED})


def announcement_blocks(a: Announcement) -> tuple[str, Blocks]:
    """The announcement: what happened and how its metrics compare with what serves, the
    metrics side by side, and the buttons (those that have somewhere to go)."""
    e = a.event
    model = escape(e.model)
    if e.kind is RegistryEventKind.ALIAS_CREATED:
        what = f"*{model}* @{escape(e.alias)} now points at *v{e.version}*"
    elif e.kind is RegistryEventKind.TAG_SET:
        what = f"*{model} v{e.version}* tagged `{escape(e.tag)}={escape(e.value)}`"
    else:
        by = f" by {escape(a.by)}" if a.by else ""
        what = f"*{model} v{e.version}* registered{by}"
    head = what + (f" — {escape(a.comparison)}" if a.comparison else "")
    first = {k for s in a.serving for k in s.metrics} & set(a.metrics)
    pairs = [(messages.ANNOUNCE_THIS.format(version=e.version), metrics(a.metrics, first=first))]
    for s in a.serving[:9]:
        title = messages.ANNOUNCE_SERVES.format(env=escape(s.env), version=s.version)
        pairs.append((title, metrics(s.metrics, first=first)))
    if not a.serving:
        pairs.append((messages.ANNOUNCE_NOTHING_SERVES.format(model=model), "—"))
    blocks: Blocks = [section(fit(head, SECTION)), fields(pairs)]
    if a.run_id and a.deploy_env:
        how = messages.ANNOUNCE_HOW.format(run=escape(a.run_id[:8]), deploy=escape(a.deploy_env))
        blocks.append(context(how))
    buttons = _buttons(a)
    if buttons:
        blocks.append({"type": "actions", "block_id": "announced", "elements": buttons})
    return fallback(escape(a.text)), blocks


def _buttons(a: Announcement) -> list[dict[str, Any]]:
    out = []
    for action_id, env, label, style in (
        (DEPLOY_ANNOUNCED, a.deploy_env, messages.ANNOUNCE_DEPLOY, "primary"),
        (PROMOTE_ANNOUNCED, a.promote_env, messages.ANNOUNCE_PROMOTE, None),
    ):
        if env is None:
            continue
        value = json.dumps({"model": a.event.model, "version": a.event.version, "env": env})
        if len(value) > MAX_BUTTON_VALUE:
            continue  # Slack refuses it; the typed command still works
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": fit_line(label.format(env=env), BUTTON)},
            "action_id": action_id,
            "value": value,
        }
        if style:
            button["style"] = style
        out.append(button)
    return out


def drift_blocks(d: Drift) -> tuple[str, Blocks]:
    """A drifted alias: what it names and what serves, and a button for each way back to
    agreement (Deploy only when the alias names a version)."""
    alias, model, env = escape(d.alias), escape(d.model), escape(d.env)
    if d.named is None:
        head = f"`@{alias}` no longer names any version of *{model}*, {env} serves *v{d.serving}*"
    else:
        head = f"`@{alias}` now names *{model} v{d.named}*, {env} serves *v{d.serving}*"
    blocks: Blocks = [section(fit(head, SECTION)), context(messages.DRIFT_HOW)]
    buttons = []
    for action_id, version, label, style in (
        (DEPLOY_ANNOUNCED, d.named, messages.DRIFT_DEPLOY, "primary"),
        (ALIAS_ANNOUNCED, d.serving, messages.DRIFT_MOVE_BACK, None),
    ):
        if version is None:
            continue
        value = json.dumps({"model": d.model, "version": version, "env": d.env})
        if len(value) > MAX_BUTTON_VALUE:
            continue  # Slack refuses it; the typed command still works
        text = label.format(version=version, env=d.env, alias=d.alias)
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": fit_line(text, BUTTON)},
            "action_id": action_id,
            "value": value,
        }
        if style:
            button["style"] = style
        buttons.append(button)
    if buttons:
        blocks.append({"type": "actions", "block_id": "announced", "elements": buttons})
    return fallback(escape(d.text)), blocks


class SlackAnnouncer:
    """Posts announcements to `channel` (none: registry events are not followed)."""

    def __init__(self, *, runtime: Runtime, poster: Poster, channel: str) -> None:
        self.runtime = runtime
        self.poster = poster
        self.channel = channel

    def post(self, a: Announcement | Drift) -> None:
        """Post `a`; marked sent once posted. One Slack refused stays owed: a bot process
        posts it again once its lease lapses, until it was tried `max_attempts` times."""
        if isinstance(a, Drift):
            (text, blocks), label = drift_blocks(a), a.label
        else:
            (text, blocks), label = announcement_blocks(a), a.event.label
        if self.poster.try_call("chat.postMessage", channel=self.channel, text=text, blocks=blocks):
            log.info("announced %s", label)
            self.runtime.outbox.sent(a.owed)
        else:
            log.error(
                "could not announce %s in the announce channel: tried again in %.0f s",
                label,
                self.runtime.outbox.lease_s,
            )

    def post_owed(self) -> bool:
        """Post one announcement a bot process recorded and did not post (it stopped, or
        Slack refused it); False when there is none."""
        owed = self.runtime.outbox.take(ANNOUNCE, frozenset({FRONT}))
        if owed is None:
            return False
        if not self.channel:
            log.warning("announcement %s dropped: no announce channel is configured", owed.id)
            self.runtime.outbox.sent(owed.id)
            return True
        try:
            announcement: Announcement | Drift = (
                Drift.of(owed.payload, owed=owed.id)
                if is_drift(owed.payload)
                else Announcement.of(owed.payload, owed=owed.id)
            )
        except (KeyError, TypeError, ValueError):
            log.error("announcement %s cannot be read by this version: dropped", owed.id)
            self.runtime.outbox.sent(owed.id)
            return True
        self.post(announcement)
        return True

    def notice(self, job: RegistryNotice) -> JobState:
        """A delivered event: announced here when no bot process did already."""
        if not self.channel:
            log.info("%s: no announce channel is configured", job.line)
            return JobState.DONE
        event = RegistryEvent(
            RegistryEventKind(job.event),
            job.model,
            job.version,
            alias=job.alias,
            tag=job.tag,
            value=job.value,
        )
        if event.kind is not RegistryEventKind.ALIAS_DELETED:  # told by the drift it leaves
            announcement = self.runtime.announcements.offer(event, source="webhook", front=FRONT)
            if announcement is not None:
                self.post(announcement)
        if event.kind in ALIASES:  # it may have left what serves
            for drift in self.runtime.announcements.drifted(front=FRONT, model=event.model):
                self.post(drift)
        return JobState.DONE

    def follow(self) -> RegistryFeed | None:
        """Follow the registry (poll it, or register the MLflow webhook) when there is a
        channel to announce in."""
        if not self.channel:
            return None
        return self.runtime.announcements.follow(self.post, front=FRONT)
