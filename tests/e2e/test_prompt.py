"""The confirmation prompt on a real pty: it comes before anything is sent anywhere,
names every destructive effect, and a "no" or a Ctrl-C there changes nothing."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.e2e.conftest import World

pexpect = pytest.importorskip("pexpect")

PROMPT = "Proceed"


def _spawn(world: World, *args: str) -> Any:
    child = pexpect.spawn(sys.executable, ["-m", "keyresponse", *args], cwd=str(world.dir),
                          env={**world.env, "TERM": "xterm"}, encoding="utf-8", timeout=90,
                          dimensions=(40, 100))
    return child


def _nothing_sent(world: World) -> None:
    state = world.sandbox.state
    assert state.slack_messages == [], [m.get("text") for m in state.slack_messages]
    assert state.mutations == [], state.mutations


def _status(world: World) -> str:
    incidents = world.incidents()
    assert len(incidents) == 1, incidents
    return str(incidents[0]["status"])


def test_no_at_the_prompt_sends_nothing_and_exits_130(world: World) -> None:
    child = _spawn(world, "run", "leaked-key", "--key", "chatbot-prod")
    child.expect(PROMPT)
    asked = child.before
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    _nothing_sent(world)
    assert _status(world) == "declined"
    assert "resume" not in (child.before or ""), child.before
    # the prompt names every destructive effect: the key that dies, the targets, restarts, the inventory edit
    truth = world.sandbox.state.truth
    text = " ".join(asked.split())
    assert truth["leaked_key_id"] in text, asked
    assert "6 targets" in text, asked
    assert "restart" in text.lower(), asked
    assert "keys.chatbot-prod.key_id" in text, asked


def test_ctrl_c_at_the_prompt_changes_nothing_and_exits_130(world: World) -> None:
    child = _spawn(world, "run", "leaked-key", "--key", "chatbot-prod")
    child.expect(PROMPT)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "unexpected" not in (child.before or ""), child.before
    _nothing_sent(world)
    assert _status(world) == "declined"


def test_without_a_tty_and_without_yes_nothing_is_sent(world: World) -> None:
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "--yes" in out.stderr
    _nothing_sent(world)
    assert _status(world) == "refused"


def test_time_at_the_prompt_is_approval_wait_not_time_to_contain(world: World) -> None:
    child = _spawn(world, "run", "leaked-key", "--key", "chatbot-prod")
    child.expect(PROMPT)
    assert world.sandbox.state.mutations == []
    import time

    time.sleep(2.0)  # someone reads the prompt
    child.sendline("y")
    child.expect(pexpect.EOF, timeout=180)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "approval" in (child.before or "").lower(), child.before
    (incident,) = world.incidents()
    folder = world.dir / ".keyresponse" / "incidents" / incident["id"]
    records = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines() if line.strip()]
    answered = [r for r in records if r["event"] == "approval.answered"]
    assert len(answered) == 1 and answered[0]["approved"] is True
    assert answered[0]["wait"] >= 2.0
    report = json.loads(next(folder.rglob("report.json")).read_text())
    summary = report["summary"]
    assert summary["approval_wait"] >= 2.0
    assert summary["time_to_contain"] is not None
    # the containment clock starts when the prompt was answered
    opened = next(r for r in records if r["event"] == "incident.opened")["t"]
    from keyresponse.report import times

    whole = times.seconds_between(opened, summary["contained_at"])
    assert whole is not None and summary["time_to_contain"] <= whole - answered[0]["wait"] + 0.01
