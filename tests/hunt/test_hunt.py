"""The persistence hunt and the blast radius, end to end against the sandbox.

One seeded organization (sandbox/seed_attack.py): during the leak window the leaked
key's actor made a service account with a key, sent an invite, uploaded a file,
started a batch and generated images; before it, the team made objects of the same
kinds; in it, a trusted automation changed a rate limit. A dry run, a real
`leaked-key` with `hunt.revoke: auto`, then a hunt-only run again (revoking what is
already gone) check every promise in as few runs as possible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import SPECS
from tests.e2e.conftest import World, replacements

HUNT_ONLY = """\
name: hunt-again
inputs:
  key: {required: true}
  leaked_at: {type: datetime}
steps:
  - {id: hunt, uses: key.hunt, with: {revoke: auto, scope: organization}}
"""


def _incident(world: World, out: Any) -> Path:
    result = json.loads(out.stdout.splitlines()[-1])
    return world.dir / ".keyresponse" / "incidents" / str(result["incident"])


def _newest(world: World) -> Path:
    runs = [p for p in (world.dir / ".keyresponse" / "incidents").iterdir() if (p / "journal.jsonl").is_file()]
    return max(runs, key=lambda p: (p / "journal.jsonl").stat().st_mtime_ns)


def _outputs(folder: Path, step: str) -> dict[str, Any]:
    rows = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines() if line.strip()]
    done = [r for r in rows if r.get("event") == "step.finished" and r.get("step") == step]
    assert done, f"step {step} never finished"
    outputs: dict[str, Any] = done[-1]["outputs"]
    return outputs


def _secrets(world: World) -> list[str]:
    state = world.sandbox.state
    values = [state.openai_key_value(k["id"]) for k in state.openai_keys()]
    return values + [a["value"] for a in state.admin_keys.values()] + list(world.sandbox.env.values())


def test_hunt_flags_the_attackers_objects_revokes_them_and_reports_the_blast_radius(world: World) -> None:
    state = world.sandbox.state
    truth = state.truth["hunt"]
    inventory = yaml.safe_load(world.config.read_text())
    inventory["hunt"] = {"revoke": "auto", "trusted_actors": [truth["trusted_actor"]]}
    world.config.write_text(yaml.safe_dump(inventory, sort_keys=False))

    # a dry run shows what would be revoked, and changes nothing
    before = state.mutation_count
    plan = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--dry-run")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    planned = plan.stdout + plan.stderr
    revokes = [line for line in planned.splitlines() if line.strip().startswith("· revoke ")]
    assert any(truth["attacker_key"] in line for line in revokes)
    assert any(truth["attacker_service_account"] in line for line in revokes)
    # the dry run has no audit to date the leak by: what the leaked key did not make is only listed
    assert not [line for line in revokes if any(i in line for i in truth["legitimate"])]
    assert state.mutation_count == before

    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = _newest(world)
    hunt = _outputs(folder, "hunt")
    verdicts = {f["object"]: f["verdict"] for f in hunt["findings"]}

    # every attacker object that gives a way back in is found and flagged, as the leaked key's doing
    for ident in (truth["attacker_service_account"], truth["attacker_key"], truth["attacker_invite"]):
        assert verdicts.get(ident) == "review", ident
    assert all(f["by_leaked_key"] for f in hunt["findings"] if f["object"] in truth["attacker"])
    # the team's older objects are not flagged; the trusted automation's change is trusted
    assert not set(truth["legitimate"]) & {o for o, v in verdicts.items() if v == "review"}
    assert verdicts[truth["trusted"][0]] == "trusted"
    # the incident's own mint is recognised, never flagged, and stays live
    (mine,) = [k for k in replacements(world) if k["live"] and k["id"] not in truth["attacker"]]
    assert verdicts[mine["id"]] == "made by this incident"
    assert verdicts[mine["service_account_id"]] == "made by this incident"

    # revoke: auto took the attacker's key and service account down; the sandbox shows them gone
    keys = {k["id"]: k for k in state.openai_keys()}
    assert not keys[truth["attacker_key"]]["live"]
    assert state.service_accounts[truth["attacker_service_account"]]["deleted_at"] is not None
    assert {r["id"] for r in hunt["revoked"]} == {truth["attacker_key"], truth["attacker_service_account"]}
    assert keys[mine["id"]]["live"] and all(keys[i]["live"] for i in truth["legitimate"] if i in keys)
    summary = (out.stdout + out.stderr).splitlines()
    assert "  hunt         3 objects to review, 2 revoked" in summary

    # the audit asked every usage endpoint of the spec for the leaked key
    spec = yaml.safe_load((SPECS / "openai-admin.openapi.yaml").read_text())
    usage_paths = [p for p in spec["paths"] if p.startswith("/organization/usage/")]
    assert len(usage_paths) == 10
    asked = {path for (service, method, path), n in state.requests.items() if service == "openai" and n}
    assert not [p for p in usage_paths if p not in asked], "usage endpoints the audit never queried"
    audit = _outputs(folder, "audit")
    assert set(audit["usage_by_category"]) == {p.rsplit("/", 1)[1] for p in usage_paths}
    assert audit["usage_by_category"]["images"]["images"] == truth["images"]
    assert audit["cost_by_category"]["images"] > 0
    stored = {r["id"] for r in audit["resources"]}
    assert {i for i in truth["attacker"] if i.startswith(("file-", "batch_"))} <= stored
    assert not stored & set(truth["legitimate"])

    # the report lists all of it
    report = (folder / "report.md").read_text()
    section = report.split("## What else the attacker touched")[1].split("\n## ")[0]
    for ident in truth["attacker"]:
        assert ident in section, ident
    usage = report.split("## Usage audit")[1].split("\n## ")[0]
    assert "| images | " in usage and f"{truth['images']:,} images" in usage
    html = (folder / "report.html").read_text()
    assert 'id="hunt"' in html and truth["attacker_key"] in html

    # again: everything flagged is already gone, and that is fine
    (world.dir / "hunt-again.yaml").write_text(HUNT_ONLY)
    again = world.kr("run", str(world.dir / "hunt-again.yaml"), "--key", "chatbot-prod", "--yes", "--json",
                     "--input", f"leaked_at={state.truth['attack_start']}")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    second = _outputs(_incident(world, again), "hunt")
    gone = {r["id"]: r["already_gone"] for r in second["revoked"]}
    assert gone.get(truth["attacker_key"]) is True and gone.get(truth["attacker_service_account"]) is True
    # the first incident's replacement is the team's, not the attacker's: never revoked
    again_verdicts = {f["object"]: f["verdict"] for f in second["findings"]}
    assert again_verdicts[mine["id"]] == "trusted" and mine["id"] not in gone
    assert {k["id"]: k for k in state.openai_keys()}[mine["id"]]["live"]

    written = world.everything_written(plan.stdout, plan.stderr, out.stdout, out.stderr, again.stdout, again.stderr)
    leaks = [i for i, value in enumerate(_secrets(world)) if value and len(value) > 20 and value in written]
    assert not leaks, f"{len(leaks)} secret value(s) reached an output"
