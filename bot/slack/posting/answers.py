"""Answers to text typed to the bot (a mention, a DM), which has no `response_url`: what a
slash command's requester alone would see is an ephemeral message in the channel or thread it
was typed in (in a DM, a plain reply); what is for the channel is posted there."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.intake.jobs import DirectMessage, Mention
from bot.slack.posting.poster import Poster, revealed
from bot.slack.rendering.mrkdwn import FALLBACK, defuse, fit
from core.scrub import scrub

log = logging.getLogger("chatops.slack")


class TypedResponder:
    """Called like the response_url's `Responder`: `(text=…, response_type=…, blocks=…)`."""

    def __init__(self, poster: Poster, job: Mention | DirectMessage) -> None:
        self.poster = poster
        self.job = job

    def __call__(
        self,
        *,
        text: str,
        response_type: str = "ephemeral",
        blocks: list[dict[str, Any]] | None = None,
        reveal: str = "",
    ) -> None:
        job = self.job
        if reveal:  # never through `Poster.call`, whose scrubbing would mask it
            self._reveal(text, reveal)
            return
        where = {"channel": job.channel_id, "text": text, "blocks": blocks}
        if job.thread_ts:
            where["thread_ts"] = job.thread_ts
        if response_type == "ephemeral" and isinstance(job, Mention):
            self.poster.try_call("chat.postEphemeral", user=job.user_id, **where)
        else:
            self.poster.try_call("chat.postMessage", **where)

    def _reveal(self, text: str, secret: str) -> None:
        """A text holding a secret made for the requester: to them alone (ephemeral in a
        channel, a plain reply in their DM), scrubbed first and the secret put in last."""
        job = self.job
        where = {
            "channel": job.channel_id,
            "text": revealed(fit(defuse(scrub(text)), FALLBACK), secret),
        }
        if job.thread_ts:
            where["thread_ts"] = job.thread_ts
        method = "chat.postEphemeral" if isinstance(job, Mention) else "chat.postMessage"
        if isinstance(job, Mention):
            where["user"] = job.user_id
        try:
            self.poster.client.api_call(method, json=where)
        except Exception as exc:  # its type only: never a text that could hold the secret
            log.warning("%s failed: %s", method, type(exc).__name__)
