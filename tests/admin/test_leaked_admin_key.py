"""leaked-admin-key end to end against the sandbox: the dry run and the drill change
nothing; the run replaces keyresponse's own admin key everywhere and keeps every value
out of what it writes; another admin key is replaced without touching keyresponse's own."""

from __future__ import annotations

import json
from typing import Any

from keyresponse.playbook import load_playbook
from tests.admin.conftest import STORE, assert_admin_restored, own_admin
from tests.conftest import REPO
from tests.e2e.conftest import World, slack_threads

OTHER = """  ci-admin:
    kind: admin
    key_id: {key_id}
    targets:
      - {{kind: envfile, path: ci/admin.env, variables: [TF_ADMIN_KEY], create: true}}
"""


def _snapshot(world: World) -> dict[str, Any]:
    state = world.sandbox.state
    return {"admin": {k: (a["live"], a["name"]) for k, a in state.admin_keys.items()},
            "env": (world.dir / "sandbox.env").read_text(), "inventory": world.config.read_text(),
            "github": state.github_secret_value("org:acme", "OPENAI_ADMIN_KEY") if _has_gh(state) else None,
            "store": (world.dir / STORE).exists()}


def _has_gh(state: Any) -> bool:
    try:
        state.github_secret_value("org:acme", "OPENAI_ADMIN_KEY")
    except (KeyError, LookupError):
        return False
    return True


def test_leaked_admin_key_end_to_end(admin_world: World) -> None:
    world, sandbox = admin_world, admin_world.sandbox
    seeded, leaked = set(sandbox.state.admin_keys), own_admin(sandbox)
    other = next(a for a in sandbox.state.admin_keys.values() if a["id"] != leaked["id"])
    world.config.write_text(world.config.read_text() + OTHER.format(key_id=other["id"]))
    (world.dir / "ci").mkdir()
    before = _snapshot(world)

    plan = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    shown = plan.stdout + plan.stderr
    for step in load_playbook(REPO / "playbooks" / "leaked-admin-key.yaml").model.steps:
        assert f"{step.name} ({step.uses})" in shown, step.id
    assert "POST /organization/admin_api_keys" in shown
    assert f"DELETE /organization/admin_api_keys/{leaked['id']}" in shown
    drill = world.kr("drill", "--all")
    assert drill.returncode == 0, drill.stdout[-3000:] + drill.stderr[-3000:]
    assert "PASS  org-admin" in drill.stdout and "PASS  ci-admin" in drill.stdout
    assert _snapshot(world) == before, "a dry run or a drill changed something"

    wrong = world.kr("run", "leaked-admin-key", "--key", "chatbot-prod", "--yes")
    assert wrong.returncode != 0 and "is a project key" in wrong.stderr + wrong.stdout
    # and the other way round: a project key's playbook stops at its first step, having changed nothing
    project = world.kr("run", "leaked-key", "--key", "org-admin", "--yes")
    assert project.returncode == 1 and "leaked-admin-key --key org-admin" in project.stderr
    assert _snapshot(world) == before

    run = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--yes")
    assert run.returncode == 0, run.stderr[-4000:]
    value = assert_admin_restored(world, seeded, leaked["id"])
    assert "keyresponse now authenticates with" in run.stderr
    assert sandbox.state.admin_keys[other["id"]]["live"], "an unrelated admin key was deleted"
    (incident,) = [i for i in world.incidents() if i.get("status") == "succeeded"]
    folder = world.dir / ".keyresponse" / "incidents" / incident["id"]
    md = (folder / "report.md").read_text()
    assert "## Containment" in md and leaked["id"] in md and "Probe result | dead" in md
    written = world.everything_written(run.stdout, run.stderr, plan.stdout, plan.stderr, drill.stdout, drill.stderr)
    assert value not in written and leaked["value"] not in written, "an admin key value leaked into an output"

    # another admin key: replaced; keyresponse keeps authenticating with its own (now the new one)
    world.env["OPENAI_ADMIN_KEY"] = value
    second = world.kr("run", "leaked-admin-key", "--key", "ci-admin", "--yes")
    assert second.returncode == 0, second.stderr[-4000:]
    state = sandbox.state.admin_keys
    assert not state[other["id"]]["live"]
    assert any(a["live"] and a["value"] == value for a in state.values()), "keyresponse's own admin key was touched"
    [new] = [a for k, a in state.items() if k not in seeded and a["live"] and a["value"] != value]
    assert f"TF_ADMIN_KEY={new['value']}" in (world.dir / "ci" / "admin.env").read_text()
    [done] = [i for i in world.incidents() if i.get("status") == "succeeded" and i.get("key") == "ci-admin"]
    journal = (world.dir / ".keyresponse" / "incidents" / done["id"] / "journal.jsonl").read_text().splitlines()
    use = next(r for r in map(json.loads, journal) if r.get("event") == "step.finished" and r.get("step") == "use")
    assert use["outputs"]["switched"] is False


