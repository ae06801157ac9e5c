"""Time helpers for the report: journal timestamps, audit hours, human durations."""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.UTC


def parse(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from an ISO string (with or without Z) or epoch seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        try:
            return dt.datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return parse(int(text))
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def iso(value: Any) -> str | None:
    """`2024-05-01T12:03:04Z`, with milliseconds when it has them; None when not a time."""
    when = parse(value)
    if when is None:
        return None
    when = when.astimezone(UTC)
    if when.microsecond:
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def human(value: Any) -> str:
    """`2024-05-01 12:03:04 UTC` for people; `—` when unknown."""
    when = parse(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else "—"


def seconds_between(start: Any, end: Any) -> float | None:
    a, b = parse(start), parse(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


def duration(seconds: float | None) -> str:
    """`4.2s`, `3m 05s`, `2h 07m`, `3d 4h`; `—` when unknown."""
    if seconds is None:
        return "—"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 60:
        return f"{sign}{s:.1f}s" if s < 10 else f"{sign}{s:.0f}s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{sign}{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d {hours}h"
