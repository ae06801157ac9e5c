"""What the reliability tests share: a world of their own (a sandbox and a folder, so
cases run side by side), the real CLI as a subprocess that can be signalled at any
moment, and the invariants every run must end in, checked from the sandbox's state
and the files.

The e2e helpers (World, assert_restored, slack_threads, ...) are reused as they are;
a case only adds its own sandbox, its own TMPDIR (where a crash file would land) and
the check that rotate kept the old key alive until every target held the new one."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyresponse.atomicfile import LOCK_MARK, TMP_MARK
from keyresponse.journal import Incident, KeyLock
from tests.conftest import REPO
from tests.e2e.conftest import World, assert_restored, leaked, slack_threads
from tests.reliability.leaks import LeakHunt

KEY = "chatbot-prod"
PLAYBOOKS = ("leaked-key", "rotate")
LATENCY_MS = 25.0  # on every call of every service: spreads a run, so a signal lands inside calls too
# one tolerant of the scheduler: a hang, not a timing assert
HANG = 120.0
# (scope, name) of the sandbox's GitHub targets and its GitLab one, as write_config lays them out
GITHUB_TARGETS = (("repo:acme/chatbot", "OPENAI_API_KEY"), ("env:acme/chatbot:production", "OPENAI_API_KEY"),
                  ("org:acme", "OPENAI_API_KEY"))
ENV_FILES = ("apps/chatbot/.env", "apps/worker/.env")
# never scanned for secrets: the env files are targets (they must hold the key), sandbox.env
# is the test's own credentials file
TARGET_FILES = ("apps/*/.env", "decoys/*.env", "sandbox.env")


def make_world(sb: Any, root: Path, latency_ms: float = 0.0) -> World:
    """A fresh world in `root` on sandbox `sb` (reset here): its config, env files, and a
    TMPDIR of its own under `root/tmp`, so a crash file the CLI saves is found."""
    sb.reset()
    sb.clear_faults()
    if latency_ms:
        sb.add_fault(service="*", kind="latency", latency_ms=latency_ms, jitter_ms=latency_ms / 2)
    folder = root / "world"
    folder.mkdir(parents=True)
    (root / "tmp").mkdir()
    sb.write_config(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update(sb.env)
    env.update({"NO_COLOR": "1", "PYTHONPATH": str(REPO), "TMPDIR": str(root / "tmp")})
    return World(folder, sb, env, {k["id"] for k in sb.state.openai_keys()})


@dataclass
class Ran:
    argv: list[str]
    returncode: int
    seconds: float
    signalled: bool  # the signal was sent while the process still ran
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


def run(world: World, log: Path, *args: str, signal_at: float | None = None,
        signum: int = signal.SIGKILL, env: dict[str, str] | None = None,
        until: Callable[[], bool] | None = None, prefix: tuple[str, ...] = ()) -> Ran:
    """`keyresponse ARGS` in the world's folder, output in `log`; with `signal_at`, sent
    `signum` that many seconds after the start if it is still running; with `until`, sent
    it once `until()` is true (polled). `prefix` goes before the interpreter (setpriv, prlimit)."""
    argv = [*prefix, sys.executable, "-m", "keyresponse", *args]
    with open(log, "w") as out:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=world.dir, env={**world.env, **(env or {})}, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        signalled = False
        try:
            if signal_at is not None:
                try:
                    proc.wait(signal_at)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signum)
                    signalled = True
            elif until is not None:
                deadline = time.monotonic() + HANG
                while proc.poll() is None and time.monotonic() < deadline:
                    if until():
                        proc.send_signal(signum)
                        signalled = True
                        break
                    time.sleep(0.01)
            rc = proc.wait(HANG)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return Ran(argv[len(prefix) + 3:], rc, time.monotonic() - start, signalled, log)


def incident_ids(world: World) -> list[str]:
    """Incidents with a journal. A process stopped between making an incident's folder and
    journaling its opening leaves a folder that `incidents` does not list and nothing
    can resume: nothing was done by then (the callers check the sandbox saw no change)."""
    folder = world.dir / ".keyresponse" / "incidents"
    return sorted(p.name for p in folder.iterdir() if (p / "journal.jsonl").is_file()) if folder.is_dir() else []


def journal(world: World, incident_id: str) -> list[dict[str, Any]]:
    path = world.dir / ".keyresponse" / "incidents" / incident_id / "journal.jsonl"
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]  # a record cut by the kill: the journal's reader skips it too
    return [json.loads(line) for line in lines if line.strip()]


def final_status(world: World, incident_id: str) -> str | None:
    ends = [r for r in journal(world, incident_id) if r.get("event") == "incident.finished"]
    return str(ends[-1]["status"]) if ends else None


class RevokeWatch:
    """Snapshots every target at the moment the old key dies (from the sandbox's own
    mutation hook, on its loop thread), so rotate can be held to its promise: the old key
    stays alive until every target holds the new one."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.old_id = leaked(world)["id"]
        self.at_death: dict[str, str] | None = None
        self.error: str | None = None
        state = world.sandbox.state
        original = state.record_mutation
        lock = threading.Lock()

        def record(service: str, method: str, path: str, status: int) -> None:
            original(service, method, path, status)
            with lock:
                if self.at_death is None and not state.keys[self.old_id]["live"]:
                    try:
                        self.at_death = targets_now(world)
                    except Exception as exc:  # noqa: BLE001 - reported by the check, not lost in the loop
                        self.error = repr(exc)

        state.record_mutation = record


