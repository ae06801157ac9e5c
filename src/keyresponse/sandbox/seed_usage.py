"""Thirty days of hourly usage rows with daily rhythms, plus the abuse spike.

A row is a list laid out as ROW (lists, not dicts: ~4k of them per seed, and
they round-trip through the state file). Rows are never changed after seeding.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

ROW = (
    "ts",
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "input_tokens",
    "output_tokens",
    "input_cached_tokens",
    "num_model_requests",
    "batch",
)
TS, PROJECT, USER, KEY, MODEL, INPUT, OUTPUT, CACHED, REQUESTS, BATCH = range(len(ROW))

HOUR = 3600
DAY = 86400


@dataclass(frozen=True)
class Profile:
    """How one key is normally used."""

    key_id: str
    project_id: str
    user_id: str | None
    model: str
    kind: str  # "completions" | "embeddings"
    peak_rph: int  # requests per hour at the busiest hour of a weekday
    in_per_req: int
    out_per_req: int
    pattern: str  # "business" | "nightly" | "sporadic"
    created_at: int = 0


@dataclass(frozen=True)
class Attack:
    key_id: str
    project_id: str
    user_id: str | None
    start: int
    models: tuple[str, ...]
    multiplier: float = 20.0


def _rhythm(pattern: str, ts: int, rng: random.Random) -> float:
    tm = time.gmtime(ts)
    hour, weekend = tm.tm_hour, tm.tm_wday >= 5
    if pattern == "nightly":  # a batch job between 01:00 and 04:59 UTC
        return 1.0 if 1 <= hour <= 4 else 0.02
    level = 0.05 + 0.95 * math.exp(-(((hour - 14.5) / 3.5) ** 2))
    if weekend:
        level *= 0.3
    if pattern == "sporadic" and rng.random() < 0.6:
        return 0.0
    return level


def _row(ts: int, p: Profile, requests: int, rng: random.Random) -> list[Any]:
    inp = int(requests * p.in_per_req * rng.uniform(0.85, 1.15))
    out = int(requests * p.out_per_req * rng.uniform(0.85, 1.15))
    cached = int(inp * rng.uniform(0.2, 0.4)) if p.out_per_req else 0
    return [ts, p.project_id, p.user_id, p.key_id, p.model, inp, out, cached, requests, False]


def generate(
    rng: random.Random, profiles: list[Profile], first_hour: int, last_hour: int, attack: Attack
) -> dict[str, list[list[Any]]]:
    """Rows for every hour in [first_hour, last_hour], both hour-aligned."""
    rows: dict[str, list[list[Any]]] = {"completions": [], "embeddings": []}
    leaked = next(p for p in profiles if p.key_id == attack.key_id)
    baseline_tokens = 0
    baseline_hours = 0
    attack_hours: list[int] = []
    for ts in range(first_hour, last_hour + 1, HOUR):
        for p in profiles:
            if ts < p.created_at or p.peak_rph == 0:
                continue
            requests = round(p.peak_rph * _rhythm(p.pattern, ts, rng) * rng.uniform(0.8, 1.2))
            if requests <= 0:
                continue
            row = _row(ts, p, requests, rng)
            rows[p.kind].append(row)
            if p is leaked and ts < attack.start:
                baseline_tokens += row[INPUT] + row[OUTPUT]
        if ts < attack.start:
            baseline_hours += 1
        else:
            attack_hours.append(ts)
    # The spike: about `multiplier` times the leaked key's mean hourly tokens,
    # heavier at off-hours (00:00-07:59 UTC), on models the key never used.
    mean = baseline_tokens / max(baseline_hours, 1)
    spike: list[list[Any]] = []
    for ts in attack_hours:
        off_hours = time.gmtime(ts).tm_hour < 8
        target = attack.multiplier * mean * (1.6 if off_hours else 0.55) * rng.uniform(0.85, 1.15)
        for i, model in enumerate(attack.models):
            share = 0.6 if i == 0 else 0.4 / max(len(attack.models) - 1, 1)
            tokens = target * share
            requests = max(1, int(tokens / 3000))
            inp = int(tokens * 0.75)
            spike.append(
                [ts, attack.project_id, attack.user_id, attack.key_id, model, inp, int(tokens) - inp, 0, requests, False]
            )
    rows["completions"] = sorted(rows["completions"] + spike, key=lambda r: r[TS])
    return rows


def last_used(rows: dict[str, list[list[Any]]], now: int) -> dict[str, int]:
    """api_key_id -> when it was last used (within its last busy hour, not after now)."""
    out: dict[str, int] = {}
    for kind_rows in rows.values():
        for r in kind_rows:
            out[r[KEY]] = max(out.get(r[KEY], 0), min(r[TS] + 37 * 60, now))
    return out
