"""Kill -9 a leaked-admin-key run after each step in turn, inside the mint (answer heard,
not yet journaled) and mid-way through the inventory edit; resume it; every time end
with exactly one live admin key made by the incident, held by every target, the leaked
one dead and the seed's other admin keys untouched. A run resumed after the revoke
starts with the dead key in its environment: it must read the new one back from the
source target. Cases run side by side, each on its own sandbox."""

from __future__ import annotations

import itertools
import queue
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from keyresponse.playbook import load_playbook
from tests.admin.conftest import assert_admin_restored, make_world, own_admin
from tests.conftest import REPO
from tests.e2e.conftest import slack_threads
from tests.helpers.sandbox_fixture import sandbox_pool

STEPS = [s.id for s in load_playbook(REPO / "playbooks" / "leaked-admin-key.yaml").model.steps]
CRASH_POINTS = [f"after:{s}" for s in STEPS[:-1]] + ["admin_key.issue:after-mint", "inventory:mid-write"]
LOST_ANSWER = "mint answered 502 after it took effect"  # no crash: the retry must not leave the first one live
# no crash: one target fails the first run (which still revokes), is fixed, and the run resumed
# with the revoked key in its environment; the redeploy must not need the dead key
TARGET_FIXED = "a target failed, then was fixed and the run resumed"
WORKERS = 3


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[queue.Queue[Any]]:
    with sandbox_pool(WORKERS) as pool:
        yield pool


def _case(pool: queue.Queue[Any], root: Path, point: str) -> str | None:
    """One crash and resume; None when it ends consistent, else what went wrong."""
    sandbox = pool.get()
    try:
        sandbox.reset()
        sandbox.clear_faults()
        world = make_world(sandbox, Path(tempfile.mkdtemp(dir=root)))
        seeded, leaked_id = set(sandbox.state.admin_keys), own_admin(sandbox)["id"]
        if point == LOST_ANSWER:
            sandbox.add_fault(service="openai", method="POST", path="/organization/admin_api_keys",
                              kind="commit_then_fail", count=1)
            run = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--yes")
            if run.returncode != 0:
                return f"{point}: the run failed: {run.stderr[-1500:]}"
            outputs = [run.stdout, run.stderr]
        elif point == TARGET_FIXED:
            sandbox.add_fault(service="gitlab", method="POST|PUT", path="/projects/*/variables*", kind="status",
                              status=500, count=None)
            first = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--yes")
            if first.returncode != 1 or sandbox.state.admin_keys[leaked_id]["live"]:
                return f"{point}: the first run should fail on GitLab and still revoke: {first.stderr[-1500:]}"
            sandbox.clear_faults()
            (folder,) = (world.dir / ".keyresponse" / "incidents").iterdir()
            resumed = world.kr("resume", folder.name, "--yes")
            if resumed.returncode != 0:
                return f"{point}: the resume failed: {resumed.stderr[-2500:]}"
            outputs = [first.stdout, first.stderr, resumed.stdout, resumed.stderr]
        else:
            first = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--yes",
                             env={"KEYRESPONSE_CRASH_AT": point})
            if first.returncode != -9:
                return f"{point}: the crash point was not reached: {first.stderr[-1500:]}"
            (folder,) = (world.dir / ".keyresponse" / "incidents").iterdir()  # no `incidents` run: time
            if '"incident.finished"' in (folder / "journal.jsonl").read_text():
                return f"{point}: the killed run journaled an end"
            resumed = world.kr("resume", folder.name, "--yes")
            if resumed.returncode != 0:
                return f"{point}: the resume failed: {resumed.stderr[-2500:]}"
            outputs = [first.stdout, first.stderr, resumed.stdout, resumed.stderr]
        try:
            value = assert_admin_restored(world, seeded, leaked_id)
        except AssertionError as exc:
            return f"{point}: {exc}"
        if len(slack_threads(world)) != 1:
            return f"{point}: {len(slack_threads(world))} Slack threads, expected the one"
        if list(world.dir.rglob("*.keyresponse-tmp*")):
            return f"{point}: a killed writer's temp file was left behind"
        written = world.everything_written(*outputs)
        if value in written or sandbox.env["OPENAI_ADMIN_KEY"] in written:
            return f"{point}: an admin key value was written to the journal, a report, Slack or the output"
        return None
    finally:
        pool.put(sandbox)


def test_killed_at_every_step_then_resumed_ends_with_one_live_admin_key(
        sandboxes: queue.Queue[Any], tmp_path: Path) -> None:
    cases = [*CRASH_POINTS, LOST_ANSWER, TARGET_FIXED]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        problems = list(pool.map(_case, itertools.repeat(sandboxes), itertools.repeat(tmp_path), cases))
    failed = [p for p in problems if p]
    assert not failed, f"{len(failed)} of {len(cases)} cases ended inconsistent:\n" + "\n\n".join(failed)
