"""The scrubber: every text that leaves the core (Slack, console, logs, events, audit, error
texts) passes `scrub` first, so no credential and no server path reaches a person or a file.

It removes what it can recognise by its shape (URL userinfo, token-like query values, Slack
tokens, the bot's own API tokens, bearer and basic credentials) and what the process knows
to be secret: the values registered at start (`register_secret`, `register_settings`).
Absolute paths under the roots the process knows (state directory, home, temporary
directories, the Python environment) are shortened to their last component, which is what a
reader needs to recognise them.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TextIO
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
ELIDED = "…"
# shorter values are too likely to be ordinary words to be masked wherever they appear
MIN_SECRET = 6
# a scrubbed text is scrubbed again until nothing changes; a bound keeps that finite
_PASSES = 4

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#@]*(?:@[^/\s?#@]*)*@")
_QUERY_SECRET = re.compile(
    r"([?&;][\w.-]*?(?:token|key|secret|password|passwd|pwd|signature|sig|credential|auth)"
    r"[\w.-]*=)[^&\s#\"'<>|]*",
    re.IGNORECASE,
)
_PAIR_SECRET = re.compile(
    r"\b((?:password|passwd|secret|api[_-]?key|access[_-]?key|token)=)[^&\s#\"'<>|,;]+",
    re.IGNORECASE,
)
_SLACK_TOKEN = re.compile(r"\bx(?:ox[a-z]|app)-[A-Za-z0-9-]+")
# the bot's own personal API tokens (`core.tokens`): `chatops_` and a long random secret
_API_TOKEN = re.compile(r"\bchatops_[A-Za-z0-9_-]{44,}")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
# base64 with a digit, symbol or inner capital: "Basic authentication" is prose
_BASIC = re.compile(r"\b(Basic)\s+(?=[A-Za-z0-9+/]+[0-9+/=A-Z])[A-Za-z0-9+/]{8,}=*")
# an absolute path: not inside a word, a relative path or one already elided; ends at
# whitespace, quotes, brackets and separators
_SEGMENT = r"[^\s/\"'`<>|,;:()\[\]{}]+"
_PATH = re.compile(rf"(?<![\w.~…/-])(/+)({_SEGMENT}(?:/+{_SEGMENT})*/*)")


class Scrubber:
    """Masks credentials and shortens private paths; knows the secrets and roots registered
    with it. The process has one (`scrub`, `register_secret`, ...); tests may make their own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._roots: set[str] = set()

    def scrub(self, text: str) -> str:
        """`text` without credentials and with known server paths shortened; idempotent."""
        if not text:
            return text
        for _ in range(_PASSES):
            cleaned = self._once(text)
            if cleaned == text:
                break
            text = cleaned
        return self._mask_secrets(text)

    def register_secret(self, value: str | None) -> None:
        """Masks `value` (and its URL-encoded forms) wherever it appears from now on."""
        if not value or len(value) < MIN_SECRET:
            return
        with self._lock:
            for form in {value, quote(value, safe=""), unquote(value)}:
                if len(form) >= MIN_SECRET:
                    self._secrets.add(form)

    def register_root(self, path: str | os.PathLike[str] | None) -> None:
        """Paths below `path` are shown as `…/<last component>` from now on."""
        if not path:
            return
        root = os.path.normpath(os.path.abspath(os.fspath(path)))
        if root == "/":  # would hide every path, including ones people must read
            return
        with self._lock:
            self._roots.add(root)
            real = os.path.realpath(root)
            if real != "/":
                self._roots.add(real)

    def secrets(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._secrets)

    def _once(self, text: str) -> str:
        text = self._mask_secrets(text)
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
        text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
        text = _PAIR_SECRET.sub(lambda m: m.group(1) + MASK, text)
        text = _SLACK_TOKEN.sub(MASK, text)
        text = _API_TOKEN.sub(MASK, text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _BASIC.sub(lambda m: f"{m.group(1)} {MASK}", text)
        return _PATH.sub(self._shorten, text)

    def _mask_secrets(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        # masking shortens the text, so this ends; a mask may join pieces into a new one
        changed = True
        while changed:
            changed = False
            for secret in secrets:
                if secret in text:
                    text = text.replace(secret, MASK)
                    changed = True
        return text

    def _shorten(self, match: re.Match[str]) -> str:
        slashes, rest = match.group(1), match.group(2)
        kept = rest.rstrip("/.")
        path, tail = "/" + kept, rest[len(kept) :]
        if not kept or not self._under_root(os.path.normpath(path)):
            return match.group(0)
        # keep what came before the path (`file://`, `sqlite:///`) readable
        return f"{slashes[:-1]}{ELIDED}/{PurePosixPath(path).name or kept}{tail}"

    def _under_root(self, path: str) -> bool:
        with self._lock:
            roots = tuple(self._roots)
        return any(path == root or path.startswith(root + "/") for root in roots)


_default = Scrubber()


def scrub(text: str) -> str:
    """`text` without credentials and with known server paths shortened; idempotent."""
    return _default.scrub(text)


def scrub_value(value: Any) -> Any:
    """`value` with every string inside it (dicts, lists, tuples) scrubbed."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub_value(v) for v in value)
    return value


def register_secret(value: str | None) -> None:
    """Masks `value` (and its URL-encoded forms) in every text scrubbed from now on."""
    _default.register_secret(value)


def register_root(path: str | os.PathLike[str] | None) -> None:
    """Paths below `path` are shown as `…/<last component>` from now on."""
    _default.register_root(path)


def registered_secrets() -> frozenset[str]:
    return _default.secrets()


class _Environment(Protocol):
    @property
    def target(self) -> str: ...
    @property
    def api_key_env(self) -> str: ...


class _Settings(Protocol):
    """What of the bot's settings (`core.config.Settings`) is secret or private."""

    @property
    def state_dir(self) -> Path: ...
    @property
    def artifact_root(self) -> Path: ...
    @property
    def mlflow_tracking_uri(self) -> str: ...
    @property
    def database_url(self) -> str: ...
    @property
    def registry_webhook_secret(self) -> Any: ...
    @property
    def environments(self) -> Sequence[_Environment]: ...


def register_settings(settings: _Settings) -> None:
    """Registers what the bot's settings make secret or private: the tracking URI's
    password, the CML API keys of every environment, and the state directory."""
    register_root(settings.state_dir)
    register_root(settings.artifact_root)
    for uri in (settings.mlflow_tracking_uri, settings.database_url):
        register_secret(_password(uri))
        register_root(_sqlite_folder(uri))
    if settings.registry_webhook_secret is not None:
        register_secret(settings.registry_webhook_secret.get_secret_value())
    for env in settings.environments:
        if env.target == "cml":
            register_secret(os.environ.get(env.api_key_env))


class ScrubFilter(logging.Filter):
    """Scrubs every record's message (arguments merged in) and its exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: keep the template
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_log_filter(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Adds a `ScrubFilter` to `handlers` (default: the root logger's, and the handler
    logging falls back on before any is configured), once each."""
    if handlers is None:
        fallback = [logging.lastResort] if logging.lastResort is not None else []
        handlers = [*logging.getLogger().handlers, *fallback]
    for handler in handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())


class ScrubbedStream(io.TextIOBase):
    """A text stream that scrubs what is written to it, a line at a time (a credential
    split across two writes is masked all the same), before `raw` gets it. Anything else
    (`isatty`, `fileno`, `encoding`) is `raw`'s."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw
        self._held = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            done, line_end, self._held = (self._held + text).rpartition("\n")
            if line_end:
                self.raw.write(scrub(done) + line_end)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._held:  # a progress line rewritten in place (`\r`) has no newline
                self.raw.write(scrub(self._held))
                self._held = ""
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.raw.isatty()

    def fileno(self) -> int:
        return self.raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@contextmanager
def scrubbed_output() -> Iterator[None]:
    """While it lasts, what libraries print to stdout and stderr is scrubbed before it
    reaches the terminal (MLflow prints `View experiment at: <tracking URI>` with its
    password); and their own log handlers (MLflow's) scrub from then on."""
    install_log_filter(logging.getLogger("mlflow").handlers)
    before = sys.stdout, sys.stderr
    wrapped = [s if isinstance(s, ScrubbedStream) else ScrubbedStream(s) for s in before]
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        for stream in wrapped:
            stream.flush()
        sys.stdout, sys.stderr = before


def _password(uri: str) -> str | None:
    try:
        return urlsplit(uri).password
    except ValueError:
        return None


def _sqlite_folder(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    return os.path.dirname("/" + path.lstrip("/")) if path else None


def _default_roots() -> None:
    for root in (
        # the bot's own code: its frames in a server's traceback
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        tempfile.gettempdir(),
        "/tmp",
        "/var/tmp",
        os.path.expanduser("~"),
        sys.prefix,
        sys.base_prefix,
    ):
        register_root(root)


_default_roots()
