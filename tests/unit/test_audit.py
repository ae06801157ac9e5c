"""audit.py on hand-made hourly series: flat, diurnal, spike, missing hours."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from keyresponse import audit
from keyresponse.providers.base import UsagePoint, epoch, iso

H = 3600
START = 1_767_225_600  # 2026-01-01T00:00Z, a Thursday
DAYS = 30
END = START + DAYS * 24 * H
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "o1": (15.0, 60.0)}


def series(level: Callable[[int], float], model: str = "gpt-4o-mini", seed: int = 1,
           skip: set[int] | None = None) -> list[UsagePoint]:
    rng = random.Random(seed)
    out = []
    for i in range(DAYS * 24):
        if skip and i in skip:
            continue
        tokens = max(0, int(level(i) * rng.uniform(0.8, 1.2)))
        if tokens:
            out.append(UsagePoint(START + i * H, model, max(1, tokens // 500), tokens * 3 // 4, tokens // 4))
    return out


def diurnal(i: int) -> float:
    hour = i % 24
    return 600 + 5400 * max(0.0, math.sin((hour - 6) / 12 * math.pi))  # busy days, quiet nights


def spike(at: int, hours: int, model: str = "o1", tokens: int = 200_000) -> list[UsagePoint]:
    return [UsagePoint(START + (at + j) * H, model, tokens // 400, tokens * 3 // 4, tokens // 4) for j in range(hours)]


def run(points: list[UsagePoint], **kw: object) -> dict[str, Any]:
    return audit.analyze(points, window_start=START, window_end=END, prices=PRICES, **kw)  # type: ignore[arg-type]


def test_flat_series_has_no_anomalies() -> None:
    out = run(series(lambda i: 5000))
    assert out["anomalies"] == [] and out["first_anomalous_hour"] is None
    assert out["new_models"] == [] and out["totals"]["after"]["tokens"] == 0
    assert len(out["hourly"]) == DAYS * 24


def test_diurnal_rhythm_alone_is_normal() -> None:
    out = run(series(diurnal))
    assert out["anomalies"] == []


def test_spike_at_night_is_found_with_its_start_and_new_model() -> None:
    at = 26 * 24 + 3  # 03:00 on day 27: off-hours
    out = run(series(diurnal) + spike(at, 10))
    assert out["first_anomalous_hour"] == iso(START + at * H)
    hours = {a["hour"] for a in out["anomalies"]}
    assert hours == {iso(START + (at + j) * H) for j in range(10)}
    assert out["new_models"] == ["o1"]
    o1 = next(m for m in out["models"] if m["model"] == "o1")
    assert o1["in_baseline"] is False and o1["cost_usd"] == round(10 * (150_000 * 15 + 50_000 * 60) / 1e6, 4)
    assert out["totals"]["after"]["tokens"] >= 10 * 200_000
    assert out["estimated_cost_usd"] == out["totals"]["after"]["cost_usd"] > 0


def test_spike_of_a_known_model_during_the_day_is_found() -> None:
    at = 20 * 24 + 13  # peak hour
    out = run(series(diurnal) + spike(at, 3, model="gpt-4o-mini", tokens=120_000))
    assert out["first_anomalous_hour"] == iso(START + at * H)
    assert out["new_models"] == []


def test_missing_hours_are_zero_use_not_anomalies_and_do_not_hide_a_spike() -> None:
    gaps = {i for i in range(DAYS * 24) if i % 24 in (2, 3, 4) or 240 <= i < 300}
    at = 28 * 24 + 10
    out = run(series(diurnal, skip=gaps) + spike(at, 2))
    assert len(out["hourly"]) == DAYS * 24
    assert out["hourly"][3]["requests"] == 0
    assert out["first_anomalous_hour"] == iso(START + at * H)
    assert {a["hour"] for a in out["anomalies"]} == {iso(START + at * H), iso(START + (at + 1) * H)}


def test_a_lone_small_blip_weeks_earlier_is_not_the_exploitation_start() -> None:
    blip = spike(5 * 24 + 3, 1, model="gpt-4o-mini", tokens=15_000)
    attack = spike(25 * 24 + 1, 12)
    out = run(series(diurnal) + blip + attack)
    assert out["first_anomalous_hour"] == iso(START + (25 * 24 + 1) * H)


def test_leak_time_sets_the_baseline_and_the_split() -> None:
    leak = START + 20 * 24 * H
    out = run(series(diurnal) + spike(22 * 24, 4), leak_time=leak)
    assert out["leak_time"] == iso(leak)
    assert out["first_anomalous_hour"] == iso(START + 22 * 24 * H)
    before, after = out["totals"]["before"], out["totals"]["after"]
    assert before["tokens"] > 0 and after["tokens"] > 4 * 200_000 - 1
    assert out["new_models"] == ["o1"]


def test_a_dormant_key_suddenly_used_is_anomalous() -> None:
    out = run(spike(29 * 24, 5, model="gpt-4o"))
    assert out["first_anomalous_hour"] == iso(START + 29 * 24 * H)
    assert out["new_models"] == ["gpt-4o"]


def test_prices_match_dated_snapshots_and_unknown_models_are_listed() -> None:
    assert audit.price_for("gpt-4o-2024-08-06", PRICES) == PRICES["gpt-4o"]
    assert audit.price_for("gpt-4o-mini-2024-07-18", PRICES) == PRICES["gpt-4o-mini"]
    assert audit.price_for("mystery", PRICES) is None
    out = run([UsagePoint(START, "mystery", 1, 10, 10)])
    assert out["unpriced_models"] == ["mystery"] and out["models"][0]["cost_usd"] is None


def test_epoch_and_iso_round_trip() -> None:
    assert epoch(iso(START)) == START
    assert epoch("2026-01-01T00:00:00+00:00") == START and epoch(str(START)) == START and epoch("") is None
