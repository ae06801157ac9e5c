"""The audit's window is bounded whatever the alert says about when the key leaked."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.e2e.conftest import World
from tests.helpers.measured import run_measured

PEAK_MB = 200
HANG = 120  # a hang guard, not a timing check


def _run(world: World, *args: str) -> tuple[int, str, str, float]:
    ran = run_measured([sys.executable, "-m", "keyresponse", *args], cwd=world.dir, env=world.env, hang=HANG,
                       files=world.dir / ".run")
    return ran.returncode, ran.stdout, ran.stderr, ran.peak_mb


@pytest.mark.parametrize("leaked_at", ["1970-01-01", "0001-01-01"])
def test_a_leak_dated_long_ago_audits_at_most_the_maximum_window(world: World, leaked_at: str) -> None:
    code, out, err, peak = _run(world, "run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json",
                                "-i", f"leaked_at={leaked_at}")
    assert code == 0, out[-3000:] + err[-3000:]
    result = json.loads(out.splitlines()[-1])
    audit = next(s for s in result["steps"] if s["id"] == "audit")
    assert audit["status"] == "applied", audit
    assert peak < PEAK_MB, f"peak memory {peak:.0f} MB"
    folder = world.dir / ".keyresponse" / "incidents" / result["incident"]
    report = folder / "report.json"
    assert report.stat().st_size < 2_000_000, f"report.json is {report.stat().st_size} bytes"
    data = json.loads(report.read_text())
    text = json.dumps(data)
    hours = max((len(v.get("hourly") or []) for v in _dicts(data)), default=0)
    assert 0 < hours <= 90 * 24 + 2, hours  # the default maximum: 90 days, hourly
    assert "clamped" in text and "90 days" in text
    md = (folder / "report.md").read_text()
    assert "clamped" in md and leaked_at in md


def _dicts(value: object) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for v in value.values():
            found += _dicts(v)
    elif isinstance(value, list):
        for v in value:
            found += _dicts(v)
    return found


def test_the_step_can_narrow_the_window(world: World) -> None:
    pb = world.dir / "audit-only.yaml"
    pb.write_text("name: audit-only\ninputs:\n  key: {}\nsteps:\n"
                  "  - {id: audit, uses: key.audit, with: {leaked_at: '1970-01-01', max_days: 10}}\n"
                  "  - {id: report, uses: report.render, always: true}\n")
    code, out, err, _peak = _run(world, "run", str(pb), "--key", "chatbot-prod", "--yes", "--json")
    assert code == 0, out[-3000:] + err[-3000:]
    result = json.loads(out.splitlines()[-1])
    folder = world.dir / ".keyresponse" / "incidents" / result["incident"]
    data = json.loads((folder / "report.json").read_text())
    hours = max((len(v.get("hourly") or []) for v in _dicts(data)), default=0)
    assert 0 < hours <= 10 * 24 + 2, hours
    assert "10 days" in json.dumps(data)


def test_a_slow_usage_api_shortens_the_window_instead_of_outliving_the_step(world: World) -> None:
    # every usage page slow: reading all 90 days would take longer than the step may run
    world.sandbox.add_fault(service="openai", method="GET", path="/organization/usage/*", kind="latency",
                            latency_ms=600)
    pb = world.dir / "audit-only.yaml"
    pb.write_text("name: audit-only\ninputs:\n  key: {}\nsteps:\n"
                  "  - {id: audit, uses: key.audit, timeout: 6, with: {leaked_at: '1970-01-01'}}\n"
                  "  - {id: report, uses: report.render, always: true}\n")
    code, out, err, _ = _run(world, "run", str(pb), "--key", "chatbot-prod", "--yes", "--json")
    assert code == 0, out[-3000:] + err[-3000:]
    result = json.loads(out.splitlines()[-1])
    audit = next(s for s in result["steps"] if s["id"] == "audit")
    assert audit["status"] == "applied", audit
    folder = world.dir / ".keyresponse" / "incidents" / result["incident"]
    md = (folder / "report.md").read_text()
    assert "shortened" in md and "timeout" in md
