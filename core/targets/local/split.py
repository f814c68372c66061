"""Splitting a local endpoint's requests between the serving deployment and a candidate.

The endpoint host writes the split into a small region of memory every worker maps (a
`Board`): a generation (0: no split), the candidate's share (`canary`, percent of callers'
requests it answers), the `shadow` share (percent of the others copied to it), the tolerance
numbers agree within, and the private ports of the candidate's workers. A serving worker reads
the generation once per request; only when it changed does it read the rest.

Shares are dealt by an accumulator per worker, not drawn at random: a worker gives the
candidate `canary` of every 100 requests it takes, to the request, so the endpoint's share is
the asked one within one request per worker. A canary request is relayed to one of the
candidate's workers (in turn) over a keep-alive connection, and its answer (status, content
type, body, `X-Model`) goes to the caller; the candidate counts it in its own traffic
(traffic.py: the endpoint's status shows it under the candidate's version). When the
candidate refuses, fails (5xx) or does not answer within `CANARY_TIMEOUT_S`, the serving
version answers instead: the caller gets an answer, the candidate is counted with an error
(and the endpoint's traffic counts both answers). A shadow copy leaves after the caller has
its answer; at most `SHADOW_IN_FLIGHT` copies per worker wait for the candidate, the ones over
that are dropped (and counted as dropped). Both answers are compared: identical predictions
in JSON `{"predictions": ...}` bodies, numbers within the tolerance element by element.

Each worker counts what it did since the split was set into its traffic region (traffic.py,
`SPLIT_AT`), each group stamped with the split's generation, and the host adds up the groups
of the current generation: so counts start from zero when a split is set, and go on when the
same split is set again. Latency percentiles are over everything since the split was set.

Only the standard library here: a worker running in a model's own environment imports this.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import mmap
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from core.predictions import agree
from core.targets.local.traffic import BOUNDS_S, GROUP, SPLIT_AT, Counts, Region

if TYPE_CHECKING:
    from core.targets.base import Comparison

MAX_PORTS = 64
# board cells: generation, canary %, shadow %, tolerance (a double), port count, ports
_PORTS_AT = 5
BOARD_SIZE = (_PORTS_AT + MAX_PORTS) * 8
# the groups each worker counts into, and the cells of a group after its generation stamp
SERVING, CANDIDATE, SHADOW = 0, 1, 2
_REQUESTS, _ERRORS, _COMPARED, _AGREED, _DROPPED, _LATENCY = 1, 2, 3, 4, 5, 6
CANARY_TIMEOUT_S = 10.0
SHADOW_TIMEOUT_S = 10.0
SHADOW_IN_FLIGHT = 16
IDLE_KEPT = 64  # idle connections to the candidate a worker keeps, per candidate worker
_FAILED = 503  # what a refusal or no answer counts as
CANARY_HEADER = b"x-chatops-canary"  # on a request relayed to the candidate for a caller
PROBE_HEADER = b"x-chatops-probe"  # on the bot's own request (prediction diff): not counted


class Board(Region):
    """The host's side: what it writes, every worker reads."""

    def __init__(self) -> None:
        super().__init__(BOARD_SIZE)
        self.doubles = memoryview(self.map).cast("d")

    def set(
        self, generation: int, *, canary: int, shadow: int, tolerance: float, ports: list[int]
    ) -> None:
        cells = self.cells
        cells[0] = 0  # a worker reading meanwhile sees no split, then the whole new one
        cells[1], cells[2] = canary, shadow
        self.doubles[3] = tolerance
        ports = ports[:MAX_PORTS]
        cells[4] = len(ports)
        for i, port in enumerate(ports):
            cells[_PORTS_AT + i] = port
        cells[0] = generation

    def clear(self) -> None:
        self.cells[0] = 0

    def close(self) -> None:
        self.doubles.release()
        super().close()


class Totals:
    """What the workers counted for one split, added up by the host."""

    def __init__(self) -> None:
        self.groups = [Counts() for _ in range(3)]
        self.compared = self.agreed = self.dropped = 0

    def add(self, cells: memoryview, generation: int) -> None:
        """Adds one worker's groups, those it counted for `generation`."""
        for group, counts in enumerate(self.groups):
            base = SPLIT_AT + group * GROUP
            cells_of = cells[base : base + GROUP].tolist()
            if cells_of[0] != generation:
                continue
            counts.requests += cells_of[_REQUESTS]
            counts.errors += cells_of[_ERRORS]
            for i, n in enumerate(cells_of[_LATENCY:]):
                counts.latency[i] += n
            if group == SHADOW:
                self.compared += cells_of[_COMPARED]
                self.agreed += cells_of[_AGREED]
                self.dropped += cells_of[_DROPPED]

    def merge(self, other: Totals) -> None:
        for mine, theirs in zip(self.groups, other.groups, strict=True):
            mine.add(theirs)
        self.compared += other.compared
        self.agreed += other.agreed
        self.dropped += other.dropped

    def as_dict(self) -> dict[str, Any]:
        serving, candidate, shadow = (g.as_dict() for g in self.groups)
        shadow.update(compared=self.compared, agreed=self.agreed, dropped=self.dropped)
        return {"serving": serving, "candidate": candidate, "shadowed": shadow}


