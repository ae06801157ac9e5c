"""A Hypothesis state machine over one incident: between real `run`/`resume` subprocesses
it arms faults on any service (429, 5xx, a connection held then closed unanswered,
dropped, commit-then-fail, commit-then-drop, headers-then-reset) and crash points of
the project's fault hook (`KEYRESPONSE_CRASH_AT`, the crash matrix's points). After
every process: no traceback (never exit 3), and no live replacement the incident
cannot find by its name. At the end, faults cleared, resumed until it succeeds: the
same invariants as the kill harness.

Examples: a few in CI (each is several subprocesses); `KEYRESPONSE_HYPOTHESIS=50` for more.
(A client-side timeout is 30 s, too slow for here; `hang` with a short hold stands for
a service that never answers in time, then closes.)"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from tests.e2e.conftest import World, replacements
from tests.e2e.test_crash_safety import CRASH_POINTS
from tests.reliability.conftest import EXAMPLES
from tests.reliability.harness import (
    KEY,
    PLAYBOOKS,
    TARGET_FILES,
    RevokeWatch,
    check_restored,
    final_status,
    incident_ids,
    journal,
    make_world,
    run,
)
from tests.reliability.leaks import LeakHunt

SERVICES = ("openai", "github", "gitlab", "slack")
FAULTS = (
    {"kind": "status", "status": 429, "retry_after": "0"},
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "hang", "latency_ms": 300},
    {"kind": "drop"},
    {"kind": "commit_then_fail"},
    {"kind": "commit_then_drop"},
    {"kind": "headers_then_reset"},
)
ROTATE_POINTS = ["after:issue", "after:deploy", "after:live", "after:record", "after:retire", "after:revoke",
                 "key.issue:after-mint", "inventory:mid-write"]


class Incident(RuleBasedStateMachine):
    def __init__(self, pool: queue.Queue[Any], root: Path, hunt: LeakHunt, serial: list[int]) -> None:
        super().__init__()
        serial[0] += 1
        self.pool, self.hunt = pool, hunt
        self.folder = root / f"example-{serial[0]}"
        self.sb = pool.get()
        self.world: World = make_world(self.sb, self.folder)
        self.playbook = "leaked-key"
        self.watch: RevokeWatch | None = None
        self.processes = 0
        self.log: list[str] = []

    @initialize(playbook=st.sampled_from(PLAYBOOKS))
    def choose(self, playbook: str) -> None:
        self.playbook = playbook
        self.watch = RevokeWatch(self.world) if playbook == "rotate" else None
        self.log.append(f"playbook {playbook}")

    @rule(faults=st.lists(st.tuples(st.sampled_from(SERVICES), st.sampled_from(FAULTS), st.integers(1, 3),
                                    st.booleans()), max_size=3),
          crash=st.one_of(st.none(), st.data()))
    def go(self, faults: list[tuple[str, dict[str, Any], int, bool]], crash: st.DataObject | None) -> None:
        """Arm some faults and maybe a crash point, then `run` the first time, `resume` after."""
        ids = incident_ids(self.world)
        if ids and final_status(self.world, ids[0]) == "succeeded":
            return
        for service, fault, count, mutating in faults:
            method = "POST|PUT|PATCH|DELETE" if mutating else "*"
            self.sb.add_fault(service=service, method=method, path="*", count=count, **fault)
            self.log.append(f"fault {service} {method} {fault} x{count}")
        env = None
        if crash is not None:
            point = crash.draw(st.sampled_from(CRASH_POINTS if self.playbook == "leaked-key" else ROTATE_POINTS))
            env = {"KEYRESPONSE_CRASH_AT": point}
            self.log.append(f"crash at {point}")
        args = ("resume", ids[0], "--yes") if ids else ("run", self.playbook, "--key", KEY, "--yes")
        self.processes += 1
        ran = run(self.world, self.folder / f"process-{self.processes}.log", *args, env=env)
        self.log.append(f"{args[0]} -> {ran.returncode} in {ran.seconds:.1f}s")
        assert ran.returncode in (0, 1, -9), f"{' '.join(args)} ended {ran.returncode}: {ran.output[-3000:]}"
        self._between()

    def _between(self) -> None:
        ids = incident_ids(self.world)
        assert len(ids) <= 1, f"one incident expected, found {ids}"
        if ids:
            journal(self.world, ids[0])  # every complete record parses
            strays = [k["id"] for k in replacements(self.world) if k["live"] and ids[0] not in k["name"]]
            assert not strays, f"live keys not named after the incident: {strays}"

    def teardown(self) -> None:
        try:
            self.sb.clear_faults()
            ids = incident_ids(self.world)
            if not ids:
                ran = run(self.world, self.folder / "final-run.log", "run", self.playbook, "--key", KEY, "--yes")
                assert ran.returncode == 0, f"after {self.log}: {ran.output[-3000:]}"
                ids = incident_ids(self.world)
            (incident,) = ids
            for n in range(3):
                if final_status(self.world, incident) == "succeeded":
                    break
                ran = run(self.world, self.folder / f"final-resume-{n}.log", "resume", incident, "--yes")
                self.log.append(f"final resume -> {ran.returncode} in {ran.seconds:.1f}s")
                assert ran.returncode == 0, f"after {self.log}, the resume ended {ran.returncode}: {ran.output[-3000:]}"
            check_restored(self.world, self.playbook, incident, self.watch)
            print(f"\n{self.folder.name}: {self.log}")
        finally:
            self.hunt.snapshot(self.sb, self.folder.name)
            self.pool.put(self.sb)


def test_faults_and_crash_points_in_any_order_end_consistent(sandbox_pool: queue.Queue[Any], tmp_path: Path,
                                                            leak_hunt: LeakHunt) -> None:
    leak_hunt.folder(tmp_path, exclude=TARGET_FILES)
    serial = [0]

    class Here(Incident):
        def __init__(self) -> None:
            super().__init__(sandbox_pool, tmp_path, leak_hunt, serial)

    run_state_machine_as_test(
        Here,
        settings=settings(settings.get_profile("reliability-ci"), max_examples=EXAMPLES or 3,
                          stateful_step_count=3 if not EXAMPLES else 6))
