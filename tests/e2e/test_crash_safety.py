"""Kill -9 a leaked-key run after each step in turn (and inside key.issue, right
after the mint), resume it, and every time end in the same consistent state."""

from __future__ import annotations

import json

import pytest

from keyresponse.playbook import load_playbook
from tests.conftest import REPO
from tests.e2e.conftest import World, assert_restored, slack_threads

STEPS = [s.id for s in load_playbook(REPO / "playbooks" / "leaked-key.yaml").model.steps]
CRASH_POINTS = [f"after:{s}" for s in STEPS[:-1]] + ["key.issue:after-mint"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_then_resumed_ends_consistent(world: World, point: str) -> None:
    first = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes",
                     env={"KEYRESPONSE_CRASH_AT": point})
    assert first.returncode == -9, f"the crash point {point} was not reached: {first.stderr[-2000:]}"
    (incident,) = world.incidents()
    assert incident["status"] == "interrupted"

    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    value = assert_restored(world)

    assert len(slack_threads(world)) == 1, "a resumed incident must continue its Slack thread"
    folder = world.dir / ".keyresponse" / "incidents" / incident["id"]
    report = json.loads((folder / "report.json").read_text())
    assert report  # rendered by the resumed run, from the whole journal
    md = (folder / "report.md").read_text()
    assert "## Containment" in md and "## Replacement" in md
    assert value not in world.everything_written(first.stdout, first.stderr, resumed.stdout, resumed.stderr)
