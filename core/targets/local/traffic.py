"""Counting what a local endpoint answers, for on-call: requests, 5xx errors and latency.

Each worker counts into a small region of memory it shares with its endpoint host (a `Tally`):
one bucket per 10 seconds, the last six minutes kept in a ring, each bucket holding the
requests, the errors and a latency histogram with fixed bounds (four per doubling, 0.1 ms to
about 100 s), so the host can add up any workers' buckets and read percentiles off the sum.
After the ring, two running totals (requests and errors since the worker took the
endpoint's traffic) tell what a deployment answered since its switch, to the request, however
long ago that was: what its watch judges. Counting is a clock read and five additions per
request, with no lock and no message: the worker is the only writer of its region, and the
host only reads it. A region outlives its worker (a retired deployment's requests still count
until they age out of the window).

Only the standard library here: a worker running in a model's own environment imports this.
"""

from __future__ import annotations

import bisect
import math
import mmap
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.targets.base import Traffic

BUCKET_S = 10
KEPT = 36  # buckets: six minutes, so a five-minute window is whole whichever bucket it starts in
LONGEST_S = (KEPT - 1) * BUCKET_S  # the longest window the ring can answer for
# upper bounds of the latency slots, in seconds; one more slot holds what is slower than all
BOUNDS_S = tuple(0.0001 * 2 ** (i / 4) for i in range(81))
_HEAD = 3  # epoch, requests, errors
STRIDE = _HEAD + len(BOUNDS_S) + 1
TOTALS = KEPT * STRIDE  # the cell of the running total of requests; errors in the next one
# After the totals, what the worker counted since the endpoint's requests were last split with
# a candidate (split.py): three groups (serving, candidate, shadow copies), each a generation
# stamp, requests, errors, compared, agreed, dropped and a latency histogram.
SPLIT_AT = TOTALS + 2
GROUP = 6 + len(BOUNDS_S) + 1
GROUPS = 3
SIZE = (SPLIT_AT + GROUPS * GROUP) * 8


def _epoch(now: float) -> int:
    """The bucket `now` falls in, counted from 1: 0 marks a bucket not in use."""
    return int(now // BUCKET_S) + 1


class Region:
    """Memory one worker counts into and its host reads: an unnamed file, so a worker that
    executes another interpreter (a model's own environment) can map it from its descriptor."""

    def __init__(self, size: int = SIZE) -> None:
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("chatops-traffic")
        else:
            fd, path = tempfile.mkstemp(prefix="chatops-traffic-")
            os.unlink(path)
            self.fd = fd
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.cells = memoryview(self.map).cast("Q")

    def forked(self) -> None:
        """In the host, once the worker has its own descriptor: the mapping stays, the
        descriptor need not."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def totals(self) -> tuple[int, int]:
        """Requests and errors its worker answered since it took the endpoint's traffic."""
        return self.cells[TOTALS], self.cells[TOTALS + 1]

    def newest(self) -> int:
        """The newest bucket counted in (0 for none)."""
        return max(self.cells[slot * STRIDE] for slot in range(KEPT))

    def close(self) -> None:
        self.forked()
        self.cells.release()
        self.map.close()


class Tally:
    """The worker's side: `record` each answer of the scoring route."""

    def __init__(self, fd: int, *, clock: Any = time.monotonic) -> None:
        self._map = mmap.mmap(fd, SIZE)
        os.close(fd)
        self.cells = memoryview(self._map).cast("Q")
        self._zero = memoryview(bytes(STRIDE * 8)).cast("Q")
        self.clock = clock

    def record(self, status: int, began: float, *, total: bool = True) -> None:
        """One answer with HTTP `status`, whose request arrived at `began` (the clock's time);
        `total=False` leaves it out of the running totals (a candidate's answer to a request
        a serving worker relayed to it: its totals are since its own switch)."""
        now = self.clock()
        epoch = int(now // BUCKET_S) + 1
        base = (epoch % KEPT) * STRIDE
        cells = self.cells
        if cells[base] != epoch:
            # a bucket six minutes old is reused: marked unused while it is emptied, so a
            # host reading meanwhile skips it rather than adds its old counts to the new
            cells[base] = 0
            cells[base : base + STRIDE] = self._zero
            cells[base] = epoch
        cells[base + 1] += 1
        if total:
            cells[TOTALS] += 1
        if status >= 500:
            cells[base + 2] += 1
            if total:
                cells[TOTALS + 1] += 1
        cells[base + _HEAD + bisect.bisect_right(BOUNDS_S, now - began)] += 1


@dataclass
class Counts:
    """What some workers answered over one window, added up."""

    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_S) + 1))

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]

    def percentile_ms(self, q: float) -> float | None:
        """The latency `q` (0..1) of the answers fall under, in ms, to within a slot (±10%):
        the middle of its slot, or the last bound for the slowest slot."""
        total = sum(self.latency)
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen, slot = 0, 0
        for slot, n in enumerate(self.latency):  # noqa: B007 (the slot the loop stops at)
            seen += n
            if seen >= rank:
                break
        if slot == 0:
            return BOUNDS_S[0] * 1000
        if slot >= len(BOUNDS_S):
            return BOUNDS_S[-1] * 1000
        return math.sqrt(BOUNDS_S[slot - 1] * BOUNDS_S[slot]) * 1000

    def as_dict(self) -> dict[str, Any]:
        hist = {str(i): n for i, n in enumerate(self.latency) if n}
        return {"requests": self.requests, "errors": self.errors, "latency": hist}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counts:
        counts = cls(requests=int(data["requests"]), errors=int(data["errors"]))
        for slot, n in dict(data.get("latency") or {}).items():
            if 0 <= int(slot) < len(counts.latency):
                counts.latency[int(slot)] += int(n)
        return counts


