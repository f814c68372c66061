"""The emulated workspace: channels, users, user groups, the messages posted into them, and the
Web API methods that read and change them.

A method takes the call's arguments and returns the JSON answer, or raises ``SlackError`` with
Slack's error code. Not thread-safe on its own: ``SlackEmulator`` runs every call under one lock.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.slack_api.limits import MAX_HOME_BLOCKS, Refused, check_blocks, check_message
from tests.slack_api.records import (
    _FIRST_TS,
    BOT_ID,
    BOT_NAME,
    Answer,
    Args,
    Blocks,
    Channel,
    Ephemeral,
    Message,
    PublishedView,
    SlackError,
    User,
    Usergroup,
)

# Slack's rule for a metadata `event_type`: letters, digits, underscores and hyphens, no
# periods or other punctuation ("Using message metadata"), starting with a letter (its
# schema guide). Slack posts a message whose `event_type` breaks the rule with its metadata
# dropped and an `invalid_metadata_schema` warning; the emulator refuses the call with that
# code instead, so a test sees at once the metadata it counted on would be gone.
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
MAX_PAGE = 1_000  # conversations.replies and conversations.history: at most this many a page
HISTORY_PAGE = 100  # conversations.history without `limit`


class Workspace:
    """One team with one bot user; ``methods`` maps Web API method names to their handlers."""

    def __init__(self, *, team_id: str, bot_user_id: str, clock: Callable[[], float]) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self._clock = clock
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, User] = {
            bot_user_id: User(bot_user_id, BOT_NAME, BOT_NAME, is_bot=True)
        }
        self.usergroups: dict[str, Usergroup] = {}
        self.history: dict[str, list[Message]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.views: list[PublishedView] = []
        self._ts = itertools.count(1)
        self._ims = itertools.count(1)
        self._views = itertools.count(1)
        self.methods: dict[str, Callable[[Args], Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "views.publish": self._views_publish,
        }

    # -- world, as tests set it up --------------------------------------------------------------

    def add_channel(
        self, channel_id: str, *, name: str, member: bool, is_im: bool, private: bool = False
    ) -> None:
        self.channels[channel_id] = Channel(channel_id, name, member, is_im=is_im, private=private)
        self.history.setdefault(channel_id, [])

    def add_user(
        self, user_id: str, *, name: str, real_name: str, groups: list[str], tz: str = ""
    ) -> None:
        self.users[user_id] = User(user_id, name, real_name, tz=tz)
        for group_id in groups:
            group = self.usergroups.setdefault(group_id, Usergroup(group_id, group_id.lower()))
            if user_id not in group.users:
                group.users.append(user_id)

    def add_usergroup(self, group_id: str, *, handle: str, users: list[str]) -> None:
        earlier = self.usergroups[group_id].users if group_id in self.usergroups else []
        merged = list(dict.fromkeys([*users, *earlier]))
        self.usergroups[group_id] = Usergroup(group_id, handle, merged)

    def find(self, ref: str) -> Channel | None:
        """The channel ``ref`` names: an id, ``name`` or ``#name``, or a user id for their IM."""
        if ref in self.channels:
            return self.channels[ref]
        for channel in self.channels.values():
            if channel.is_im and channel.users == (ref,):
                return channel
            if not channel.is_im and ref.lstrip("#") == channel.name:
                return channel
        return None

    def messages(self, ref: str) -> list[Message]:
        channel = self.find(ref)
        if channel is None:
            if ref in self.users:
                return []  # no IM opened with this user yet, so nothing sent to them
            raise KeyError(f"no channel {ref!r}; known: {sorted(self.channels)}")
        return [replace(m, blocks=copy.deepcopy(m.blocks)) for m in self.history[channel.id]]

    def scope_needed(self, method: str, args: Args) -> str | None:
        """The scope ``method`` needs beyond those every call has, for the conversation it
        names (reading messages needs the history scope of its kind); None if no other."""
        if method not in ("conversations.history", "conversations.replies"):
            return None
        channel = self.channels.get(str(args.get("channel") or ""))
        return channel.history_scope if channel is not None else None

    def next_ts(self) -> str:
        micros = _FIRST_TS + 100 * next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def post(self, channel: Channel, args: Args) -> Message:
        text, blocks = _content(args)
        metadata = _metadata(args)
        message = Message(
            ts=self.next_ts(),
            channel=channel.id,
            text=text or "",
            blocks=blocks or [],
            thread_ts=_str(args, "thread_ts"),
            user=self.bot_user_id,
            reply_broadcast=_bool(args, "reply_broadcast"),
            metadata=metadata,
        )
        self.history[channel.id].append(message)
        return message

    def edit(self, channel: Channel, ts: str, args: Args) -> Message:
        """Replace text, blocks and metadata of ``ts``; an argument left out keeps what was
        there."""
        text, blocks = _content(args)
        metadata = _metadata(args)
        history = self.history[channel.id]
        for i, old in enumerate(history):
            if old.ts == ts:
                history[i] = replace(
                    old,
                    text=old.text if text is None else text,
                    blocks=old.blocks if blocks is None else blocks,
                    updates=old.updates + 1,
                    metadata=old.metadata if metadata is None else metadata,
                )
                return history[i]
        raise SlackError("message_not_found")

    def delete(self, channel: Channel, ts: str) -> None:
        self.history[channel.id] = [m for m in self.history[channel.id] if m.ts != ts]

    # -- Web API methods -----------------------------------------------------------------------

    def _auth_test(self, args: Args) -> Answer:
        return {
            "url": "https://emulated.slack.com/",
            "team": "Emulated",
            "user": BOT_NAME,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: Args) -> Answer:
        ref = _required(args, "channel", "channel_not_found")
        channel = self.find(ref)
        if channel is None and ref in self.users:
            channel = self._open([ref])  # Slack opens the IM when posting to a user id
        if channel is None:
            raise SlackError("channel_not_found")
        if not channel.member:
            raise SlackError("not_in_channel")
        message = self.post(channel, args)
        return {"channel": channel.id, "ts": message.ts, "message": self._payload(message)}

    def _chat_update(self, args: Args) -> Answer:
        channel = self.channels.get(_required(args, "channel", "channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        message = self.edit(channel, _required(args, "ts", "message_not_found"), args)
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": self._payload(message),
        }

    def _chat_get_permalink(self, args: Args) -> Answer:
        """As Slack forms them: `p` and the ts without its dot; a reply names its thread."""
        channel = self.channels.get(_required(args, "channel", "channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        ts = _required(args, "message_ts", "message_not_found")
        message = next((m for m in self.history[channel.id] if m.ts == ts), None)
        if message is None:
            raise SlackError("message_not_found")
        link = f"https://emulated.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        if message.thread_ts and message.thread_ts != ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    def _chat_post_ephemeral(self, args: Args) -> Answer:
        channel = self.find(_required(args, "channel", "channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        if not channel.member:
            raise SlackError("not_in_channel")
        user = _required(args, "user", "user_not_in_channel")
        if user not in self.users:
            raise SlackError("user_not_in_channel")
        text, blocks = _content(args)
        ephemeral = Ephemeral(
            channel=channel.id,
            user=user,
            text=text or "",
            blocks=blocks or [],
            thread_ts=_str(args, "thread_ts"),
            message_ts=self.next_ts(),
            at=self._clock(),
        )
        self.ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.message_ts}

    def _conversations_open(self, args: Args) -> Answer:
        users = [u.strip() for u in _required(args, "users", "users_list_not_supplied").split(",")]
        if any(u not in self.users for u in users):
            raise SlackError("user_not_found")
        before = len(self.channels)
        channel = self._open(users)
        answer: Answer = {"channel": {"id": channel.id}}
        if len(self.channels) == before:
            answer.update(no_op=True, already_open=True)
        if _bool(args, "return_im"):
            answer["channel"] = channel.info()
        return answer

    def _conversations_info(self, args: Args) -> Answer:
        channel = self.channels.get(_required(args, "channel", "channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        return {"channel": channel.info()}

    def _conversations_replies(self, args: Args) -> Answer:
        """A thread as Slack answers it: its parent first, then its replies, oldest first
        (``ts`` may name the parent or any reply; a message without replies is a thread of
        one); metadata only with ``include_all_metadata``."""
        channel = self._readable(args)
        ts = _required(args, "ts", "thread_not_found")
        history = self.history[channel.id]
        named = next((m for m in history if m.ts == ts), None)
        if named is None:
            raise SlackError("thread_not_found")
        root = named.thread_ts or named.ts
        thread = sorted(
            (m for m in history if m.ts == root or m.thread_ts == root), key=lambda m: _key(m.ts)
        )
        page, more = _page(thread, args, default=MAX_PAGE)
        with_metadata = _bool(args, "include_all_metadata")
        return {
            "messages": [self._listed(m, history, metadata=with_metadata) for m in page],
            "has_more": more is not None,
            "response_metadata": {"next_cursor": _cursor(more)},
        }

    def _conversations_history(self, args: Args) -> Answer:
        """What the channel shows, newest first: messages that are not replies, and replies
        also sent to the channel; metadata only with ``include_all_metadata``."""
        channel = self._readable(args)
        history = self.history[channel.id]
        shown = [
            m for m in history if m.thread_ts is None or m.thread_ts == m.ts or m.reply_broadcast
        ]
        shown.sort(key=lambda m: _key(m.ts), reverse=True)
        page, more = _page(shown, args, default=HISTORY_PAGE)
        with_metadata = _bool(args, "include_all_metadata")
        return {
            "messages": [self._listed(m, history, metadata=with_metadata) for m in page],
            "has_more": more is not None,
            "pin_count": 0,
            "response_metadata": {"next_cursor": _cursor(more)},
        }

    def _users_info(self, args: Args) -> Answer:
        user = self.users.get(_required(args, "user", "user_not_found"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.info(self.team_id)}

    def _usergroups_list(self, args: Args) -> Answer:
        include_users = _bool(args, "include_users")
        groups = [
            g.info(self.team_id, include_users=include_users) for g in self.usergroups.values()
        ]
        return {"usergroups": groups}

    def _usergroups_users_list(self, args: Args) -> Answer:
        group = self.usergroups.get(_required(args, "usergroup", "no_such_subteam"))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group.users)}

    def _views_publish(self, args: Args) -> Answer:
        user_id = _required(args, "user_id", "invalid_arguments")
        if user_id not in self.users:
            raise SlackError("user_not_found")
        view = _json(args.get("view"), "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackError("invalid_arguments")
        try:
            check_blocks(view.get("blocks") or [], limit=MAX_HOME_BLOCKS)
        except Refused as refusal:
            raise SlackError(refusal.code) from None
        self.views.append(PublishedView(user_id, view, self._clock()))
        return {"view": {**view, "id": f"V{next(self._views):04d}", "team_id": self.team_id}}

    # -- helpers -------------------------------------------------------------------------------

    def _open(self, users: list[str]) -> Channel:
        others = tuple(u for u in users if u != self.bot_user_id) or (self.bot_user_id,)
        for channel in self.channels.values():
            if (channel.is_im or channel.is_mpim) and channel.users == others:
                return channel
        n = next(self._ims)
        is_im = len(others) == 1
        channel_id = f"D{n:04d}" if is_im else f"G{n:04d}"
        name = others[0] if is_im else "mpdm-" + "--".join(others)
        channel = Channel(channel_id, name, True, is_im=is_im, is_mpim=not is_im, users=others)
        self.channels[channel_id] = channel
        self.history[channel_id] = []
        return channel

    def _readable(self, args: Args) -> Channel:
        """The conversation a reading method names (by id, as Slack wants it), if the bot is
        in it."""
        channel = self.channels.get(_required(args, "channel", "channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        if not channel.member:
            raise SlackError("not_in_channel")
        return channel

    def _listed(self, message: Message, history: list[Message], *, metadata: bool) -> Answer:
        """A message as the reading methods list it: a thread's parent says how many replies
        it has and from whom."""
        payload = self._payload(message, metadata=metadata)
        replies = [m for m in history if m.thread_ts == message.ts and m.ts != message.ts]
        if replies:
            users = list(dict.fromkeys(m.user for m in replies))
            payload.update(
                thread_ts=message.ts,
                reply_count=len(replies),
                reply_users=users,
                reply_users_count=len(users),
                latest_reply=max((m.ts for m in replies), key=_key),
            )
        return payload

    def _payload(self, message: Message, *, metadata: bool = True) -> Answer:
        payload: Answer = {
            "type": "message",
            "user": message.user,
            "bot_id": BOT_ID,
            "team": self.team_id,
            "text": message.text,
            "ts": message.ts,
        }
        if message.blocks:
            payload["blocks"] = message.blocks
        if message.thread_ts:
            payload["thread_ts"] = message.thread_ts
            if message.reply_broadcast:
                payload["subtype"] = "thread_broadcast"
        if metadata and message.metadata is not None:
            payload["metadata"] = copy.deepcopy(message.metadata)
        return payload


def _str(args: Args, key: str) -> str | None:
    value = args.get(key)
    return None if value is None or value == "" else str(value)


def _required(args: Args, key: str, error: str) -> str:
    value = _str(args, key)
    if value is None:
        raise SlackError(error)
    return value


def _bool(args: Args, key: str) -> bool:
    value = args.get(key)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _json(value: Any, error: str) -> Any:
    """Form bodies carry structured arguments as JSON text; JSON bodies carry them as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise SlackError(error) from None


def _metadata(args: Args) -> dict[str, Any] | None:
    """``metadata`` as Slack checks it: a JSON object (else ``invalid_metadata_format``) of
    exactly an ``event_type`` of Slack's form and an ``event_payload`` object (else
    ``invalid_metadata_schema``); None when there is none."""
    raw = args.get("metadata")
    if raw is None or raw == "":
        return None
    metadata = _json(raw, "invalid_metadata_format")
    if not isinstance(metadata, dict):
        raise SlackError("invalid_metadata_format")
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if set(metadata) != {"event_type", "event_payload"}:
        raise SlackError("invalid_metadata_schema")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        raise SlackError("invalid_metadata_schema")
    if not isinstance(payload, dict):
        raise SlackError("invalid_metadata_schema")
    return copy.deepcopy(metadata)


def _key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _page(messages: list[Message], args: Args, *, default: int) -> tuple[list[Message], str | None]:
    """One page of ``messages`` from the ``cursor`` on, ``limit`` long (at most MAX_PAGE),
    and the ts the next page starts at (None: this is the last)."""
    raw_limit = _str(args, "limit")
    try:
        limit = default if raw_limit is None else int(raw_limit)
    except ValueError:
        raise SlackError("invalid_limit") from None
    limit = min(max(limit, 1), MAX_PAGE)
    start = 0
    cursor = _str(args, "cursor")
    if cursor is not None:
        try:
            prefix, _, ts = base64.b64decode(cursor, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise SlackError("invalid_cursor") from None
        starts = [i for i, m in enumerate(messages) if m.ts == ts]
        if prefix != "next_ts" or not starts:
            raise SlackError("invalid_cursor")
        start = starts[0]
    page = messages[start : start + limit]
    rest = messages[start + limit :]
    return page, rest[0].ts if rest else None


def _cursor(ts: str | None) -> str:
    """Slack's cursors are base64 of ``next_ts:<ts>``; an empty one: no more pages."""
    return "" if ts is None else base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _content(args: Args) -> tuple[str | None, Blocks | None]:
    """``text`` and ``blocks`` as Slack checks them: one of them (or attachments) is needed."""
    text = _str(args, "text")
    blocks = None if args.get("blocks") is None else _json(args["blocks"], "invalid_blocks_format")
    try:
        check_message(text, blocks)
    except Refused as refusal:
        raise SlackError(refusal.code) from None
    if text is None and not blocks and not args.get("attachments"):
        raise SlackError("no_text")
    return text, blocks
