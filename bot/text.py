"""Small text helpers every front shares."""

from __future__ import annotations

from datetime import UTC, datetime

from core.targets.base import Traffic


def ago(when: datetime) -> str:
    """`45s ago`, `12m ago`, `3h 5m ago`, `2d ago`."""
    seconds = int((datetime.now(UTC) - when).total_seconds())
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
    return f"{seconds // 86400}d ago"


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def latency(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.1f} s"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _span(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else f"{seconds / 60:.0f} min"


def span(seconds: float) -> str:
    """A wait as people say it: 45 s, 12 min, 2 h 5 min."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def traffic(seen: Traffic | None) -> str:
    """What an endpoint answered, in one line: `12 req/min over the last 5 min · 1.5% errors
    (3 of 200) · p50 3.1 ms · p99 12 ms · served by v2`; or, where its target cannot count,
    what it says instead. Plain text: a front escapes it."""
    if seen is None:
        return ""
    if not seen.known:
        return seen.detail or "not counted"
    span = seen.window_s if seen.span_s is None else seen.span_s
    over = f"over the last {_span(span)}"
    if not seen.requests:
        return f"no requests {over}"
    rate = seen.per_minute or 0.0
    parts = [f"{rate:.1f} req/min {over}" if rate < 10 else f"{rate:.0f} req/min {over}"]
    if seen.errors:
        parts.append(f"{seen.errors / seen.requests:.1%} errors ({seen.errors} of {seen.requests})")
    else:
        parts.append(f"no errors in {seen.requests}")
    if seen.p50_ms is not None and seen.p99_ms is not None:
        parts.append(f"p50 {latency(seen.p50_ms)} · p99 {latency(seen.p99_ms)}")
    served = sorted(seen.by_version.items(), key=lambda kv: (-kv[1], -kv[0]))
    if len(served) == 1:
        parts.append(f"served by v{served[0][0]}")
    elif served:
        parts.append("served by " + ", ".join(f"v{v} ({n})" for v, n in served))
    return " · ".join(parts)


def traffic_brief(seen: Traffic | None) -> str:
    """`traffic` for a table cell: `12/min · 1.5% errors · p50/p99 3.1/12 ms · v2, v1`."""
    if seen is None or not seen.known or not seen.requests:
        return traffic(seen)
    rate = seen.per_minute or 0.0
    parts = [f"{rate:.1f}/min" if rate < 10 else f"{rate:.0f}/min"]
    parts.append(f"{(seen.error_rate or 0.0):.1%} errors")
    if seen.p50_ms is not None and seen.p99_ms is not None:
        parts.append(f"p50 {latency(seen.p50_ms)} · p99 {latency(seen.p99_ms)}")
    served = sorted(seen.by_version.items(), key=lambda kv: (-kv[1], -kv[0]))
    if served:
        parts.append(", ".join(f"v{v}" for v, _ in served))
    return " · ".join(parts)
