"""The Slack emulator's records: messages, views, channels, users and user groups as a
workspace holds them, the error a Web API method answers with, and the calls and response_url
posts the emulator received."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

Args = Mapping[str, Any]
Answer = dict[str, Any]
Blocks = list[dict[str, Any]]
BOT_ID = "B0001"
BOT_NAME = "chatops"
_FIRST_TS = 1_700_000_000_000_000  # microseconds; ts values are deterministic, not wall time


class SlackError(Exception):
    """A refusal, answered as HTTP 200 ``{"ok": false, "error": code, **detail}`` (Slack
    names what was missing in some: ``missing_scope`` has ``needed`` and ``provided``)."""

    def __init__(self, code: str, **detail: Any) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Message:
    """A message as it stands now in a channel; thread replies carry ``thread_ts``;
    ``metadata`` is what an app attached (``event_type``, ``event_payload``), if any."""

    ts: str
    channel: str
    text: str
    blocks: Blocks
    thread_ts: str | None
    user: str
    reply_broadcast: bool
    updates: int = 0
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Ephemeral:
    """A ``chat.postEphemeral``: seen by ``user`` only, so never in the channel's history."""

    channel: str
    user: str
    text: str
    blocks: Blocks
    thread_ts: str | None
    message_ts: str
    at: float


@dataclass(frozen=True)
class PublishedView:
    """A ``views.publish``: the App Home ``view`` last shown to ``user_id``."""

    user_id: str
    view: dict[str, Any]
    at: float


@dataclass
class Channel:
    id: str
    name: str
    member: bool
    is_im: bool = False
    is_mpim: bool = False
    users: tuple[str, ...] = ()  # the other parties of an IM or MPIM
    private: bool = False  # a private channel (IMs and MPIMs are private too)

    @property
    def history_scope(self) -> str:
        """The scope a bot token needs to read this conversation's messages."""
        if self.is_im:
            return "im:history"
        if self.is_mpim:
            return "mpim:history"
        return "groups:history" if self.private else "channels:history"

    def info(self) -> Answer:
        info: Answer = {
            "id": self.id,
            "name": self.name,
            "is_channel": not (self.is_im or self.is_mpim),
            "is_im": self.is_im,
            "is_mpim": self.is_mpim,
            "is_private": self.private or self.is_im or self.is_mpim,
            "is_member": self.member,
            "is_archived": False,
        }
        if self.is_im:
            info["user"] = self.users[0] if self.users else None
        return info


@dataclass
class User:
    id: str
    name: str
    real_name: str
    is_bot: bool = False
    tz: str = ""  # an IANA zone, as the user set it in Slack; "" leaves Slack's fields out

    def info(self, team_id: str) -> Answer:
        zone: Answer = {}
        if self.tz:
            # as Slack answers: the zone's name, a label and its offset now, in seconds
            now = datetime.now(ZoneInfo(self.tz))
            offset = now.utcoffset()
            zone = {
                "tz": self.tz,
                "tz_label": now.tzname() or self.tz,
                "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            }
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": self.is_bot,
            "profile": {
                "display_name": self.name,
                "display_name_normalized": self.name,
                "real_name": self.real_name,
                "real_name_normalized": self.real_name,
            },
            **zone,
        }


@dataclass
class Usergroup:
    id: str
    handle: str
    users: list[str] = field(default_factory=list)

    def info(self, team_id: str, *, include_users: bool) -> Answer:
        info: Answer = {
            "id": self.id,
            "team_id": team_id,
            "is_usergroup": True,
            "name": self.handle,
            "handle": self.handle,
            "description": "",
            "is_external": False,
            "user_count": len(self.users),
        }
        if include_users:
            info["users"] = list(self.users)
        return info


@dataclass(frozen=True)
class Call:
    """One Web API call as received: ``args`` without the token, ``status`` the HTTP status
    answered, ``error`` the ``error`` of an ``ok: false`` answer. ``at`` is ``time.monotonic()``."""

    method: str
    args: dict[str, Any]
    at: float
    token: str | None
    status: int
    error: str | None = None


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a ``response_url``; ``name`` is what ``response_url(name)`` was given."""

    url: str
    body: dict[str, Any]
    at: float
    name: str = ""


@dataclass(frozen=True)
class _ResponseTarget:
    url: str
    name: str
    channel: str | None
    message_ts: str | None
