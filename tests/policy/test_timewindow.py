"""Weekday sets, hour ranges and time zones."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from sqlgate.policy.timewindow import TimeWindow, parse_days, parse_hours, parse_zone
from tests.policy.support import utc


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("Monday", {0}),
        (["mon", "wed-thu"], {0, 2, 3}),
        ("sun-sun", {6}),
    ],
)
def test_parse_days(text, days):
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["", "mo", "funday", "mon-xyz", "mon--fri"])
def test_parse_days_refuses(text):
    with pytest.raises(ValueError, match="weekday"):
        parse_days(text)


@pytest.mark.parametrize(
    ("text", "minutes"), [("07:00-20:00", (420, 1200)), ("22:00-06:00", (1320, 360)), ("0:00-24:00", (0, 1440))]
)
def test_parse_hours(text, minutes):
    assert parse_hours(text) == minutes


@pytest.mark.parametrize("text", ["7-20", "07:00-07:00", "25:00-26:00", "07:61-08:00", "07:00-24:01", "x"])
def test_parse_hours_refuses(text):
    with pytest.raises(ValueError, match="range"):
        parse_hours(text)


def test_parse_zone_refuses_unknown_names():
    with pytest.raises(ValueError, match="not a known time zone"):
        parse_zone("Mars/Olympus")


def _window(days=None, hours=None, tz="Europe/Berlin", start=None, until=None):
    return TimeWindow(ZoneInfo(tz), days, hours, start, until, "mon-fri", "22:00-06:00")


def test_overnight_window_counts_the_day_it_started():
    """With days=fri and 22:00-06:00, Saturday 02:00 local is inside, Friday 02:00 is not."""
    window = _window(days=frozenset({4}), hours=(1320, 360))
    assert window.refusal(utc("2026-11-28 01:00")) is None  # Sat 02:00 Berlin
    assert window.refusal(utc("2026-11-27 21:30")) is None  # Fri 22:30 Berlin
    assert window.refusal(utc("2026-11-27 01:00")) == "outside mon-fri Europe/Berlin"  # Fri 02:00: Thursday's night
    assert window.refusal(utc("2026-11-27 12:00")) == "outside 22:00-06:00 Europe/Berlin"


def test_date_window_is_inclusive_in_the_zone():
    window = _window(start=date(2026, 12, 1), until=date(2026, 12, 31))
    assert window.refusal(utc("2026-11-30 23:30")) is None  # already Dec 1 in Berlin
    assert window.refusal(utc("2026-11-30 22:30")) == "before 2026-12-01 Europe/Berlin"
    assert window.refusal(utc("2026-12-31 22:59")) is None
    assert window.refusal(utc("2026-12-31 23:00")) == "after 2026-12-31 Europe/Berlin"
