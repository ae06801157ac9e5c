"""Pure analysis of one key's usage: what normal looked like, when abuse began, what it cost.

No I/O here: the provider fetches hourly usage per model (`UsagePoint`s), this
module turns it into the `key.audit` outputs.

- The series is hourly over the window; hours with no bucket are zero use.
- Normal for an hour is the median of the same hour of the week in the baseline
  (same hour of the day when the baseline is too short, then the overall median),
  taken on log(1 + x) so that busy and quiet hours weigh alike.
- An hour is anomalous when its robust z-score (MAD-scaled, on the log) reaches
  `k` and it exceeds normal by a material amount (half an average baseline hour,
  and at least `MIN_EXCESS`), for tokens or for requests.
- The baseline is the time before the suspected leak when one is given; otherwise
  every hour, re-fitted once without the hours the first pass flagged.
- The likely start of exploitation is the first hour of the earliest anomalous
  episode (anomalies at most `GAP_HOURS` apart) that is at least a quarter the size
  of the largest one, so a lone blip weeks earlier does not pass for the leak.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from keyresponse.providers.base import UsagePoint, iso

HOUR = 3600
WEEK = 7 * 24
GAP_HOURS = 3
MIN_SLOT_SAMPLES = 3
MIN_SCALE = 0.15  # log units: ±16% is never "anomalous" however regular the series
MIN_EXCESS = {"tokens": 1000, "requests": 10}


@dataclass
class Hour:
    hour: int
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    expected_tokens: float = 0.0
    score: float = 0.0
    anomalous: bool = False

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def hourly(points: Iterable[UsagePoint], start: int, end: int) -> list[Hour]:
    """One `Hour` per hour in [start, end), gaps filled with zeros."""
    first, last = start // HOUR * HOUR, max(start, end - 1) // HOUR * HOUR
    table = {h: Hour(h) for h in range(first, last + HOUR, HOUR)}
    for p in points:
        slot = table.get(p.hour // HOUR * HOUR)
        if slot is not None:
            slot.requests += p.requests
            slot.input_tokens += p.input_tokens
            slot.output_tokens += p.output_tokens
    return [table[h] for h in sorted(table)]


class _Normal:
    """Expected log1p(value) per hour-of-week, hour-of-day, or overall, from baseline hours."""

    def __init__(self, base: Sequence[tuple[int, float]]) -> None:
        week: dict[int, list[float]] = {}
        day: dict[int, list[float]] = {}
        for hour, value in base:
            week.setdefault(hour // HOUR % WEEK, []).append(value)
            day.setdefault(hour // HOUR % 24, []).append(value)
        self.week = {k: statistics.median(v) for k, v in week.items() if len(v) >= MIN_SLOT_SAMPLES}
        self.day = {k: statistics.median(v) for k, v in day.items() if len(v) >= MIN_SLOT_SAMPLES}
        self.overall = statistics.median([v for _, v in base]) if base else 0.0
        residuals = [v - self.expect(h) for h, v in base]
        centre = statistics.median(residuals) if residuals else 0.0
        mad = statistics.median([abs(r - centre) for r in residuals]) if residuals else 0.0
        self.scale = max(1.4826 * mad, MIN_SCALE)

    def expect(self, hour: int) -> float:
        slot = hour // HOUR
        return self.week.get(slot % WEEK, self.day.get(slot % 24, self.overall))


def _flag(hours: list[Hour], base: list[Hour], k: float) -> None:
    for h in hours:
        h.score, h.anomalous = 0.0, False
    for metric in ("tokens", "requests"):
        value: Callable[[Hour], int] = (lambda h: h.tokens) if metric == "tokens" else (lambda h: h.requests)
        normal = _Normal([(h.hour, math.log1p(value(h))) for h in base])
        mean = statistics.fmean([value(h) for h in base]) if base else 0.0
        floor = max(MIN_EXCESS[metric], 0.5 * mean)
        for h in hours:
            expected_log = normal.expect(h.hour)
            score = (math.log1p(value(h)) - expected_log) / normal.scale
            excess = value(h) - math.expm1(expected_log)
            if metric == "tokens":
                h.expected_tokens = round(math.expm1(expected_log), 1)
            h.score = max(h.score, round(score, 2))
            h.anomalous = h.anomalous or (score >= k and excess >= floor)


def detect(hours: list[Hour], *, leak_time: int | None = None, k: float = 5.0) -> list[Hour]:
    """Mark anomalous hours in place; returns the anomalous ones."""
    before = [h for h in hours if leak_time is not None and h.hour < leak_time]
    if len(before) >= 24:
        _flag(hours, before, k)
    else:
        _flag(hours, hours, k)
        quiet = [h for h in hours if not h.anomalous]
        if len(quiet) < len(hours) and len(quiet) >= 24:
            _flag(hours, quiet, k)
    return [h for h in hours if h.anomalous]


def exploitation_start(anomalies: list[Hour]) -> int | None:
    episodes: list[list[Hour]] = []
    for h in sorted(anomalies, key=lambda x: x.hour):
        if episodes and h.hour - episodes[-1][-1].hour <= GAP_HOURS * HOUR:
            episodes[-1].append(h)
        else:
            episodes.append([h])
    if not episodes:
        return None
    sizes = [sum(max(0.0, h.tokens - h.expected_tokens) for h in e) for e in episodes]
    biggest = max(sizes)
    return next(e[0].hour for e, s in zip(episodes, sizes, strict=True) if s >= 0.25 * biggest)


def price_for(model: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens: exact name, else the longest matching prefix."""
    if model in prices:
        return prices[model]
    best = max((p for p in prices if model.startswith((p + "-", p + ":"))), key=len, default=None)
    return prices[best] if best else None


