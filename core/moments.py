"""A moment as people type it: an ISO date-time (in the asker's time zone unless it names
one), a time ago (`2h ago`, `30 min ago`), `today`/`yesterday` at a time of day, or `now`.

Parsing needs neither a clock nor a zone, so a front can refuse bad text before anything
runs; `Moment.instant` turns what was typed into one UTC instant, given the time now and the
asker's zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FORMS = (
    "an ISO date-time (`2026-12-01 14:00`, `2026-12-01T14:00Z`, `2026-12-01T14:00+01:00`), "
    "a time ago (`2h ago`, `30 min ago`, `3 days ago`), `yesterday 14:00` / `today 9:30` or `now`"
)

_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_AGO = re.compile(r"^(\d{1,6})\s*([a-z]+)\s+ago$", re.IGNORECASE)
_DAY = re.compile(r"^(today|yesterday)(?:\s+(?:at\s+)?(\d{1,2}):(\d{2}))?$", re.IGNORECASE)
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
}
MAX_AGO = timedelta(days=3650)


@dataclass(frozen=True)
class Zone:
    """A time zone people read times in, and its name (`Europe/Paris`, `UTC`)."""

    tz: tzinfo
    name: str


UTC_ZONE = Zone(UTC, "UTC")


def zone_named(name: str) -> Zone | None:
    """The IANA zone `name` (as Slack's `users.info` gives a user's `tz`), None when this
    machine does not know it."""
    try:
        return Zone(ZoneInfo(name), name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class Moment:
    """What was typed, understood: one of a date-time (naive: in the asker's zone), a span
    before now, or a day before today (0: today) at a time of day."""

    text: str
    at: datetime | None = None
    ago: timedelta | None = None
    days_back: int | None = None
    clock: time | None = None

    def instant(self, now: datetime, zone: tzinfo) -> datetime:
        """The UTC instant meant, read in `zone` when the text named no zone."""
        if self.ago is not None:
            return now - self.ago
        if self.at is not None:
            at = self.at if self.at.tzinfo is not None else self.at.replace(tzinfo=zone)
            return at.astimezone(UTC)
        day = now.astimezone(zone).date() - timedelta(days=self.days_back or 0)
        return datetime.combine(day, self.clock or time(), tzinfo=zone).astimezone(UTC)


def moment(text: str) -> Moment | None:
    """The moment `text` names, or None when it is none of the accepted `FORMS`."""
    text = " ".join(text.split())
    if found := _ISO.match(text):
        day, hour, minute, second, fraction, zone = found.groups()
        iso = day
        if hour is not None:
            iso += f"T{int(hour):02d}:{minute}:{second or '00'}{fraction or ''}"
        if zone:
            iso += "+00:00" if zone.upper() == "Z" else zone
        try:
            return Moment(text=text, at=datetime.fromisoformat(iso))
        except ValueError:  # 2026-13-40, 25:00, +25:00
            return None
    if text.lower() == "now":
        return Moment(text=text, ago=timedelta())
    if found := _AGO.match(text):
        unit = _UNITS.get(found[2].lower())
        if unit is None:
            return None
        span = timedelta(seconds=int(found[1]) * unit)
        return Moment(text=text, ago=span) if span <= MAX_AGO else None
    if found := _DAY.match(text):
        back = 1 if found[1].lower() == "yesterday" else 0
        hour, minute = int(found[2] or 0), int(found[3] or 0)
        if hour > 23 or minute > 59:
            return None
        return Moment(text=text, days_back=back, clock=time(hour, minute))
    return None