def predictions(body: bytes) -> tuple[bool, Any]:
    """(True, the predictions) of a JSON `{"predictions": ...}` answer; (False, None) else."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return False, None
    if isinstance(decoded, dict) and "predictions" in decoded:
        return True, decoded["predictions"]
    return False, None


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class Pool:
    """Keep-alive HTTP/1.1 connections from one worker to the candidate's workers."""

    def __init__(self) -> None:
        self.idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def post(
        self, port: int, body: bytes, content_type: bytes | None, *, canary: bool = False
    ) -> Answer:
        """The candidate worker's answer to `POST /invocations`. A kept connection the
        candidate closed meanwhile (its keep-alive ended) is tried once more on a new one."""
        idle = self.idle.setdefault(port, [])
        while True:
            reused = bool(idle)
            if reused:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                answer, keep = await _exchange(reader, writer, port, body, content_type, canary)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if reused:
                    continue
                raise
            except BaseException:  # timed out or cancelled mid-answer: the connection is spent
                writer.close()
                raise
            # kept unless the split changed meanwhile (its connections were let go)
            if keep and len(idle) < IDLE_KEPT and self.idle.get(port) is idle:
                idle.append((reader, writer))
            else:
                writer.close()
            return answer

    def close(self) -> None:
        for idle in self.idle.values():
            for _, writer in idle:
                writer.close()
        self.idle.clear()


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    port: int,
    body: bytes,
    content_type: bytes | None,
    canary: bool,
) -> tuple[Answer, bool]:
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n" % (
        port,
        len(body),
    )
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    if canary:  # the candidate counts it as its answer to the endpoint's caller
        head += CANARY_HEADER + b": 1\r\n"
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("the candidate closed the connection")
    status = int(line.split(None, 2)[1])
    headers: list[tuple[bytes, bytes]] = []
    length, keep = -1, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionResetError("the candidate closed the connection")
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            keep = value.lower() != b"close"
        else:
            headers.append((name, value))
    if length < 0:
        raise ValueError("the candidate's answer has no length")
    return (status, headers, await reader.readexactly(length)), keep


class Split:
    """One split as a worker deals it: which requests go where, and what it counted."""

    def __init__(
        self,
        generation: int,
        *,
        canary: int,
        shadow: int,
        tolerance: float,
        ports: list[int],
        counts: memoryview,
        pool: Pool,
    ) -> None:
        self.generation = generation
        self.canary, self.shadow, self.tolerance = canary, shadow, tolerance
        self.ports = ports
        self.counts = counts
        self.pool = pool
        self._canary_due = self._shadow_due = 0
        self._next = 0
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        for group in (SERVING, CANDIDATE, SHADOW):
            base = SPLIT_AT + group * GROUP
            if counts[base] != generation:
                counts[base] = 0
                counts[base : base + GROUP] = memoryview(bytes(GROUP * 8)).cast("Q")
                counts[base] = generation

    def canary_turn(self) -> bool:
        """Whether this request goes to the candidate."""
        if not self.ports:
            return False
        self._canary_due += self.canary
        if self._canary_due >= 100:
            self._canary_due -= 100
            return True
        return False

    def shadow_turn(self) -> bool:
        """Whether a copy of this request (answered by what serves) goes to the candidate."""
        if not self.ports:
            return False
        self._shadow_due += self.shadow
        if self._shadow_due >= 100:
            self._shadow_due -= 100
            return True
        return False

    def _port(self) -> int:
        self._next = (self._next + 1) % len(self.ports)
        return self.ports[self._next]

    def record(self, group: int, status: int, seconds: float | None) -> None:
        cells, base = self.counts, SPLIT_AT + group * GROUP
        cells[base + _REQUESTS] += 1
        if status >= 500:
            cells[base + _ERRORS] += 1
        if seconds is not None:
            cells[base + _LATENCY + bisect.bisect_right(BOUNDS_S, seconds)] += 1

    def served(self, status: int, began: float) -> None:
        """What serves answered a caller, the request having arrived at `began`."""
        self.record(SERVING, status, time.monotonic() - began)

    async def forward(self, body: bytes, content_type: bytes | None) -> Answer | None:
        """The candidate's answer for the caller; None when it failed (counted so) and what
        serves must answer instead."""
        began = time.monotonic()
        try:
            answer = await asyncio.wait_for(
                self.pool.post(self._port(), body, content_type, canary=True), CANARY_TIMEOUT_S
            )
        except Exception:  # refused, no answer in time, an answer that is no HTTP: its failure
            self.record(CANDIDATE, _FAILED, time.monotonic() - began)
            return None
        self.record(CANDIDATE, answer[0], time.monotonic() - began)
        return None if answer[0] >= 500 else answer

    def mirror(self, body: bytes, content_type: bytes | None, served: bytes) -> None:
        """Sends a copy to the candidate without waiting for it; dropped when too many wait."""
        if self.in_flight >= SHADOW_IN_FLIGHT:
            self.counts[SPLIT_AT + SHADOW * GROUP + _DROPPED] += 1
            return
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._shadow(body, content_type, served))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, body: bytes, content_type: bytes | None, served: bytes) -> None:
        began = time.monotonic()
        try:
            status, _, answer = await asyncio.wait_for(
                self.pool.post(self._port(), body, content_type), SHADOW_TIMEOUT_S
            )
        except Exception:  # refused, no answer in time, an answer that is no HTTP: its failure
            self.record(SHADOW, _FAILED, None)
            return
        finally:
            self.in_flight -= 1
        self.record(SHADOW, status, time.monotonic() - began)
        if status != 200:
            return
        ours, expected = predictions(served)
        theirs, got = predictions(answer)
        if ours and theirs:
            base = SPLIT_AT + SHADOW * GROUP
            self.counts[base + _COMPARED] += 1
            if agree(expected, got, self.tolerance):
                self.counts[base + _AGREED] += 1


