"""key.issue and key.revoke when the provider's answer goes wrong after the change was
made: the sandbox commits, then the answer (or the next call) fails. Assertions read the
sandbox's state: no live key nobody holds, the minted secret never lost."""

from __future__ import annotations

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
    assert [s for s in accounts if s["id"] != issue.outputs["service_account_id"]][0]["deleted_at"] is not None


def test_a_revoke_whose_answer_is_cut_and_retried_is_reported_as_revoked_now(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="DELETE", path="/organization/projects/*/api_keys/*",
                      kind="headers_then_reset", count=1)
    result = run(world, "- {id: revoke, uses: key.revoke}\n")
    revoke = step(result, "revoke")
    assert revoke.status == "applied", revoke.error
    assert revoke.outputs["already_gone"] is False and revoke.outputs["revoked_at"]
    leaked = sandbox.state.truth["leaked_key_id"]
    assert next(k for k in sandbox.state.openai_keys() if k["id"] == leaked)["live"] is False