def targets_now(world: World) -> dict[str, str]:
    """What every target holds now: target -> value (in memory only)."""
    state = world.sandbox.state
    held = {f"github {scope}": state.github_secret_value(scope, name) for scope, name in GITHUB_TARGETS}
    held["gitlab acme/chatbot"] = state.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY")["value"]
    for rel in ENV_FILES:
        for line in (world.dir / rel).read_text().splitlines():
            name, sep, value = line.removeprefix("export ").partition("=")
            if sep and name.strip() == "OPENAI_API_KEY":
                held[rel] = value.strip().strip("\"'")
    return held


@dataclass
class Outcome:
    incident_id: str
    runs: list[Ran] = field(default_factory=list)


def check_restored(world: World, playbook: str, incident_id: str, watch: RevokeWatch | None = None) -> None:
    """The invariants of a finished incident, whatever killed it on the way."""
    assert final_status(world, incident_id) == "succeeded", f"incident ended {final_status(world, incident_id)}"
    value = assert_restored(world)  # leaked dead, exactly one live replacement, every target on it, inventory
    if watch is not None:
        assert watch.error is None, f"the revoke watch failed: {watch.error}"
        assert watch.at_death is not None, "the old key never died"
        cut_off = sorted(t for t, v in watch.at_death.items() if v != value)
        assert not cut_off, f"{playbook} revoked the old key while {cut_off} did not hold the new one"
    leftovers = [str(p.relative_to(world.dir)) for p in world.dir.rglob("*")
                 if TMP_MARK in p.name or LOCK_MARK in p.name]
    assert not leftovers, f"temp or lock files left behind: {leftovers}"
    lock = KeyLock(world.dir / ".keyresponse", KEY)
    lock.acquire("reliability-check")  # no process still holds the key's lock (the file stays, by design)
    lock.release()
    assert not Incident(incident_id, world.dir / ".keyresponse" / "incidents" / incident_id).is_locked(), \
        "a process still holds the incident"
    roots = slack_threads(world)
    assert len(roots) == 1, f"{len(roots)} Slack root messages, expected one"
    folder = world.dir / ".keyresponse" / "incidents" / incident_id
    for name in ("report.json", "report.md", "report.html"):
        assert (folder / name).is_file(), f"no {name}"
    crashes = list((world.dir.parent / "tmp").glob("keyresponse-crash-*"))
    assert not crashes, f"an unexpected error was saved: {crashes[0].read_text()[-2000:]}"


def measure(pool: queue.Queue[Any], root: Path, playbook: str, hunt: LeakHunt) -> float:
    """One whole run of `playbook` under LATENCY_MS, checked like any case; its duration."""
    sb = pool.get()
    try:
        world = make_world(sb, root / playbook, LATENCY_MS)
        watch = RevokeWatch(world) if playbook == "rotate" else None
        ran = run(world, root / playbook / "run.log", "run", playbook, "--key", KEY, "--yes")
        assert ran.returncode == 0, f"{playbook} without a kill failed (rc {ran.returncode}): {ran.output[-3000:]}"
        (incident,) = incident_ids(world)
        check_restored(world, playbook, incident, watch)
        return ran.seconds
    finally:
        hunt.snapshot(sb, f"measure-{playbook}")
        pool.put(sb)
