"""Kill -9 a leaked-key run after each step in turn (and inside key.issue, right
after the mint), resume it, and every time end in the same consistent state."""

from __future__ import annotations

import json

import pytest

from keyresponse.playbook import load_playbook
from tests.conftest import REPO
from tests.e2e.conftest import World, assert_restored, inventory_key_id, leaked, replacements, slack_threads

STEPS = [s.id for s in load_playbook(REPO / "playbooks" / "leaked-key.yaml").model.steps]
CRASH_POINTS = [f"after:{s}" for s in STEPS[:-1]] + ["key.issue:after-mint", "inventory:mid-write"]


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
    assert not list(world.dir.rglob("*.keyresponse-tmp*")), "a killed writer's temp file was left behind"

    assert len(slack_threads(world)) == 1, "a resumed incident must continue its Slack thread"
    folder = world.dir / ".keyresponse" / "incidents" / incident["id"]
    report = json.loads((folder / "report.json").read_text())
    assert report  # rendered by the resumed run, from the whole journal
    md = (folder / "report.md").read_text()
    assert "## Containment" in md and "## Replacement" in md
    assert value not in world.everything_written(first.stdout, first.stderr, resumed.stdout, resumed.stderr)


ROTATE = [s.id for s in load_playbook(REPO / "playbooks" / "rotate.yaml").model.steps]


@pytest.mark.parametrize("point", ["after:issue", "after:deploy", "after:live", "after:record", "after:retire",
                                   "after:revoke"])
def test_rotate_killed_then_resumed_ends_consistent(world: World, point: str) -> None:
    first = world.kr("run", "rotate", "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": point})
    assert first.returncode == -9, first.stderr[-2000:]
    (incident,) = world.incidents()
    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_restored(world)  # old key dead, exactly one live replacement, every target on it


@pytest.mark.parametrize("playbook", ["rotate", "leaked-key"])
def test_a_failed_redeploy_after_a_crash_cuts_no_target_off(world: World, playbook: str) -> None:
    """Killed after deploying, resumed while one target now fails: that target keeps a
    live key (the earlier replacement is kept until its successor is on every target)."""
    first = world.kr("run", playbook, "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": "after:deploy"})
    assert first.returncode == -9
    state = world.sandbox.state
    held = state.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY")["value"]
    world.sandbox.add_fault(service="gitlab", method="PUT", path="/projects/*/variables/*", kind="status",
                            status=500, count=None)
    (incident,) = world.incidents()
    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 1
    live_values = {state.openai_key_value(k["id"]) for k in state.openai_keys() if k["live"]}
    assert held in live_values, "the GitLab target was left holding a revoked key"
    if playbook == "rotate":
        assert leaked(world)["live"], "rotate revoked the old key although a target failed"
    else:
        assert not leaked(world)["live"]  # containment is never traded away
    report = (world.dir / ".keyresponse" / "incidents" / incident["id"] / "report.md").read_text()
    assert "are still live: an interrupted run had deployed them" in report


def test_a_crash_after_the_new_key_is_live_does_not_reissue_it(world: World) -> None:
    first = world.kr("run", "rotate", "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": "after:live"})
    assert first.returncode == -9
    (incident,) = world.incidents()
    assert world.kr("resume", incident["id"], "--yes").returncode == 0
    journal = (world.dir / ".keyresponse" / "incidents" / incident["id"] / "journal.jsonl").read_text()
    resumed = [json.loads(line) for line in journal.splitlines() if '"incident.resumed"' in line]
    assert resumed and "issue" not in resumed[0]["rerun"] and "deploy" not in resumed[0]["rerun"]
    assert_restored(world)


ROTATE_LITE = """name: rotate-lite
inputs:
  key: {required: true}
steps:
  - {id: issue, uses: key.issue}
  - {id: deploy, uses: targets.deploy, with: {secret: "${{ steps.issue.outputs.secret }}"}}
  - {id: record, uses: inventory.record, with: {key_id: "${{ steps.issue.outputs.key_id }}"}}
  - {id: revoke, uses: key.revoke}
"""


def test_a_resume_after_the_inventory_names_the_new_key_still_revokes_the_old_one(world: World) -> None:
    # no key.find first: the revoke identifies the key from the inventory entry, as it was at the start
    book = world.dir / "rotate-lite.yaml"
    book.write_text(ROTATE_LITE)
    old = leaked(world)["id"]
    first = world.kr("run", str(book), "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": "after:record"})
    assert first.returncode == -9, first.stderr[-2000:]
    [new] = replacements(world)
    assert inventory_key_id(world) == new["id"]
    (incident,) = world.incidents()
    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert not state[old]["live"] and state[new["id"]]["live"]
    assert inventory_key_id(world) == new["id"]


def test_a_resume_uses_the_inventory_the_user_fixed(world: World) -> None:
    text = world.config.read_text()
    old_id = leaked(world)["id"]
    broken = text.replace(f"    key_id: {old_id}\n", "").replace("    secret_env: CHATBOT_PROD_OPENAI_KEY\n", "")
    assert broken != text
    world.config.write_text(broken)
    book = world.dir / "revoke.yaml"
    book.write_text("name: revoke-only\ninputs:\n  key: {required: true}\nsteps:\n  - {id: revoke, uses: key.revoke}\n")
    first = world.kr("run", str(book), "--key", "chatbot-prod", "--yes")
    assert first.returncode == 1 and "nothing identifies the key" in first.stderr
    world.config.write_text(text)  # the fix the error asked for
    (incident,) = world.incidents()
    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not leaked(world)["live"]


def test_killed_while_the_final_reports_are_written_a_resume_writes_them(world: World) -> None:
    """The run journals its end, then renders the reports once more with the end in them.
    Killed in between, the journal says succeeded but the reports do not: `resume` renders
    them (a resume of a finished incident otherwise has nothing to do)."""
    first = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes",
                     env={"KEYRESPONSE_CRASH_AT": "incident:finished"})
    assert first.returncode == -9, first.stderr[-2000:]
    (incident,) = world.incidents()
    assert incident["status"] == "succeeded"
    folder = world.dir / ".keyresponse" / "incidents" / incident["id"]
    assert json.loads((folder / "report.json").read_text())["incident"]["status"] != "succeeded"

    resumed = world.kr("resume", incident["id"], "--yes")
    assert resumed.returncode == 0 and "rendered them again" in resumed.stderr, resumed.stderr[-3000:]
    assert json.loads((folder / "report.json").read_text())["incident"]["status"] == "succeeded"
    again = world.kr("resume", incident["id"], "--yes")
    assert again.returncode == 0 and "nothing to resume" in again.stderr, again.stderr[-3000:]