class Splitter:
    """The worker's side: the split in force, read from the host's board once per request."""

    def __init__(self, fd: int, counts: memoryview) -> None:
        self._map = mmap.mmap(fd, BOARD_SIZE)
        os.close(fd)
        self.board = memoryview(self._map).cast("Q")
        self.doubles = memoryview(self._map).cast("d")
        self.counts = counts
        self.generation = 0
        self.split: Split | None = None
        self.pool = Pool()

    def current(self) -> Split | None:
        """The split in force now, None for none."""
        generation = self.board[0]
        if generation != self.generation:
            self._load(generation)
        return self.split

    def _load(self, generation: int) -> None:
        board = self.board
        canary, shadow, tolerance = board[1], board[2], self.doubles[3]
        ports = list(board[_PORTS_AT : _PORTS_AT + min(board[4], MAX_PORTS)])
        if board[0] != generation:
            return  # the host is writing it: read at the next request
        self.pool.close()  # connections to a candidate that may be gone
        self.generation = generation
        self.split = None
        if generation:
            self.split = Split(
                generation,
                canary=int(canary),
                shadow=int(shadow),
                tolerance=float(tolerance),
                ports=ports,
                counts=self.counts,
                pool=self.pool,
            )


def summary(reply: dict[str, Any] | None, candidate: str) -> Comparison:
    """The host's answer to `compare`, as the target reports it; unknown, with why, when no
    host ran, it could not say, or no split with `candidate` was ever set."""
    # here: a worker in a model's environment never needs them
    from core.targets.base import Comparison, Shadowed, Side
    from core.targets.local import messages

    if reply is None:
        return Comparison(known=False, detail=messages.SPLIT_NO_HOST)
    if not reply.get("ok"):
        error = str(reply.get("error"))
        old = "unknown op" in error
        return Comparison(
            known=False, detail=messages.SPLIT_OLD_HOST if old else messages.split_unreadable(error)
        )
    found = reply.get("split")
    if not found:
        return Comparison(known=False, detail=messages.split_none(candidate))

    def side(data: dict[str, Any]) -> Side | None:
        if "version" not in data:
            return None
        counts = Counts.from_dict(data)
        return Side(
            version=int(data["version"]),
            deployment=str(data["deployment"]),
            requests=counts.requests,
            errors=counts.errors,
            p50_ms=counts.percentile_ms(0.5),
            p99_ms=counts.percentile_ms(0.99),
        )

    copies = dict(reply["shadowed"])
    counted = Counts.from_dict(copies)
    dropped = int(copies.get("dropped", 0))
    said = [messages.SPLIT_ENDED] if reply.get("ended") else []
    if dropped:
        said.append(messages.shadow_dropped(dropped))
    return Comparison(
        known=True,
        canary=0 if reply.get("ended") else int(found["canary"]),
        shadow=0 if reply.get("ended") else int(found["shadow"]),
        serving=side(dict(reply["serving"])),
        candidate=side(dict(reply["candidate"])),
        shadowed=Shadowed(
            requests=counted.requests,
            errors=counted.errors,
            compared=int(copies["compared"]),
            agreed=int(copies["agreed"]),
            p50_ms=counted.percentile_ms(0.5),
            p99_ms=counted.percentile_ms(0.99),
        ),
        since_s=float(found["since_s"]),
        detail="; ".join(said),
    )
