"""Ctrl-C and refusals, from the outside: a real `keyresponse run` subprocess, a real
SIGINT, the key's lock seen from other processes, and a resume that finishes the job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from keyresponse.journal import KeyLock
from tests.e2e.conftest import World, assert_restored


def _start(world: World, out: IO[str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "keyresponse", *args], cwd=world.dir, env=world.env,
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def _until(what: str, check: Any, proc: subprocess.Popen[str], log: Path, limit: float = 60.0) -> Any:
    """Poll `check` until it returns something true (a generous limit: a hang, not a timing assert)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}: {log.read_text()[-3000:]}")


def _journal(world: World, incident_id: str) -> list[dict[str, Any]]:
    path = world.dir / ".keyresponse" / "incidents" / incident_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ctrl_c_mid_step_ends_interrupted_keeps_the_key_locked_and_resumes(world: World, tmp_path: Path) -> None:
    # the revoke's call hangs: the step's thread is stuck in it when Ctrl-C arrives
    hang = world.sandbox.add_fault(service="openai", method="DELETE", path="*", kind="hang", count=None)
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = _start(world, out, "run", "leaked-key", "--key", "chatbot-prod", "--yes")
        try:
            _until("the revoke's call", lambda: any(f["id"] == hang["id"] and f["fired"]
                                                    for f in world.sandbox.runtime.faults.active()), first, log)
            first.send_signal(signal.SIGINT)
            (incident,) = _until("the interruption journaled",
                                 lambda: [i for i in world.incidents() if i["status"] == "interrupted"], first, log)
            records = _journal(world, incident["id"])
            revoke = [r for r in records if r["event"] == "step.finished" and r["step"] == "revoke"]
            assert [r["status"] for r in revoke] == ["interrupted"], "the running step must be journaled as interrupted"
            assert records[-1]["event"] == "incident.finished" and records[-1]["status"] == "interrupted"

            # the step's thread is still in its call: the key stays locked while this process lives
            second = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", timeout=60)
            assert second.returncode == 1 and "locked by incident" in second.stderr, second.stderr[-2000:]
            assert first.poll() is None, "the first run exited; the check above proved nothing"
            assert "still running" in log.read_text()

            first.send_signal(signal.SIGINT)  # a second Ctrl-C: quit now (the lock goes with the process)
            assert first.wait(60) == 130
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    text = log.read_text()
    assert f"keyresponse resume {incident['id']}" in text

    # the first process is gone, and with it the lock
    lock = KeyLock(world.dir / ".keyresponse", "chatbot-prod")
    lock.acquire("test")
    lock.release()

    statuses = {i["id"]: i["status"] for i in world.incidents()}
    assert statuses[incident["id"]] == "interrupted"
    world.sandbox.clear_faults()
    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_restored(world)
    assert {i["id"]: i["status"] for i in world.incidents()}[incident["id"]] == "succeeded"


def test_a_refused_resume_leaves_the_incident_as_it_was(world: World) -> None:
    first = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": "after:revoke"})
    assert first.returncode == -9, first.stderr[-2000:]
    (incident,) = world.incidents()
    assert incident["status"] == "interrupted"
    journal = world.dir / ".keyresponse" / "incidents" / incident["id"] / "journal.jsonl"
    before = journal.read_text()

    other = KeyLock(world.dir / ".keyresponse", "chatbot-prod")
    other.acquire("another-run")  # another run holds the key
    try:
        refused = world.kr("resume", incident["id"], "--yes")
    finally:
        other.release()
    assert refused.returncode == 1 and "locked by incident another-run" in refused.stderr, refused.stderr[-2000:]
    assert journal.read_text() == before, "a refused resume must not write to the incident"
    (after,) = world.incidents()
    assert after["status"] == "interrupted", "the revoked key with no replacement must stay visible"

    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_restored(world)
