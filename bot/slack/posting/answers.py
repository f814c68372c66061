"""Answers to text typed to the bot (a mention, a DM), which has no `response_url`: what a
slash command's requester alone would see is an ephemeral message in the channel or thread it
was typed in (in a DM, a plain reply); what is for the channel is posted there."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.intake.jobs import DirectMessage, Mention
from bot.slack.posting.poster import Poster

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
    ) -> None:
        job = self.job
        where = {"channel": job.channel_id, "text": text, "blocks": blocks}
        if job.thread_ts:
            where["thread_ts"] = job.thread_ts
        if response_type == "ephemeral" and isinstance(job, Mention):
            self.poster.try_call("chat.postEphemeral", user=job.user_id, **where)
        else:
            self.poster.try_call("chat.postMessage", **where)
