"""key.issue and key.revoke when the provider's answer goes wrong after the change was
made: the sandbox commits, then the answer (or the next call) fails. Assertions read the
sandbox's state: no live key nobody holds, the minted secret never lost."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engine import RunResult
from tests.integration.conftest import run_steps as run

SA_PATH = "/organization/projects/*/service_accounts"


@pytest.fixture
def world(sandbox_config: Path, quick_retries: None) -> Path:
    return sandbox_config


def step(result: RunResult, sid: str) -> Any:
    return next(s for s in result.steps if s.id == sid)


def made(sandbox: Any, result: RunResult) -> list[dict[str, Any]]:
    prefix = f"keyresponse-{result.incident.id}-"
    return [s for s in list(sandbox.state.service_accounts.values()) if s["name"].startswith(prefix)]


def live_accounts(sandbox: Any) -> set[str]:
    return {k["service_account_id"] for k in sandbox.state.openai_keys() if k["live"]}


def test_a_failed_lookup_after_a_successful_mint_keeps_the_new_key(
        world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # the first mint is refused with a 503 (so there is an earlier attempt to look up), the
    # second lands; then every listing of service accounts fails
    from keyresponse.providers.openai import OpenAIClient

    sandbox.add_fault(service="openai", method="POST", path=SA_PATH, kind="status", status=503, count=1)
    mint = OpenAIClient.issue

    def issue_then_break_listing(self: OpenAIClient, spec: Any) -> Any:
        issued = mint(self, spec)
        sandbox.add_fault(service="openai", method="GET", path=SA_PATH, kind="status", status=503)
        return issued

    monkeypatch.setattr(OpenAIClient, "issue", issue_then_break_listing)
    result = run(world, """
        - {id: issue, uses: key.issue}
        - {id: live, uses: key.probe, with: {secret: "${{ steps.issue.outputs.secret }}", expect: live}}
        """)
    issue = step(result, "issue")
    assert issue.status == "applied", issue.error
    assert step(result, "live").status == "applied", step(result, "live").error
    assert live_accounts(sandbox) & {s["id"] for s in made(sandbox, result)} == {issue.outputs["service_account_id"]}
    journal = (result.incident.dir / "journal.jsonl").read_text()
    assert "key.issue.sweep_pending" in journal


def test_a_mint_answered_with_a_body_that_is_not_json_is_looked_up_and_revoked(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="POST", path=SA_PATH, kind="commit_then_garble", count=1)
    result = run(world, """
        - {id: issue, uses: key.issue}
        - {id: live, uses: key.probe, with: {secret: "${{ steps.issue.outputs.secret }}", expect: live}}
        """)
    issue = step(result, "issue")
    assert issue.status == "applied", issue.error
    accounts = made(sandbox, result)
    assert len(accounts) == 2  # the garbled one, and the one in use
    assert live_accounts(sandbox) & {s["id"] for s in accounts} == {issue.outputs["service_account_id"]}
    assert next(s for s in accounts if s["id"] != issue.outputs["service_account_id"])["deleted_at"] is not None


def test_a_revoke_whose_answer_is_cut_and_retried_is_reported_as_revoked_now(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="DELETE", path="/organization/projects/*/api_keys/*",
                      kind="headers_then_reset", count=1)
    result = run(world, "- {id: revoke, uses: key.revoke}\n")
    revoke = step(result, "revoke")
    assert revoke.status == "applied", revoke.error
    assert revoke.outputs["already_gone"] is False and revoke.outputs["revoked_at"]
    leaked = sandbox.state.truth["leaked_key_id"]
    assert next(k for k in sandbox.state.openai_keys() if k["id"] == leaked)["live"] is False


def test_a_mint_that_lands_after_the_run_ended_is_reported_by_drill_and_revoked_by_resume(
        world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # the client gives up on the first mint after 0.5 s; the sandbox makes it seconds later,
    # after the run (which waited its 1 s mint_settle for it) has ended
    import functools
    import json
    import subprocess
    import sys
    import time

    from keyresponse import http
    from keyresponse.engine import Engine, Mode
    from keyresponse.inventory import load_inventory
    from keyresponse.journal import Incident
    from tests.conftest import REPO

    monkeypatch.setattr(http, "build_client", functools.partial(http.build_client, timeout=0.5))
    world.write_text(world.read_text().replace("    admin_key_env: OPENAI_ADMIN_KEY\n",
                                               "    admin_key_env: OPENAI_ADMIN_KEY\n    mint_settle: 1\n", 1))
    sandbox.add_fault(service="openai", method="POST", path=SA_PATH, kind="commit_after_timeout",
                      latency_ms=2500, count=1)
    result = run(world, """
        - {id: issue, uses: key.issue, with: {keep_deployed: true}}
        - {id: live, uses: key.probe, with: {secret: "${{ steps.issue.outputs.secret }}", expect: live}}
        - {id: retire, uses: key.retire, always: true}
        """)
    assert result.ok, [s.error for s in result.steps]
    current = step(result, "issue").outputs["service_account_id"]
    deadline = time.monotonic() + 15  # the late mint lands in the sandbox, whatever the run did
    while len(made(sandbox, result)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    late = [s for s in made(sandbox, result) if s["id"] != current]
    # the account the first try asked for exists (the client gave up before it could add its key)
    assert len(late) == 1 and late[0]["deleted_at"] is None, "the late mint never landed"

    def drill() -> list[str]:
        env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-m", "keyresponse", "drill", "--key", "chatbot-prod", "--json"],
                             cwd=world.parent, env=env, capture_output=True, text=True, timeout=120)
        final = json.loads(out.stdout.splitlines()[-1])
        return [p for d in final["drills"] for p in d["problems"] if p.startswith("orphans:")]

    found = drill()
    assert len(found) == 1 and late[0]["id"] in found[0] and result.incident.id in found[0], found
    assert f"keyresponse resume {result.incident.id}" in found[0]

    again = Engine(load_inventory(world), mode=Mode.APPLY, assume_yes=True).resume(Incident.open(world.parent / ".keyresponse",
                                                                                result.incident.id))
    assert again.ok, [s.error for s in again.steps]
    assert [s["id"] for s in made(sandbox, result) if s["deleted_at"] is None] == [current]
    assert current in live_accounts(sandbox)
    assert drill() == []


def test_two_unanswered_mints_are_not_called_harmless_and_retire_fails_while_they_may_land(
        world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from keyresponse import http

    monkeypatch.setattr(http, "build_client", functools.partial(http.build_client, timeout=0.5))
    world.write_text(world.read_text().replace("    admin_key_env: OPENAI_ADMIN_KEY\n",
                                               "    admin_key_env: OPENAI_ADMIN_KEY\n    mint_settle: 30\n", 1))
    sandbox.add_fault(service="openai", method="POST", path=SA_PATH, kind="commit_after_timeout",
                      latency_ms=2500, count=2)
    result = run(world, """
        - {id: issue, uses: key.issue}
        - {id: retire, uses: key.retire, always: true, timeout: 3}
        """)
    issue, retire = step(result, "issue"), step(result, "retire")
    assert issue.status == "failed"
    assert "nothing was left live" not in (issue.hint or "") and "may still take effect" in (issue.hint or "")
    assert retire.status == "failed" and "may still take effect" in (retire.error or ""), retire.error
    assert "keyresponse resume" in (retire.hint or "")
    import time

    deadline = time.monotonic() + 15  # both land in this test's sandbox, not a later one's
    while len(made(sandbox, result)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(made(sandbox, result)) == 2
