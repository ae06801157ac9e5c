"""A timed-out step's thread cannot be stopped: the key stays locked until it ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyresponse import engine as engine_module
from keyresponse import registry
from keyresponse.action import BaseAction, Plan, StepContext, With
from keyresponse.engine import Engine, Mode
from keyresponse.errors import LockedError
from keyresponse.inventory import load_inventory
from keyresponse.journal import KeyLock
from keyresponse.outcome import Reporter
from keyresponse.playbook import load_playbook

RELEASE = threading.Event()
STARTED = threading.Event()


class HoldArgs(With):
    pass


class Hold(BaseAction):
    """Blocks until the test releases it: a call that outlives its step's timeout."""

    name = "test.hold_until_released"
    summary = "test"
    With = HoldArgs

    def plan(self, args: HoldArgs, ctx: StepContext) -> Plan:
        return Plan(summary="hold")

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        STARTED.set()
        RELEASE.wait(120)
        return {}


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, step_id: str, kind: str, message: str) -> None:
        self.events.append(message)


def _locked(state: Path) -> bool:
    lock = KeyLock(state, "app")
    try:
        lock.acquire("probe")
    except LockedError:
        return True
    lock.release()
    return False


@pytest.fixture
def hold_action() -> Iterator[type[Hold]]:
    registry.register(Hold.name, Hold)
    yield Hold
    registry.unregister(Hold.name)


def test_the_key_stays_locked_while_a_timed_out_step_still_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 hold_action: Any) -> None:
    monkeypatch.setattr(engine_module, "ABANDONED_GRACE", 0.05, raising=False)  # not 30 s in a test
    (workdir / "keyresponse.yaml").write_text(
        "providers:\n  openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}\nkeys:\n  app: {project: proj_test}\n")
    (workdir / "pb.yaml").write_text(
        "name: t\nsteps:\n  - {id: a, uses: test.hold_until_released, timeout: 0.2}\n")
    RELEASE.clear()
    STARTED.clear()
    reporter = Recorder()
    state = workdir / ".keyresponse"
    try:
        result = Engine(load_inventory(workdir / "keyresponse.yaml"), mode=Mode.APPLY, reporter=reporter).start(
            load_playbook(workdir / "pb.yaml"), {}, "app")
        assert STARTED.is_set() and result.steps[0].timed_out
        assert _locked(state), "the key was unlocked while the timed-out step still runs"
        assert any("still running in the background" in m and "stays locked" in m for m in reporter.events), \
            reporter.events
    finally:
        RELEASE.set()
    deadline = time.monotonic() + 30
    while _locked(state):  # once the thread has ended, the key is free again
        assert time.monotonic() < deadline, "the key stayed locked after the step's thread ended"
        time.sleep(0.02)
