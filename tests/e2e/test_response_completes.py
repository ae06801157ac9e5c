"""A response that can complete must not be stopped by a read it can do without, and
one that cannot complete must be refused before anything changes. Through the CLI,
against the sandbox."""

from __future__ import annotations

import json
from typing import Any

from keyresponse.sandbox import seed
from tests.e2e.conftest import World, assert_restored


def _result(out: Any) -> dict[str, Any]:
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _statuses(result: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in result["steps"]}


def _report(world: World, result: dict[str, Any]) -> str:
    return (world.dir / ".keyresponse" / "incidents" / str(result["incident"]) / "report.md").read_text()


def test_an_unreadable_audit_log_does_not_stop_the_replacement(world: World) -> None:
    """Audit logging is opt-in: without it the old key's scopes cannot be copied, and the
    replacement is still minted and deployed (the plan and the report say so)."""
    world.sandbox.add_fault(service="openai", method="GET", path="/organization/audit_logs", kind="status",
                            status=403, count=None)
    plan = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--dry-run", "--json")
    planned = next(s for s in _result(plan)["steps"] if s["id"] == "issue")
    assert "scopes not copied" in json.dumps(planned), planned
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    result = _result(out)
    statuses = _statuses(result)
    assert {statuses[s] for s in ("revoke", "dead", "issue", "deploy", "live", "record")} == {"applied"}, \
        out.stdout[-3000:] + out.stderr[-3000:]
    assert_restored(world)
    assert "scopes not copied" in _report(world, result)


def test_declining_the_resume_of_a_killed_run_keeps_it_interrupted(world: World) -> None:
    """Killed after the revoke, its resume declined at the prompt: the incident is not
    `declined` (the key is already revoked), and nothing claims it changed nothing."""
    import sys

    import pytest

    pexpect = pytest.importorskip("pexpect")
    first = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": "after:revoke"})
    assert first.returncode == -9, first.stderr[-2000:]
    (incident,) = world.incidents()
    child = pexpect.spawn(sys.executable, ["-m", "keyresponse", "resume", incident["id"]], cwd=str(world.dir),
                          env={**world.env, "TERM": "xterm"}, encoding="utf-8", timeout=90, dimensions=(40, 100))
    child.expect("Proceed")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    said = " ".join((child.before or "").split())
    assert child.exitstatus == 130, said
    (after,) = world.incidents()
    assert after["status"] == "interrupted", after
    assert "changed nothing and sent nothing" not in said, said
    assert "resume" in said, said  # how to go on


def test_a_drill_does_not_call_the_live_replacement_on_an_existing_account_an_orphan(world: World) -> None:
    """`issue: {mode: service_account_key}`: the replacement is a key on an existing account.
    Killed before inventory.record, the deployed replacement is in use, not an orphan."""
    import yaml

    from tests.e2e.conftest import leaked, replacements

    old = leaked(world)
    other = next(sa for sa in world.sandbox.state.service_accounts.values()
                 if sa["project_id"] == old["project_id"] and sa["id"] != old.get("owner_id") and not sa["deleted_at"])
    doc = yaml.safe_load(world.config.read_text())
    doc["keys"]["chatbot-prod"]["issue"] = {"mode": "service_account_key", "service_account_id": other["id"]}
    world.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    first = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", env={"KEYRESPONSE_CRASH_AT": "after:live"})
    assert first.returncode == -9, first.stderr[-2000:]
    [new] = [k for k in replacements(world) if k["live"]]
    drill = world.kr("drill", "--key", "chatbot-prod")
    said = drill.stdout + drill.stderr
    assert "orphans:" not in said or new["id"] not in said, said[-3000:]


def test_a_slow_opening_post_and_the_close_step_make_one_root(world: World) -> None:
    """The opening post is still in flight when the close step stops waiting for it: the
    close step must not post a second root beside it. (The last step waits for the
    opening post, so the process outlives it.)"""
    from tests.e2e.conftest import slack_threads

    playbook = world.dir / "slow-open.yaml"
    playbook.write_text("name: slow-open\nsteps:\n"
                        "  - {id: open, uses: notify.slack, with: {event: opened}}\n"
                        "  - {id: close, uses: notify.slack, timeout: 1, with: {event: closed}}\n"
                        "  - {id: after, uses: notify.slack, always: true, with: {event: update}}\n")
    world.sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind="latency",
                            latency_ms=3000, count=1)
    out = world.kr("run", str(playbook), "--yes", "--json")
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-3000:]
    roots = slack_threads(world)
    assert len(roots) == 1, [m["text"] for m in roots]


def test_with_yes_a_replacement_the_revoke_makes_impossible_refuses_the_run(world: World) -> None:
    """`issue` would mint on the leaked key's own account, which the revoke deletes where
    the provider refuses to delete the key alone: under --yes (no terminal, no drill) the
    run is refused before anything changes, instead of revoking and leaving no replacement."""
    import yaml

    from tests.e2e.conftest import leaked, replacements

    world.sandbox._in_loop(lambda: seed.apply_option(world.sandbox.state, "refuse-service-account-key-delete"))
    doc = yaml.safe_load(world.config.read_text())
    doc["keys"]["chatbot-prod"]["issue"] = {"mode": "service_account_key", "service_account_id": leaked(world)["owner_id"]}
    world.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes")
    said = out.stdout + out.stderr
    assert out.returncode == 2, said[-3000:]
    assert "may delete service account" in said and "nothing was done" in said, said[-3000:]
    assert leaked(world)["live"] and replacements(world) == []
    assert world.sandbox.state.slack_messages == [] and world.sandbox.state.mutations == []