def test_leaked_admin_key_hunts_the_organization_and_revokes_what_the_attacker_left(admin_world: World) -> None:
    """The `admin-key-attack` seed: in the leak window the leaked admin key made a project, a
    service account with a key in an existing project, an invite and a second admin key; the
    team made objects of the same kinds before it. One run with `hunt: {revoke: auto}`."""
    from keyresponse.sandbox import seed

    world, sandbox = admin_world, admin_world.sandbox
    sandbox._in_loop(lambda: seed.apply_option(sandbox.state, "admin-key-attack"))
    truth = sandbox.state.truth["admin_hunt"]
    leaked = own_admin(sandbox)
    assert truth["leaked_admin_key_id"] == leaked["id"]
    seeded = set(sandbox.state.admin_keys) - {truth["attacker_admin_key"]}
    world.config.write_text(world.config.read_text() + "hunt: {revoke: auto}\n")

    run = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--yes", "--input",
                   f"leaked_at={truth['leaked_at']}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-4000:]
    value = assert_admin_restored(world, seeded, leaked["id"])
    (incident,) = [i for i in world.incidents() if i.get("status") == "succeeded"]
    folder = world.dir / ".keyresponse" / "incidents" / incident["id"]
    rows = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines() if line.strip()]
    hunt = next(r for r in rows if r.get("event") == "step.finished" and r.get("step") == "hunt")["outputs"]
    verdicts = {f["object"]: f["verdict"] for f in hunt["findings"]}

    # every attacker object is flagged, as the leaked key's doing; the team's older ones are not
    for ident in truth["attacker"]:
        assert verdicts.get(ident) == "review", (ident, verdicts)
    assert all(f["by_leaked_key"] for f in hunt["findings"] if f["object"] in truth["attacker"])
    assert not set(truth["legitimate"]) & set(verdicts), "an older legitimate object was in the window"
    # the incident's own new admin key: made by this incident, not flagged, alive
    (mine,) = [a for k, a in sandbox.state.admin_keys.items() if k not in seeded and a["live"]]
    assert mine["value"] == value and verdicts.get(mine["id"]) == "made by this incident"

    # revoke: auto took down the attacker's project key, service account and admin key
    state = sandbox.state
    assert not state.keys[truth["attacker_key"]]["live"]
    assert state.service_accounts[truth["attacker_service_account"]]["deleted_at"] is not None
    assert not state.admin_keys[truth["attacker_admin_key"]]["live"]
    assert {r["id"] for r in hunt["revoked"]} == {truth["attacker_key"], truth["attacker_service_account"],
                                                   truth["attacker_admin_key"]}
    assert all(state.admin_keys[k]["live"] for k in seeded if k != leaked["id"])
    assert all(state.keys[k]["live"] for k in truth["legitimate"] if k in state.keys)
    assert all(state.service_accounts[k]["deleted_at"] is None for k in truth["legitimate"]
               if k in state.service_accounts)

    # the report lists them, under an admin key's title
    md = (folder / "report.md").read_text()
    assert md.lstrip().startswith("# ") and "Leaked admin key" in md.split("\n## ")[0]
    section = md.split("## What else the attacker touched")[1].split("\n## ")[0]
    for ident in truth["attacker"]:
        assert ident in section, ident
    assert "rotate --key org-admin" not in md
    (root,) = slack_threads(world)
    assert "organization admin key" in root["text"] and "unknown project" not in root["text"]
    written = world.everything_written(run.stdout, run.stderr)
    assert value not in written and leaked["value"] not in written