def _cost(model: str, input_tokens: int, output_tokens: int, prices: dict[str, tuple[float, float]]) -> float | None:
    price = price_for(model, prices)
    if price is None:
        return None
    return input_tokens / 1e6 * price[0] + output_tokens / 1e6 * price[1]


def analyze(points: Sequence[UsagePoint], *, window_start: int, window_end: int, leak_time: int | None = None,
            prices: dict[str, tuple[float, float]] | None = None, k: float = 5.0) -> dict[str, Any]:
    """Everything `key.audit` reports about usage (times as ISO 8601 UTC)."""
    prices = prices or {}
    hours = hourly(points, window_start, window_end)
    anomalies = detect(hours, leak_time=leak_time, k=k)
    first = exploitation_start(anomalies)
    split = leak_time if leak_time is not None else first
    models: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    totals = {side: {"requests": 0, "tokens": 0, "cost_usd": 0.0} for side in ("before", "after")}
    for p in sorted(points, key=lambda p: p.hour):
        if not window_start // HOUR * HOUR <= p.hour < window_end:
            continue
        m = models.setdefault(p.model, {"model": p.model, "requests": 0, "input_tokens": 0, "output_tokens": 0,
                                        "cost_usd": 0.0, "in_baseline": False})
        first_seen.setdefault(p.model, p.hour)
        m["requests"] += p.requests
        m["input_tokens"] += p.input_tokens
        m["output_tokens"] += p.output_tokens
        cost = _cost(p.model, p.input_tokens, p.output_tokens, prices)
        if cost is None:
            m["cost_usd"] = None
        elif m["cost_usd"] is not None:
            m["cost_usd"] += cost
        after = split is not None and p.hour >= split
        side = totals["after" if after else "before"]
        side["requests"] += p.requests
        side["tokens"] += p.input_tokens + p.output_tokens
        side["cost_usd"] += cost or 0.0
        if not after and (p.requests or p.input_tokens or p.output_tokens):
            m["in_baseline"] = True
    for m in models.values():
        m["cost_usd"] = None if m["cost_usd"] is None else round(m["cost_usd"], 4)
    for side in totals.values():
        side["cost_usd"] = round(side["cost_usd"], 4)
    new_models = [] if split is None else sorted(
        (name for name, m in models.items() if not m["in_baseline"] and (m["requests"] or m["input_tokens"])),
        key=lambda name: (first_seen[name], name))
    return {
        "window_start": iso(window_start),
        "window_end": iso(window_end),
        "leak_time": iso(leak_time),
        "hourly": [{"hour": iso(h.hour), "requests": h.requests, "input_tokens": h.input_tokens,
                    "output_tokens": h.output_tokens, "expected_tokens": h.expected_tokens,
                    "anomalous": h.anomalous} for h in hours],
        "anomalies": [{"hour": iso(h.hour), "requests": h.requests, "tokens": h.tokens, "score": h.score,
                       "expected_tokens": h.expected_tokens} for h in anomalies],
        "first_anomalous_hour": iso(first),
        "new_models": new_models,
        "models": sorted(models.values(), key=lambda m: -(m["input_tokens"] + m["output_tokens"])),
        "unpriced_models": sorted(n for n, m in models.items() if m["cost_usd"] is None),
        "totals": totals,
        "estimated_cost_usd": totals["after"]["cost_usd"],
    }
