"""`leaked-key` ends with proof of closure from the usage data; `verify` checks again later."""

from __future__ import annotations

import json

from keyresponse.report import times
from tests.closure.conftest import events
from tests.e2e.conftest import World


def test_leaked_key_closure_shows_the_attack_stopped_and_the_replacement_in_use(live: World) -> None:
    truth = live.sandbox.state.truth
    run = live.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    (incident,) = live.incidents()
    assert incident["closure"] == "closed"
    records = events(live, incident["id"])
    (verdict,) = [r for r in records if r["event"] == "closure"]
    assert verdict["status"] == "closed" and verdict["reasons"] == []
    assert verdict["leaked"]["key_id"] == truth["leaked_key_id"] and verdict["leaked"]["accepted"] == 0
    assert verdict["leaked"]["to"] > verdict["leaked"]["from"]  # a real window, on the fast clock
    assert verdict["replacement"]["requests"] > 0  # the listed consumer moved at its restart
    report = (live.dir / ".keyresponse" / "incidents" / incident["id"] / "report.md").read_text()
    section = report[report.index("## Closure"):report.index("## What failed")]
    assert "Status: **closed**" in section
    assert f"{truth['leaked_key_id']}: 0 accepted requests after the revoke" in section
    assert times.human(verdict["leaked"]["from"]) in section  # the window is stated
    assert f"{verdict['replacement']['requests']} requests since it was deployed" in section
    # later: `verify` reads it again, journals the new verdict and renders the report again
    again = live.kr("verify", incident["id"], "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    later = json.loads(again.stdout)
    assert later["status"] == "closed" and later["via"] == "verify"
    assert later["replacement"]["requests"] >= verdict["replacement"]["requests"]
    assert len([r for r in events(live, incident["id"]) if r["event"] == "closure"]) == 2
    listing = live.kr("incidents")
    assert "[closed]" in listing.stdout


def test_verify_says_needs_attention_while_the_replacement_is_unused(world: World) -> None:
    # no live usage: nothing uses the replacement, so the incident is not closed
    run = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    (incident,) = world.incidents()
    assert incident["closure"] == "needs attention"
    again = world.kr("verify", incident["id"])
    assert again.returncode == 1
    assert "needs attention" in again.stdout and "nothing has used the replacement" in again.stdout
