"""Events of one operation as one Slack thread.

The parent message says who does what and is kept current with `chat.update` (progress at
most about once a second; how it ended at once); each step is a short reply in its thread; a
failure is a reply broadcast to the channel with its cause, log tail and what still serves.
That reply carries the id of the outbox row it was owed as in its metadata: when another
bot process tells the end again (the first died before marking it sent), it looks for that
id in the thread and does not post the reply twice; the parent's `chat.update` is the same
edit again.
Where the bot cannot post (not in the channel, a DM), the requester is told how to invite it
and the thread moves to a direct message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.posting.poster import NO_ACCESS, Poster
from bot.slack.rendering import messages
from bot.slack.rendering.blocks import Blocks, context, fallback, fields, section
from bot.slack.rendering.canary import card
from bot.slack.rendering.mrkdwn import escape, shown, tail
from bot.text import duration
from commands.naming import DEFAULT, NAMESPACE, Naming
from core.events import OWED, RETOLD, Event, EventKind

Respond = Callable[..., Any]
log = logging.getLogger("chatops.slack")

# the metadata `event_type` of a message the bot owed: its `event_payload` is {"owed": row id}
OWED_EVENT = "chatops_owed"
# the step whose card is kept current in its thread (core.execution.canary.STEP)
CARD_STEP = "canary"
# the metadata `event_type` of a canary's card: its `event_payload` is {"operation", "step"}
CARD_EVENT = "chatops_card"
# how many pages of a thread are read looking for a reply already posted
MAX_THREAD_PAGES = 20


@dataclass
class _Parent:
    headline: str = ""
    status: str = ""
    detail: Blocks = field(default_factory=list)

    def blocks(self) -> Blocks:
        return [section(f"*{self.headline}*"), *self.detail, context(self.status)]

    def text(self) -> str:
        return fallback(f"{self.headline} — {self.status}")


class ThreadReporter:
    def __init__(
        self,
        *,
        poster: Poster,
        channel: str,
        user: str,
        command: str,
        respond: Respond,
        bot_name: str = "chatops",
        min_interval: float = 1.0,
        thread_ts: str | None = None,
        ts: str | None = None,
        job: str = "",
        naming: Naming = DEFAULT,
    ) -> None:
        self.poster = poster
        # how the front that took the command names commands: what its thread tells to type
        self.naming = naming
        # the job that asked: an operation recorded under it is not recorded again when the
        # job is taken again after its bot process died
        self.job = job
        # an existing thread (an approval request's) to report in, instead of a new one
        self.thread_ts = thread_ts
        self.channel = channel
        self.user = user
        self.command = command
        self.respond = respond
        self.bot_name = bot_name
        self.min_interval = min_interval
        # the parent message, once posted (given: a resumed operation's, posted before)
        self.ts: str | None = ts
        self._parent = _Parent()
        self._step = ""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last_update = 0.0
        self._dirty = False
        # the card of the canary step under way: its data, its reply's ts, when last shown
        self._card: dict[str, Any] = {}
        self._card_ts: str | None = None
        self._card_shown = 0.0
        # reporting an operation another bot process began: its card may be in the thread
        self.resumed = ts is not None
        self._cards_looked_for: set[object] = set()

    @classmethod
    def resuming(
        cls, where: dict[str, Any], *, poster: Poster, bot_name: str, min_interval: float
    ) -> ThreadReporter:
        """The reporter of an operation another bot process began: same parent, same thread;
        with no `response_url` left, ephemeral notes go to the log instead."""
        return cls(
            poster=poster,
            channel=str(where.get("channel") or ""),
            user=str(where.get("user") or ""),
            command=str(where.get("command") or ""),
            respond=_unanswerable,
            bot_name=bot_name,
            min_interval=min_interval,
            thread_ts=where.get("thread_ts") or None,
            ts=where.get("ts") or None,
            job=str(where.get("job") or ""),
            naming=Naming(
                str(where.get("namespace") or NAMESPACE), bool(where.get("direct", True))
            ),
        )

    @property
    def where(self) -> dict[str, Any]:
        """Enough to report in the same place from another process (`resuming`)."""
        return {
            "front": "slack",
            "channel": self.channel,
            "user": self.user,
            "command": self.command,
            "thread_ts": self.thread_ts,
            "ts": self.ts,
            "job": self.job,
            "namespace": self.naming.namespace,
            "direct": self.naming.direct,
        }

    def shown(self, text: str) -> str:
        """Core text in mrkdwn: names and reasons in it escaped, commands as the front names
        them, the people the bot means mentioned."""
        return shown(text, self.naming)

    # -- the Reporter interface ------------------------------------------------------------
    def report(self, event: Event) -> None:
        elapsed = duration(event.elapsed_s)
        message = self.shown(event.message)
        if event.kind is EventKind.STARTED:
            self._parent = _Parent(
                headline=message,
                status=messages.RUNNING.format(step="starting", elapsed=elapsed),
            )
            if self.ts is None:
                self._open()
            else:  # resumed: the parent is there already, and says so now
                self._set_status(messages.RESUMED.format(elapsed=elapsed))
            return
        if event.kind is EventKind.STEP:
            self._step = event.step
            self._set_status(messages.RUNNING.format(step=message, elapsed=elapsed))
        elif event.kind is EventKind.CARD:
            self._show_card(event)
        elif event.kind in (EventKind.DONE, EventKind.INFO):
            mark = ":heavy_check_mark:" if event.kind is EventKind.DONE else ":small_blue_diamond:"
            if event.kind is EventKind.DONE and event.step == CARD_STEP:
                self._end_card(f"{mark} {message}")
            self._reply(f"{mark} {message}")
            self._set_status(messages.RUNNING.format(step=message, elapsed=elapsed))
        elif event.kind is EventKind.SUCCEEDED:
            self._parent.detail = _success_fields(event)
            self._set_status(messages.SUCCEEDED.format(text=message) + f" · {elapsed}", final=True)
        elif event.kind is EventKind.FAILED:
            self._failure(event, elapsed)

    # -- posting ---------------------------------------------------------------------------
    def _open(self) -> None:
        parent = self._parent
        try:
            data = self.poster.call(
                "chat.postMessage",
                channel=self.channel,
                text=parent.text(),
                blocks=parent.blocks(),
                thread_ts=self.thread_ts,
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            if error not in NO_ACCESS:
                # the operation goes on; its requester hears here how it ends
                log.warning("chat.postMessage failed: %s", error)
                self.respond(
                    response_type="ephemeral",
                    text=messages.SLACK_REFUSED.format(
                        command=escape(self.command),
                        error=escape(error),
                        outcome=messages.TOLD_HERE,
                    ),
                )
                return
            self._move_to_dm()
            self.thread_ts = None
            data = self.poster.call(
                "chat.postMessage", channel=self.channel, text=parent.text(), blocks=parent.blocks()
            )
        self.channel, self.ts = data.get("channel", self.channel), data.get("ts")
        self._last_update = time.monotonic()

    def _move_to_dm(self) -> None:
        self.respond(
            response_type="ephemeral", text=messages.NOT_IN_CHANNEL.format(bot=self.bot_name)
        )
        opened = self.poster.call("conversations.open", users=self.user)
        original, self.channel = self.channel, opened["channel"]["id"]
        self.poster.try_call(
            "chat.postMessage",
            channel=self.channel,
            text=messages.DM_FALLBACK_HEADER.format(
                command=escape(self.command), channel=escape(original)
            ),
        )

    def _reply(self, text: str, *, broadcast: bool = False, owed: str = "") -> None:
        if self.ts is None:
            return
        sent = self.poster.try_call(
            "chat.postMessage",
            channel=self.channel,
            thread_ts=self.thread_ts or self.ts,
            text=fallback(text),
            blocks=[section(text)],
            reply_broadcast=broadcast or None,
            metadata={"event_type": OWED_EVENT, "event_payload": {"owed": owed}} if owed else None,
        )
        if sent is None and broadcast:
            # the channel refused the failure report: it must still reach the requester
            self.respond(response_type="ephemeral", text=text)

    def _replied(self, owed: str) -> bool:
        """Whether the thread holds a reply carrying `owed` (posted by a bot process that died
        before marking it sent). A thread that cannot be read counts as not: the reply is
        then said twice rather than never."""
        return self._found(OWED_EVENT, {"owed": owed}) is not None

    def _found(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The reply of the thread whose metadata is `event_type` with `payload`; None when
        there is none, or the thread cannot be read."""
        if self.ts is None:
            return None
        cursor = None
        for _page in range(MAX_THREAD_PAGES):
            try:
                page = self.poster.read(
                    "conversations.replies",
                    channel=self.channel,
                    ts=self.thread_ts or self.ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                log.warning("conversations.replies failed: %s", exc.response.get("error"))
                return None
            except SlackClientError as exc:
                log.warning("conversations.replies failed: %s", type(exc).__name__)
                return None
            for message in page.get("messages") or []:
                metadata = message.get("metadata") or {}
                found = metadata.get("event_payload") or {}
                if metadata.get("event_type") == event_type and all(
                    found.get(k) == v for k, v in payload.items()
                ):
                    return dict(message)
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def _set_status(self, status: str, *, final: bool = False) -> None:
        with self._lock:
            self._parent.status = status
            self._dirty = True
            if final:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                # the rate limit is for progress: the final word never waits for it
                self._flush_locked(final=True)
                return
            if self._timer is None:
                wait = max(0.0, self._last_update + self.min_interval - time.monotonic())
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            self._flush_locked()

    def _flush_locked(self, *, final: bool = False) -> None:
        if not self._dirty or self.ts is None:
            return
        self._dirty = False
        self._last_update = time.monotonic()
        try:
            self.poster.call(
                "chat.update",
                channel=self.channel,
                ts=self.ts,
                text=self._parent.text(),
                blocks=self._parent.blocks(),
            )
        except SlackApiError as exc:
            # the message would say "running…" forever: its requester hears how it ended
            error = str(exc.response.get("error") or "error")
            log.warning("chat.update failed: %s", error)
            if final:
                status = f"{self._parent.headline} — {self._parent.status}"
                self.respond(
                    response_type="ephemeral",
                    text=messages.UPDATE_REFUSED.format(
                        command=escape(self.command), error=escape(error), status=status
                    ),
                )
        except SlackClientError as exc:
            log.warning("chat.update failed: %s", type(exc).__name__)

    # -- a canary's card -------------------------------------------------------------------
    def _show_card(self, event: Event) -> None:
        """The card of the step under way: posted in the thread at its first look, then
        edited in place (at most about once a second); a new step gets a card of its own.
        Resumed from another bot process, it edits the card that one posted."""
        data = event.data
        if self.ts is None:
            return
        step = data.get("step")
        mark = {"operation": event.operation, "step": step}
        if self._card_ts is None and self.resumed and step not in self._cards_looked_for:
            self._cards_looked_for.add(step)
            posted = self._found(CARD_EVENT, mark)
            if posted is not None:
                self._card_ts, self._card = str(posted.get("ts")), {"step": step}
        same = self._card_ts is not None and step == self._card.get("step")
        self._card = data
        text, blocks = card(data)
        if not same:
            sent = self.poster.try_call(
                "chat.postMessage",
                channel=self.channel,
                thread_ts=self.thread_ts or self.ts,
                text=text,
                blocks=blocks,
                metadata={"event_type": CARD_EVENT, "event_payload": mark},
            )
            self._card_ts = str(sent.get("ts")) if sent else None
            self._card_shown = time.monotonic()
            return
        if time.monotonic() - self._card_shown < self.min_interval:
            return
        self._card_shown = time.monotonic()
        self.poster.try_call(
            "chat.update", channel=self.channel, ts=self._card_ts, text=text, blocks=blocks
        )

    def _end_card(self, ended: str) -> None:
        """The card as it last stood, its buttons replaced by how the step ended."""
        if self._card_ts is None or not self._card:
            return
        text, blocks = card(self._card, ended=ended)
        self.poster.try_call(
            "chat.update", channel=self.channel, ts=self._card_ts, text=text, blocks=blocks
        )
        self._card_ts, self._card = None, {}

    def _failure(self, event: Event, elapsed: str) -> None:
        serving = self.shown(str(event.data.get("serving") or ""))
        log_tail = escape(str(event.data.get("log_tail") or ""))
        failed = messages.FAILED.format(text=self.shown(event.message))
        self._end_card(failed)
        lines = [failed]
        if serving:
            lines.append(messages.STILL_SERVING.format(serving=serving))
        if log_tail:  # last: what is cut to fit is the oldest lines of the log
            room = 2900 - len("\n".join(lines)) - len(messages.LOG_TAIL)
            lines.append(messages.LOG_TAIL.format(tail=tail(log_tail, max(room, 200))))
        owed = str(event.data.get(OWED) or "")
        if event.data.get(RETOLD) and owed and self._replied(owed):
            log.info("the failure of %s was posted before its process died", event.operation)
        else:
            self._reply("\n".join(lines), broadcast=True, owed=owed)
        self._parent.detail = [
            section(failed),
            context(messages.STILL_SERVING.format(serving=serving)),
        ]
        step = self._step or "start"
        self._set_status(messages.FAILED_AT.format(step=step, elapsed=elapsed), final=True)


def _unanswerable(**message: Any) -> None:
    log.info("no response_url to tell the requester: %.200s", message.get("text", ""))


def _success_fields(event: Event) -> Blocks:
    data = event.data
    pairs = [("Version", f"v{escape(str(data['version']))}")] if "version" in data else []
    if "resources" in data:
        pairs.append(("Resources", escape(str(data["resources"]))))
    if data.get("latency_ms"):
        pairs.append(("Smoke test", f"{float(data['latency_ms']):.0f} ms"))
    if "url" in data:
        pairs.append(("Endpoint", escape(str(data["url"]))))
    return [fields(pairs)] if pairs else []
