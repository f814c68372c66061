"""Where each local endpoint's files, control socket, port and logs live.

Everything is keyed by the pair (environment, endpoint), each name made one path component
on its own (`component`), so no two pairs can meet: `prod`/`eu-iris` and `prod-eu`/`iris`
get different directories, sockets, ports and logs. Environment names come from settings
and may hold any character; endpoint names from the command grammar.

    <state>/local/ports.json                  the port of every endpoint, for its life
    <state>/local/envs/<env>/<ep>/control.sock  the endpoint host's control socket
    <state>/logs/<env>/<ep>/                  host and deployment logs
    <state>/artifacts/<env>/<ep>/<model>/<v>  the model files a deployment serves

Before this layout, sockets were `<state>/run/<env>-<ep>.sock` (ambiguous) and ports
`<state>/run/ports.json` keyed `<env>/<ep>`; `PortBook` carries those entries over, and the
target adopts a host still listening on its old socket once it has proved whose it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from core.targets.base import EndpointRef

# unix socket paths are at most 107 bytes; a longer one is replaced by a digest of it
_SOCKET_PATH_MAX = 100


def component(name: str) -> str:
    """`name` as one path component, different for every different name: `/`, `%` and
    anything unusual are %-escaped, and names made of dots cannot climb out."""
    text = quote(name, safe="")  # keeps letters, digits and `_.-~`; `%` itself becomes %25
    if not text:
        return "%"  # `quote` never returns a lone `%`, so the empty name stays distinct
    if text.startswith("."):
        text = "%2E" + text[1:]  # a literal "." never becomes "%2E" otherwise
    return text


def _short(path: Path) -> str:
    text = str(path)
    if len(text) < _SOCKET_PATH_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"/tmp/chatops-{digest}.sock"


@dataclass(frozen=True)
class Layout:
    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "local"

    def endpoint_dir(self, ep: EndpointRef) -> Path:
        return self.root / "envs" / component(ep.env) / component(ep.name)

    def control_path(self, ep: EndpointRef) -> str:
        path = self.endpoint_dir(ep) / "control.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return _short(path)

    def log_dir(self, ep: EndpointRef) -> Path:
        return self.state_dir / "logs" / component(ep.env) / component(ep.name)

    def artifacts(self, ep: EndpointRef, model: str, version: int) -> Path:
        # per endpoint too: two environments fetching one version at once never share a
        # half-written directory
        base = self.state_dir / "artifacts" / component(ep.env) / component(ep.name)
        return base / component(model) / str(version)

    def legacy_control_path(self, ep: EndpointRef) -> str:
        """Where hosts started before this layout listen (one path for `prod`/`eu-iris`
        and `prod-eu`/`iris`: ask the host whose it is before using it)."""
        return _short(self.state_dir / "run" / f"{ep.env}-{ep.name}.sock")


@dataclass(frozen=True)
class Entry:
    env: str
    name: str
    port: int
    legacy: bool = False  # carried over from the old layout: its host may be on the old socket


class PortBook:
    """The port of every endpoint of one state directory, shared by every environment and
    every bot process using it (file lock): an endpoint keeps its port, so its URL."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._path = layout.root / "ports.json"
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[Entry]]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self._path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            before = list(entries)
            yield entries
            if entries != before or not self._path.exists():
                self._write(entries)

    def _read(self) -> list[Entry]:
        if self._path.exists():
            data = json.loads(self._path.read_text())
            return [Entry(**e) for e in data["endpoints"]]
        old = self.layout.state_dir / "run" / "ports.json"
        if not old.exists():
            return []
        entries = []
        for key, port in json.loads(old.read_text()).items():
            env, name = key.rsplit("/", 1)  # endpoint names never hold a `/`
            entries.append(Entry(env=env, name=name, port=int(port), legacy=True))
        return entries

    def _write(self, entries: list[Entry]) -> None:
        data = {"endpoints": [e.__dict__ for e in entries]}
        partial = self._path.with_suffix(".partial")
        partial.write_text(json.dumps(data, indent=1))
        os.replace(partial, self._path)

    def entries(self) -> list[Entry]:
        with self._locked() as entries:
            return list(entries)

    def find(self, ep: EndpointRef) -> Entry | None:
        return next((e for e in self.entries() if (e.env, e.name) == (ep.env, ep.name)), None)

    def assign(self, ep: EndpointRef, candidates: range, free: Callable[[int], bool]) -> int | None:
        """The endpoint's port: the one it has, else the first candidate no endpoint has and
        `free(port)` accepts; None when none is left."""
        with self._locked() as entries:
            for e in entries:
                if (e.env, e.name) == (ep.env, ep.name):
                    return e.port
            taken = {e.port for e in entries}
            for port in candidates:
                if port not in taken and free(port):
                    entries.append(Entry(env=ep.env, name=ep.name, port=port))
                    return port
        return None

    def settle(self, ep: EndpointRef) -> None:
        """The endpoint's host is known to be on the new layout (or gone): stop looking on
        the old socket for it."""
        with self._locked() as entries:
            for i, e in enumerate(entries):
                if (e.env, e.name) == (ep.env, ep.name) and e.legacy:
                    entries[i] = Entry(env=e.env, name=e.name, port=e.port)