def read(cells: memoryview, now: float, window_s: float) -> Counts:
    """What one region counted in the buckets that overlap the last `window_s` seconds."""
    first, last = _epoch(now - min(window_s, LONGEST_S)), _epoch(now)
    counts = Counts()
    for slot in range(KEPT):
        base = slot * STRIDE
        epoch = cells[base]
        if not first <= epoch <= last:
            continue
        bucket = cells[base : base + STRIDE].tolist()
        if bucket[0] != epoch:
            continue  # its worker began reusing it while it was read
        counts.requests += bucket[1]
        counts.errors += bucket[2]
        for i, n in enumerate(bucket[_HEAD:]):
            counts.latency[i] += n
    return counts


def gather(regions: Iterable[tuple[int, Region]], now: float, window_s: float) -> dict[int, Counts]:
    """Per version, what the workers of every deployment (retired ones too) answered."""
    found: dict[int, Counts] = {}
    for version, region in regions:
        counts = read(region.cells, now, window_s)
        if counts.requests:
            found.setdefault(version, Counts()).add(counts)
    return found


def stale(region: Region, now: float) -> bool:
    """Whether nothing `region` counted can still fall in any window asked for."""
    return region.newest() < _epoch(now - LONGEST_S)


def summary(reply: dict[str, Any] | None, window_s: float) -> Traffic:
    """The host's answer to `traffic` as the target reports it; unknown, with why, when no
    host ran or it could not say."""
    # here: a worker in a model's environment never needs them
    from core.targets.base import Answered, Traffic
    from core.targets.local import messages

    if reply is None:
        return Traffic(window_s=window_s, detail=messages.TRAFFIC_NO_HOST)
    if not reply.get("ok"):
        error = str(reply.get("error"))
        old = "unknown op" in error  # a host started before it could count
        detail = messages.TRAFFIC_OLD_HOST if old else messages.traffic_unreadable(error)
        return Traffic(window_s=window_s, detail=detail)
    versions = {int(v): Counts.from_dict(c) for v, c in dict(reply["versions"]).items()}
    total = Counts()
    for counts in versions.values():
        total.add(counts)
    by_version = {v: c.requests for v, c in versions.items()}
    answered = {
        str(name): Answered(
            version=int(a["version"]), requests=int(a["requests"]), errors=int(a["errors"])
        )
        for name, a in dict(reply.get("deployments") or {}).items()
    }
    return Traffic(
        window_s=float(reply["window_s"]),
        known=True,
        requests=total.requests,
        errors=total.errors,
        p50_ms=total.percentile_ms(0.5),
        p99_ms=total.percentile_ms(0.99),
        version=max(by_version, key=lambda v: (by_version[v], v)) if by_version else None,
        by_version=by_version,
        span_s=float(reply["span_s"]),
        by_deployment=answered,
    )
