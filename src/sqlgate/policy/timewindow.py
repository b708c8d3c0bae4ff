"""Weekday sets, hour ranges and date windows, parsed once and checked fast.

``days`` is written ``mon-fri``, ``sat,sun``, ``fri-mon`` (ranges wrap around the
week) or as a list of such pieces. ``hours`` is ``07:00-20:00``; an end before
the start means the window runs overnight (``22:00-06:00``), and the weekday
check then applies to the day the window *started*: with ``days: fri`` and
``hours: 22:00-06:00``, Saturday 02:00 is inside. Everything is evaluated in the
rule's time zone, so daylight-saving changes move the window with the wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = tuple(name[:3] for name in FULL_DAY_NAMES)
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_days(value: str | list[str]) -> frozenset[int]:
    """``"mon-fri"`` -> {0, 1, 2, 3, 4} (Monday is 0); raises ValueError on unknown names."""
    pieces = [value] if isinstance(value, str) else list(value)
    days: set[int] = set()
    for piece in (p.strip().lower() for chunk in pieces for p in chunk.split(",")):
        first, sep, last = piece.partition("-")
        start, end = _day(first), _day(last) if sep else _day(first)
        days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    if not days:
        raise ValueError("names no weekday (write e.g. mon-fri or sat,sun)")
    return frozenset(days)


def _day(name: str) -> int:
    key = name.strip()
    for index, full in enumerate(FULL_DAY_NAMES):
        if key in (full, full[:3]):
            return index
    raise ValueError(f"{key!r} is not a weekday (use {', '.join(DAY_NAMES)})")


def parse_hours(value: str) -> tuple[int, int]:
    """``"07:00-20:00"`` -> minutes after midnight (420, 1200); ``24:00`` is allowed as an end."""
    match = _HOURS.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an hour range (write e.g. 07:00-20:00 or 22:00-06:00)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise ValueError(f"{value!r} has an hour or minute out of range")
    if start == end:
        raise ValueError(f"{value!r} is an empty range (start equals end)")
    return start, end


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``), or a ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a known time zone (use an IANA name such as Europe/Berlin)") from None


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A compiled ``when`` clause; :meth:`refusal` is None inside the window."""

    zone: ZoneInfo
    days: frozenset[int] | None
    hours: tuple[int, int] | None
    start: date | None
    until: date | None
    label_days: str
    label_hours: str

    def refusal(self, at: datetime) -> str | None:
        """None when ``at`` is inside the window, else why not (a sentence for people)."""
        local = at.astimezone(self.zone)
        tz = self.zone.key
        if self.start is not None and local.date() < self.start:
            return f"before {self.start.isoformat()} {tz}"
        if self.until is not None and local.date() > self.until:
            return f"after {self.until.isoformat()} {tz}"
        day = local.weekday()
        if self.hours is not None:
            start, end = self.hours
            minute = local.hour * 60 + local.minute
            if start < end:
                inside = start <= minute < end
            else:
                inside = minute >= start or minute < end
                if minute < end:
                    day = (day - 1) % 7
            if not inside:
                return f"outside {self.label_hours} {tz}"
        if self.days is not None and day not in self.days:
            return f"outside {self.label_days} {tz}"
        return None


def format_minutes(minutes: int) -> str:
    """420 -> ``07:00``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
