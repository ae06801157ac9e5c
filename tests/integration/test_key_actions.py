"""The key.* actions through the engine, against the sandbox over real HTTP.

Assertions read the sandbox's state (keys live or not, service accounts), never
call lists. Every run's journal is searched for the secret values it touched.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engine import Engine, Mode, RunResult
from keyresponse.inventory import load_inventory
from keyresponse.journal import Incident
from keyresponse.playbook import coerce_inputs, load_playbook
from keyresponse.secret import Secret
from tests.integration.conftest import run_steps

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(sandbox_config: Path, quick_retries: None) -> Path:
    """The sandbox's inventory in tmp_path, its credentials in the environment, quick retries."""
    return sandbox_config


run = run_steps


def step(result: RunResult, sid: str) -> Any:
    return next(s for s in result.steps if s.id == sid)


def key_state(sandbox: Any, key_id: str) -> dict[str, Any]:
    return next(k for k in sandbox.state.openai_keys() if k["id"] == key_id)


def assert_never_written(result: RunResult, *values: str) -> None:
    text = "".join(p.read_text() for p in result.incident.dir.iterdir() if p.is_file())
    text += repr(result.as_dict())
    for v in values:
        assert v not in text


# --- revoke, probe --------------------------------------------------------------------------


def test_service_account_key_revoked_and_proven_dead_with_the_leaked_value(
        world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = sandbox.state.truth
    leaked = os.environ["CHATBOT_PROD_OPENAI_KEY"]
    result = run(world, """
        - {id: revoke, uses: key.revoke}
        - {id: dead, uses: key.probe, with: {expect: dead}}
        """, {"leaked": Secret(leaked)}, declare="leaked: {type: secret}")
    assert result.ok, [s.error for s in result.steps]
    out = step(result, "revoke").outputs
    # the key alone (the current API reference): its service account and any sibling stay
    assert out["method"] == f"DELETE /organization/projects/{truth['leaked_project_id']}/api_keys/{truth['leaked_key_id']}"
    assert sandbox.state.service_accounts[truth["leaked_service_account_id"]]["deleted_at"] is None
    assert out["owner_type"] == "service_account" and out["already_gone"] is False and out["revoked_at"]
    assert key_state(sandbox, truth["leaked_key_id"])["live"] is False
    assert step(result, "dead").outputs["result"] == "dead" and step(result, "dead").outputs["method"] == "models"
    assert_never_written(result, leaked)

    # without the value in the run, the inventory's secret_env still lets the probe try it
    again = run(world, "- {id: revoke, uses: key.revoke}\n- {id: dead, uses: key.probe, with: {expect: dead}}\n")
    assert again.ok and step(again, "revoke").outputs["already_gone"] is True
    assert step(again, "dead").outputs["method"] == "models"
    # and with no value at all, death is proven by the key no longer being listed
    monkeypatch.delenv("CHATBOT_PROD_OPENAI_KEY")
    third = run(world, "- {id: revoke, uses: key.revoke}\n- {id: dead, uses: key.probe, with: {expect: dead}}\n")
    assert third.ok and step(third, "dead").outputs["method"] == "listing"


def test_user_key_revoked_by_delete(world: Path, sandbox: Any) -> None:
    user_key = next(k for k in sandbox.state.openai_keys() if k["name"] == "analytics-dev")
    result = run(world, "- {id: revoke, uses: key.revoke}\n- {id: dead, uses: key.probe, with: {expect: dead}}\n",
                 key="analytics-dev")
    assert result.ok, [s.error for s in result.steps]
    assert step(result, "revoke").outputs["method"] == \
        f"DELETE /organization/projects/{user_key['project_id']}/api_keys/{user_key['id']}"
    assert key_state(sandbox, user_key["id"])["live"] is False
    assert step(result, "dead").outputs == step(result, "dead").outputs | {"result": "dead", "method": "listing"}


def test_probe_live_restricted_and_a_live_key_expected_dead(world: Path, sandbox: Any) -> None:
    keys = {k["name"]: k for k in sandbox.state.openai_keys()}
    live = sandbox.state.openai_key_value(keys["bob-dev"]["id"])
    limited = sandbox.state.openai_key_value(keys["reporting-readonly"]["id"])
    result = run(world, """
        - {id: live, uses: key.probe, with: {secret: "${{ inputs.a }}", expect: live}}
        - {id: limited, uses: key.probe, with: {secret: "${{ inputs.b }}", expect: restricted}}
        - {id: wrong, uses: key.probe, with: {secret: "${{ inputs.a }}", expect: dead, within: 0}}
        """, {"a": Secret(live), "b": Secret(limited)}, key=None,
        declare="a: {type: secret}\nb: {type: secret}")
    assert [s.status for s in result.steps] == ["applied", "applied", "failed"]
    assert step(result, "limited").outputs["result"] == "restricted"
    assert "STILL LIVE" in step(result, "wrong").error
    assert_never_written(result, live, limited)


# --- finding by the leaked value ------------------------------------------------------------


FIND = "- {id: find, uses: key.find}\n"


def test_find_by_leaked_value_one_zero_and_two_matches(world: Path, sandbox: Any) -> None:
    truth = sandbox.state.truth
    leaked = os.environ["SANDBOX_LEAKED_KEY"]
    one = run(world, FIND, {"leaked": Secret(leaked)}, key=None, declare="leaked: {type: secret}")
    assert one.ok and step(one, "find").outputs["key_id"] == truth["leaked_key_id"]
    assert step(one, "find").outputs["project_id"] == truth["leaked_project_id"]

    stranger = leaked[:8] + "Q" * 40 + "zzzz"
    zero = run(world, FIND, {"leaked": Secret(stranger)}, key=None, declare="leaked: {type: secret}")
    assert step(zero, "find").status == "failed" and "no key among" in step(zero, "find").error

    twin = next(k for k in sandbox.state.keys.values() if k["name"] == "bob-dev")
    twin["value"] = leaked[:8] + "T" * 40 + leaked[-4:]  # same redacted form as the leaked key
    two = run(world, FIND, {"leaked": Secret(leaked)}, key=None, declare="leaked: {type: secret}")
    error = step(two, "find").error
    assert step(two, "find").status == "failed" and "refusing to guess" in error
    assert truth["leaked_key_id"] in error and twin["id"] in error
    for r in (one, zero, two):
        assert_never_written(r, leaked, stranger)


# --- issue, crash, resume -------------------------------------------------------------------

CRASH_RUN = """
import os, sys
from keyresponse.engine import Engine, Mode
from keyresponse.inventory import load_inventory
from keyresponse.playbook import coerce_inputs, load_playbook
from keyresponse.secret import Secret
config, book, key, leaked_env = sys.argv[1:]
pb = load_playbook(book)
inputs = coerce_inputs(pb, {"leaked": Secret(os.environ[leaked_env])} if leaked_env else {})
Engine(load_inventory(config), mode=Mode.APPLY, assume_yes=True).start(pb, inputs, key or None)
"""


def killed_run(config: Path, book: Path, point: str, *, key: str = "chatbot-prod",
               leaked_env: str = "") -> subprocess.CompletedProcess[str]:
    """Run `book` in a child process that the crash point kills (the leaked value, if any,
    read there from `leaked_env`)."""
    return subprocess.run([sys.executable, "-c", CRASH_RUN, str(config), str(book), key, leaked_env],
                          env={**os.environ, "KEYRESPONSE_CRASH_AT": point}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_crash_right_after_mint_then_resume_leaves_exactly_one_live_replacement(world: Path, sandbox: Any) -> None:
    book = world.parent / "issue.yaml"
    book.write_text("name: issue\nsteps:\n"
                    "  - {id: issue, uses: key.issue}\n"
                    "  - {id: live, uses: key.probe, with: {secret: '${{ steps.issue.outputs.secret }}', expect: live}}\n")
    proc = killed_run(world, book, "key.issue:after-mint")
    assert proc.returncode == -9, proc.stderr
    [incident] = Incident.all(world.parent / ".keyresponse")
    project = sandbox.state.truth["leaked_project_id"]

    def replacements() -> list[dict[str, Any]]:
        return [k for k in sandbox.state.openai_keys() if k["service_account_id"] in {
            s["id"] for s in sandbox.state.service_accounts.values() if s["name"].startswith(f"keyresponse-{incident.id}-")}]

    [orphan] = replacements()
    assert orphan["live"] and orphan["project_id"] == project

    result = Engine(load_inventory(world), mode=Mode.APPLY, assume_yes=True).resume(incident)
    assert result.ok, [s.error for s in result.steps]
    live = [k for k in replacements() if k["live"]]
    assert len(live) == 1 and live[0]["id"] != orphan["id"]
    assert key_state(sandbox, orphan["id"])["live"] is False
    out = step(result, "issue").outputs
    assert out["key_id"] == live[0]["id"] and orphan["service_account_id"] in out["replaced"]
    assert out["name"].endswith("-2")
    assert_never_written(result, out["secret"].reveal(), sandbox.state.openai_key_value(orphan["id"]))
    assert proc.stdout.count("sk-") == 0 and "sk-proj" not in proc.stderr


def test_issue_twice_in_one_incident_never_leaves_two_live(world: Path, sandbox: Any) -> None:
    result = run(world, "- {id: issue, uses: key.issue, retries: 1}\n")
    assert result.ok
    sa = step(result, "issue").outputs["service_account_id"]
    assert sandbox.state.service_accounts[sa]["name"] == f"keyresponse-{result.incident.id}-1"


def test_mint_that_commits_then_fails_is_found_by_name_and_revoked(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="POST", path="/organization/projects/*/service_accounts",
                      kind="commit_then_fail", status=502, count=1)
    result = run(world, "- {id: issue, uses: key.issue}\n")
    assert result.ok, [s.error for s in result.steps]
    made = [s for s in sandbox.state.service_accounts.values() if s["name"].startswith(f"keyresponse-{result.incident.id}")]
    assert len(made) == 2
    live_owners = {k["service_account_id"] for k in sandbox.state.openai_keys() if k["live"]}
    assert len([s for s in made if s["id"] in live_owners]) == 1
    assert step(result, "issue").outputs["service_account_id"] in live_owners



def test_a_mint_that_commits_after_the_timeout_is_found_later_and_revoked(
        world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # the client gives up on the first mint after 0.5 s; the sandbox makes that mint 0.3 s
    # after that, when the step has already looked for it once and minted again
    from keyresponse import http

    monkeypatch.setattr(http, "build_client", functools.partial(http.build_client, timeout=0.5))
    world.write_text(world.read_text().replace("    admin_key_env: OPENAI_ADMIN_KEY\n",
                                               "    admin_key_env: OPENAI_ADMIN_KEY\n    mint_settle: 20\n", 1))
    sandbox.add_fault(service="openai", method="POST", path="/organization/projects/*/service_accounts",
                      kind="commit_after_timeout", latency_ms=300, count=1)
    result = run(world, """
        - {id: issue, uses: key.issue, with: {keep_deployed: true}}
        - {id: live, uses: key.probe, with: {secret: "${{ steps.issue.outputs.secret }}", expect: live}}
        - {id: retire, uses: key.retire}
        """)
    assert result.ok, [s.error for s in result.steps]
    prefix = f"keyresponse-{result.incident.id}-"

    def made() -> list[dict[str, Any]]:
        return [s for s in list(sandbox.state.service_accounts.values()) if s["name"].startswith(prefix)]

    deadline = time.monotonic() + 15  # the late mint lands in the sandbox, whatever the run did
    while len(made()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(s["name"] for s in made()) == [prefix + "1", prefix + "2"]
    live_owners = {k["service_account_id"] for k in sandbox.state.openai_keys() if k["live"]}
    assert [s["id"] for s in made() if s["id"] in live_owners] == [step(result, "issue").outputs["service_account_id"]]


# --- retries ----------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_once_and_the_step_succeeds(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="DELETE", path="/organization/projects/*/api_keys/*",
                      kind="status", status=429, retry_after="1", count=1)
    started = time.monotonic()
    result = run(world, "- {id: revoke, uses: key.revoke}\n")
    elapsed = time.monotonic() - started
    assert result.ok, [s.error for s in result.steps]
    deletes = [m for m in sandbox.state.mutations if m["method"] == "DELETE"]
    assert [m["status"] for m in deletes] == [200] and 1.0 <= elapsed < 5
    assert key_state(sandbox, sandbox.state.truth["leaked_key_id"])["live"] is False


def test_a_run_of_503s_exhausts_the_budget_and_says_the_key_is_still_live(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="DELETE", path="/organization/projects/*/api_keys/*",
                      kind="status", status=503)
    result = run(world, "- {id: revoke, uses: key.revoke}\n")
    revoke = step(result, "revoke")
    assert revoke.status == "failed"
    assert "STILL LIVE" in revoke.error and "503" in revoke.error and "gave up after 4 attempts" in revoke.error
    assert key_state(sandbox, sandbox.state.truth["leaked_key_id"])["live"] is True


# --- audit ------------------------------------------------------------------------------------


def test_audit_finds_the_seeded_spike_and_the_new_models(world: Path, sandbox: Any) -> None:
    from keyresponse.providers.base import epoch

    truth = sandbox.state.truth
    result = run(world, "- {id: audit, uses: key.audit, with: {days: 30}}\n")
    assert result.ok, [s.error for s in result.steps]
    out = step(result, "audit").outputs
    assert abs(epoch(out["first_anomalous_hour"]) - truth["attack_start"]) <= 3600
    assert set(truth["attack_models"]) <= set(out["new_models"])
    assert not set(truth["baseline_models"]) & set(out["new_models"])
    assert out["totals"]["after"]["tokens"] > out["totals"]["before"]["tokens"] / 10
    assert out["estimated_cost_usd"] > 0 and len(out["hourly"]) >= 30 * 24
    assert all({"type", "effective_at", "actor"} <= set(e) for e in out["events"])


def test_keys_listing_marks_inventory_entries(world: Path, sandbox: Any) -> None:
    from keyresponse.commands.keys import list_keys

    rows = list_keys(load_inventory(world))
    assert {r["key_id"] for r in rows} == {k["id"] for k in sandbox.state.openai_keys() if k["live"]}
    assert {r["inventory_name"] for r in rows} >= {"chatbot-prod", "analytics-dev", "canary-monitor"}


# --- dry run, issue modes, resume without the leaked value ------------------------------------


def test_dry_run_plans_the_exact_calls_and_changes_nothing(world: Path, sandbox: Any) -> None:
    truth = sandbox.state.truth
    book = world.parent / "dry.yaml"
    book.write_text("name: dry\nsteps:\n  - {id: find, uses: key.find}\n  - {id: revoke, uses: key.revoke}\n"
                    "  - {id: issue, uses: key.issue}\n  - {id: audit, uses: key.audit}\n")
    pb = load_playbook(book)
    before = sandbox.state.mutation_count
    result = Engine(load_inventory(world), mode=Mode.PLAN).start(pb, coerce_inputs(pb, {}), "chatbot-prod")
    assert result.ok and [s.status for s in result.steps] == ["planned"] * 4
    project = f"/organization/projects/{truth['leaked_project_id']}"
    assert step(result, "revoke").changes == [
        f"DELETE {project}/api_keys/{truth['leaked_key_id']}: {truth['leaked_key_id']} 'chatbot-prod' "
        f"(sk-proj-...{os.environ['CHATBOT_PROD_OPENAI_KEY'][-4:]}, inventory: chatbot-prod) dies",
        f"only if OpenAI refuses to delete it alone: DELETE {project}/service_accounts/"
        f"{truth['leaked_service_account_id']} (it holds no other live key)"]
    assert step(result, "find").outputs["key_id"] == truth["leaked_key_id"]
    assert sandbox.state.mutation_count == before


def test_issue_on_an_existing_service_account(world: Path, sandbox: Any) -> None:
    truth = sandbox.state.truth
    text = world.read_text().replace(
        "    key_id: " + truth["leaked_key_id"],
        "    key_id: " + truth["leaked_key_id"] + "\n    issue: {mode: service_account_key, service_account_id: "
        + truth["leaked_service_account_id"] + "}")
    world.write_text(text)
    result = run(world, "- {id: issue, uses: key.issue}\n- {id: live, uses: key.probe, "
                        "with: {secret: '${{ steps.issue.outputs.secret }}', expect: live}}\n")
    assert result.ok, [s.error for s in result.steps]
    out = step(result, "issue").outputs
    made = key_state(sandbox, out["key_id"])
    assert made["service_account_id"] == truth["leaked_service_account_id"] and made["name"] == out["name"]


def test_resume_needs_no_leaked_value(world: Path, sandbox: Any) -> None:
    book = world.parent / "contain.yaml"
    book.write_text("name: contain\ninputs: {leaked: {type: secret}}\nsteps:\n"
                    "  - {id: revoke, uses: key.revoke}\n  - {id: dead, uses: key.probe, with: {expect: dead}}\n")
    proc = killed_run(world, book, "after:revoke", key="", leaked_env="SANDBOX_LEAKED_KEY")
    assert proc.returncode == -9, proc.stderr
    [incident] = Incident.all(world.parent / ".keyresponse")
    result = Engine(load_inventory(world), mode=Mode.APPLY, assume_yes=True).resume(incident)
    assert result.ok, [s.error for s in result.steps]
    assert step(result, "dead").outputs["result"] == "dead"
    assert step(result, "dead").outputs["key_id"] == sandbox.state.truth["leaked_key_id"]
    assert_never_written(result, os.environ["SANDBOX_LEAKED_KEY"])


# --- the lookup that starts while the incident opens (Action.prefetch) -----------------------


def _key_reads(sandbox: Any) -> int:
    truth = sandbox.state.truth
    return sum(n for (service, method, path), n in sandbox.state.requests.items()
               if service == "openai" and method == "GET" and path.endswith(f"/api_keys/{truth['leaked_key_id']}"))


def test_the_first_steps_lookup_is_made_once_and_used(world: Path, sandbox: Any) -> None:
    result = run(world, """
        - {id: revoke, uses: key.revoke}
        - {id: dead, uses: key.probe}
        """)
    assert result.ok, [s.error for s in result.steps]
    assert _key_reads(sandbox) == 1  # made early, then used by the preflight: never twice
    assert key_state(sandbox, sandbox.state.truth["leaked_key_id"])["live"] is False


def test_the_revoke_plans_siblings_from_the_early_listing(world: Path, sandbox: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the plan names the sibling keys from the project's listing made while the incident
    # opened (in parallel with the lookup): the preflight itself lists nothing
    from keyresponse.actions.key import Revoke

    seen: dict[str, Any] = {}
    preflight = Revoke.preflight

    def listings() -> int:
        return int(sandbox.state.requests[("openai", "GET", f"/organization/projects/{seen['project']}/api_keys")])

    def counted(self: Revoke, plan: Any, ctx: Any) -> Any:
        ctx.prefetched()  # wait for the early reads, so the count below is theirs
        seen["before"] = listings()
        checks = preflight(self, plan, ctx)
        seen["during"] = listings() - seen["before"]
        seen["outputs"] = dict(plan.outputs)
        return checks

    monkeypatch.setattr(Revoke, "preflight", counted)
    # the inventory's key: its account holds no other key, which only the listing can tell
    leaked = key_state(sandbox, sandbox.state.truth["leaked_key_id"])
    seen["project"] = leaked["project_id"]
    result = run(world, "- {id: revoke, uses: key.revoke}\n", mode=Mode.PLAN)
    assert result.ok, [s.error for s in result.steps]
    assert (seen["before"], seen["during"]) == (1, 0)
    assert seen["outputs"]["siblings"] == [] and seen["outputs"]["may_delete_service_account"]
    assert _key_reads(sandbox) == 1
    # a key whose account holds a sibling, named by `with:`: the sibling is named, still no listing of its own
    keys = {k["name"]: k for k in sandbox.state.openai_keys()}
    indexer, rerank = keys["search-indexer"], keys["search-rerank"]
    seen["project"] = indexer["project_id"]
    result = run(world, f"- {{id: revoke, uses: key.revoke, with: {{key_id: {indexer['id']}, "
                        f"project: {indexer['project_id']}}}}}\n", key=None, mode=Mode.PLAN)
    assert result.ok, [s.error for s in result.steps]
    assert (seen["before"], seen["during"]) == (1, 0)
    assert seen["outputs"]["siblings"] == [rerank["id"]]


def test_a_failed_early_lookup_is_made_again_by_the_step(world: Path, sandbox: Any) -> None:
    # the early read meets a 403 (not retried); the step's own read then succeeds
    sandbox.add_fault(service="openai", method="GET", path="/organization/projects/*/api_keys/*",
                      kind="status", status=403, count=1)
    result = run(world, "- {id: revoke, uses: key.revoke}\n")
    assert result.ok, [s.error for s in result.steps]
    assert _key_reads(sandbox) == 2
    assert key_state(sandbox, sandbox.state.truth["leaked_key_id"])["live"] is False



def test_issue_mints_nothing_for_a_key_with_nowhere_to_go(world: Path, sandbox: Any) -> None:
    before = len(sandbox.state.service_accounts)
    failed = run(world, "- {id: issue, uses: key.issue}\n", key=None)  # not in the inventory: no targets
    issue = step(failed, "issue")
    assert issue.status == "failed" and "has no targets" in (issue.error or "") and "targets" in (issue.hint or "")
    skipped = run(world, "- {id: issue, uses: key.issue, with: {without_targets: skip}}\n", key=None)
    assert skipped.ok and step(skipped, "issue").outputs["issued"] is False
    assert len(sandbox.state.service_accounts) == before


def test_a_key_revoked_by_hand_is_proven_dead_by_its_value(world: Path, sandbox: Any) -> None:
    leaked = Secret(os.environ["CHATBOT_PROD_OPENAI_KEY"])
    assert run(world, "- {id: revoke, uses: key.revoke}\n", {"leaked": leaked}, declare="leaked: {type: secret}").ok
    # a later run no longer finds the key listed; its value still answers
    result = run(world, "- {id: dead, uses: key.probe, with: {expect: dead}}\n", {"leaked": leaked},
                 declare="leaked: {type: secret}")
    assert result.ok, step(result, "dead").error
    assert step(result, "dead").outputs["method"] == "models"


def test_a_key_no_longer_listed_is_not_judged_by_another_keys_value(world: Path, sandbox: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(world, "- {id: revoke, uses: key.revoke}\n").ok
    other = next(k for k in sandbox.state.openai_keys() if k["live"])
    monkeypatch.setenv("CHATBOT_PROD_OPENAI_KEY", sandbox.state.openai_key_value(other["id"]))  # stale env
    result = run(world, "- {id: dead, uses: key.probe, with: {expect: dead}}\n")
    assert result.ok, step(result, "dead").error
    assert step(result, "dead").outputs["method"] == "listing"
