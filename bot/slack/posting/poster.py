"""Web API calls that are never silently lost: retried with backoff, else logged.

HTTP 429 is honoured inside slack_sdk (RateLimitErrorRetryHandler sleeps `Retry-After`);
what is still transient after that is retried here; what is permanent is returned to the
caller, which decides where the message goes instead.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bot.slack.rendering.mrkdwn import FALLBACK, defuse, fit
from core import metrics
from core.scrub import scrub, scrub_value
from core.tokens import SHOWN_ONCE

log = logging.getLogger("chatops.slack")

TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
NO_ACCESS = {
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "restricted_action",
    "cannot_dm_bot",
    "missing_scope",
}


class _CountedWebClient(WebClient):
    """Every Web API call counted for `/metrics`, and each refusal by Slack's error code."""

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        try:
            answer = super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            metrics.slack_call(api_method, str(exc.response.get("error") or "http_error"))
            raise
        except SlackClientError:
            metrics.slack_call(api_method, "unreachable")
            raise
        metrics.slack_call(api_method)
        return answer


def web_client(*, token: str, base_url: str) -> WebClient:
    client = _CountedWebClient(token=token, base_url=base_url, timeout=15)
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, SlackApiError):
        return exc.response.get("error") in TRANSIENT or exc.response.status_code >= 500
    return isinstance(exc, SlackClientError)


class Poster:
    def __init__(self, client: WebClient, *, attempts: int = 4, wait_max: float = 8) -> None:
        self.client = client
        self._retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.5, max=wait_max),
            reraise=True,
        )

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """The response data; raises SlackApiError for what retrying cannot mend."""
        # the last edge before Slack: no secret, no server path, no channel-wide ping; a
        # message's metadata is the bot's own ids, kept as they are (a secret that happens
        # to be a word of them must not change them)
        metadata = kwargs.pop("metadata", None)
        kwargs = _defused(scrub_value(kwargs))
        if metadata is not None:
            kwargs["metadata"] = metadata
        if isinstance(kwargs.get("text"), str):  # Slack refuses a longer one: msg_too_long
            kwargs["text"] = fit(kwargs["text"], FALLBACK)
        for attempt in self._retrying:
            with attempt:
                response = self.client.api_call(method, json=_drop_none(kwargs))
                return dict(response.data) if isinstance(response.data, dict) else {}
        raise AssertionError("unreachable")

    def read(self, method: str, **params: Any) -> dict[str, Any]:
        """The answer of a method that reads (`conversations.replies`): Slack takes their
        arguments as a query or a form, never as JSON; raises as `call` does."""
        for attempt in self._retrying:
            with attempt:
                response = self.client.api_call(method, http_verb="GET", params=_drop_none(params))
                return dict(response.data) if isinstance(response.data, dict) else {}
        raise AssertionError("unreachable")

    def try_call(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """Like `call`, but a failure is logged (without secrets) and None returned."""
        try:
            return self.call(method, **kwargs)
        except SlackApiError as exc:
            log.warning("%s failed: %s", method, exc.response.get("error"))
        except SlackClientError as exc:
            log.warning("%s failed: %s", method, type(exc).__name__)
        return None


def revealed(text: str, secret: str) -> str:
    """`text` (scrubbed already) with the secret shown once where it says; without one (an
    answer sent again after its process stopped), that it is not shown again."""
    return text.replace(SHOWN_ONCE, secret or "(shown once only: make a new one)")


def _defused(value: Any) -> Any:
    """Every text of a message or its blocks, defused (see `mrkdwn.defuse`)."""
    if isinstance(value, str):
        return defuse(value)
    if isinstance(value, list):
        return [_defused(v) for v in value]
    if isinstance(value, dict):
        return {k: _defused(v) if k in _TEXTS else v for k, v in value.items()}
    return value


# keys whose values are shown, or hold what is shown; ids, urls and values are left alone
_TEXTS = frozenset({"text", "blocks", "fields", "elements", "view", "title", "attachments"})


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Responder:
    """Slack's `response_url` for one command: messages only its requester sees, or the
    channel when asked."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(
        self,
        *,
        text: str,
        response_type: str = "ephemeral",
        blocks: list[dict[str, Any]] | None = None,
        reveal: str = "",
    ) -> None:
        """`reveal`: the one secret made for the requester (`core.tokens.SHOWN_ONCE` in
        `text` says where), put in after the text was scrubbed."""
        if not self.url:
            log.warning("no response_url to answer on")
            return
        # the last edge before Slack
        text, blocks = fit(defuse(scrub(text)), FALLBACK), _defused(scrub_value(blocks))
        text = revealed(text, reveal)
        # never replace_original: a button's message changes only through chat.update
        try:
            response = WebhookClient(self.url, timeout=15).send(
                text=text, blocks=blocks, response_type=response_type, replace_original=False
            )
        except (ValueError, OSError, SlackClientError) as exc:  # a response_url we cannot use
            log.warning("could not answer on the response_url: %s", type(exc).__name__)
            return
        if response.status_code != 200:
            log.warning("response_url answered HTTP %s", response.status_code)
            if blocks:  # refused blocks must not silence the answer: its text alone, then
                self(text=text, response_type=response_type)
