"""Small text helpers every front shares."""

from __future__ import annotations

from datetime import UTC, datetime


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
