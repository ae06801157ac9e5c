"""A whole leaked-key incident, as a responder runs it."""

from __future__ import annotations

import json

import yaml

from tests.e2e.conftest import World, assert_restored, inventory_key_id, leaked, replacements, slack_threads


def test_by_inventory_name(world: World) -> None:
    old_value = world.sandbox.env["SANDBOX_LEAKED_KEY"]
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["ok"] and {s["status"] for s in result["steps"]} == {"applied"}
    new_value = assert_restored(world)

    roots = slack_threads(world)
    assert len(roots) == 1 and "resolved" in json.dumps(roots[0]).lower()
    replies = [m for m in world.sandbox.state.slack_messages if m.get("thread_ts") == roots[0]["ts"]]
    assert len(replies) >= 2

    folder = world.dir / ".keyresponse" / "incidents" / result["incident"]
    for name in ("report.md", "report.html", "report.json", "journal.jsonl"):
        assert (folder / name).is_file(), name
    written = world.everything_written(out.stdout, out.stderr)
    assert new_value not in written and old_value not in written


def test_by_leaked_value_on_stdin(world: World) -> None:
    value = world.sandbox.env["SANDBOX_LEAKED_KEY"]
    env = {"CHATBOT_PROD_OPENAI_KEY": ""}  # found through the provider, not the env var
    out = world.kr("run", "leaked-key", "--leaked-stdin", "--yes", stdin=value + "\n", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not leaked(world)["live"]
    assert_restored(world)
    assert world.incidents()[-1]["key"] == "chatbot-prod"
    assert value not in world.everything_written(out.stdout, out.stderr)


def test_rotate_with_a_failing_target_keeps_the_old_key_alive(world: World) -> None:
    world.sandbox.add_fault(service="gitlab", method="PUT", path="/projects/*/variables/*", kind="status",
                            status=500, count=None)
    out = world.kr("run", "rotate", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout.splitlines()[-1])
    statuses = {s["id"]: s["status"] for s in result["steps"]}
    assert statuses["deploy"] == "failed" and "revoke" not in statuses
    assert statuses["report"] == "applied"
    assert leaked(world)["live"], "rotate revoked the old key although a target failed"
    assert inventory_key_id(world) == leaked(world)["id"]  # still the key in service
    deploy = next(s for s in result["steps"] if s["id"] == "deploy")
    rows = {t["target"]: t["status"] for t in deploy["outputs"]["targets"]}
    assert [t for t, st in rows.items() if st == "failed"] == ["GitLab variable acme/chatbot:OPENAI_API_KEY"]
    report = (world.dir / ".keyresponse" / "incidents" / result["incident"] / "report.md").read_text()
    assert report.startswith("# Incident report: Rotation of API key chatbot-prod")
    assert "**Mixed state:** the old key" in report
    assert "Still on the old key: GitLab variable acme/chatbot:OPENAI_API_KEY." in report
    assert "The old key stays live on purpose" in report


def test_nothing_is_minted_when_nobody_can_confirm(world: World) -> None:
    out = world.kr("run", "rotate", "--key", "chatbot-prod", stdin="")  # no terminal, no --yes
    assert out.returncode == 2 and "--yes" in out.stderr  # refused before the first step
    assert replacements(world) == []  # no replacement nobody holds
    assert world.sandbox.state.slack_messages == []
    assert leaked(world)["live"]


def test_after_a_rotation_the_next_incident_revokes_the_key_in_service(world: World) -> None:
    before = world.config.read_text()
    out = world.kr("run", "rotate", "--key", "chatbot-prod", "--yes")
    assert out.returncode == 0, out.stderr[-3000:]
    [rotated_in] = [k for k in replacements(world) if k["live"]]
    after = world.config.read_text()
    assert after == before.replace(leaked(world)["id"], rotated_in["id"])  # one value changed, nothing else

    drill = world.kr("drill", "--key", "chatbot-prod")
    assert drill.returncode == 0, drill.stdout[-2000:] + drill.stderr[-2000:]

    # the key that leaks now is the rotated-in one; $CHATBOT_PROD_OPENAI_KEY still holds the old value
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes")
    assert out.returncode == 0, out.stderr[-3000:]
    state = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert not state[rotated_in["id"]]["live"], "the key in service was not revoked"
    [current] = [k for k in replacements(world) if k["live"]]
    assert inventory_key_id(world) == current["id"] != rotated_in["id"]
    assert "is another key than" in out.stderr  # the stale value proved nothing; the listing did


def test_a_key_outside_the_inventory_is_revoked_and_no_replacement_is_left_orphaned(world: World) -> None:
    listed = {e["key_id"] for e in yaml.safe_load(world.config.read_text())["keys"].values()}
    stray = next(k for k in world.sandbox.state.openai_keys() if k["live"] and k["id"] not in listed)
    value = world.sandbox.state.openai_key_value(stray["id"])
    out = world.kr("run", "leaked-key", "--leaked-stdin", "--yes", "--json", stdin=value + "\n",
                   env={"CHATBOT_PROD_OPENAI_KEY": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    statuses = {s["id"]: s["status"] for s in result["steps"]}
    assert statuses["revoke"] == statuses["dead"] == statuses["issue"] == "applied"
    assert {statuses[s] for s in ("deploy", "restart", "live", "record")} == {"skipped"}
    state = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert not state[stray["id"]]["live"]
    assert replacements(world) == []  # a replacement nobody could be given would be an orphan live key
    report = (world.dir / ".keyresponse" / "incidents" / result["incident"] / "report.md").read_text()
    assert "No replacement key was issued: the key (it is not in the inventory) has no targets" in report
    assert value not in world.everything_written(out.stdout, out.stderr)
