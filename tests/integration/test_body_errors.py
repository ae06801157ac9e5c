"""A mint whose answer is cut off after its 201 headers (the account was made), against the
sandbox over real sockets: key.issue must find what the mint left, never leave a live
service account that nobody holds, and never let a raw HTTP library error escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.conftest import run_steps

MINT = "/organization/projects/*/service_accounts"


def incident_accounts(sandbox: Any, incident_id: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The service accounts this incident made, and the ids of those holding a live key."""
    made = [s for s in sandbox.state.service_accounts.values() if s["name"].startswith(f"keyresponse-{incident_id}-")]
    live = {k["service_account_id"] for k in sandbox.state.openai_keys() if k["live"]}
    return made, {s["id"] for s in made if s["id"] in live}


def test_a_mint_cut_off_after_its_headers_is_cleaned_up_and_minted_again(
        sandbox_config: Path, quick_retries: None, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="POST", path=MINT, kind="headers_then_reset", count=1)
    result = run_steps(sandbox_config, "- {id: issue, uses: key.issue}\n")
    [issue] = result.steps
    assert result.ok, (issue.error, issue.hint)
    made, live = incident_accounts(sandbox, result.incident.id)
    assert len(made) == 2  # the cut-off one, and the one minted after it was revoked
    assert live == {issue.outputs["service_account_id"]}  # the only live one is the one the run holds
    mints = [m for m in sandbox.state.mutations if m["method"] == "POST" and m["path"].endswith("/service_accounts")]
    assert len(mints) == 2  # the cut-off POST was never sent again blindly


def test_every_mint_cut_off_fails_the_step_with_nothing_left_live(
        sandbox_config: Path, quick_retries: None, sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="POST", path=MINT, kind="headers_then_reset")
    result = run_steps(sandbox_config, "- {id: issue, uses: key.issue}\n")
    [issue] = result.steps
    assert issue.status == "failed"
    assert "could not mint the replacement" in (issue.error or ""), issue.error  # the project's error, not httpx's
    assert "unexpected" not in (issue.error or "")
    made, live = incident_accounts(sandbox, result.incident.id)
    assert made and not live  # each cut-off mint was found and revoked


def test_a_read_cut_off_mid_body_over_a_real_socket_is_retried(sandbox: Any) -> None:
    from keyresponse import http

    sandbox.add_fault(service="openai", method="GET", path="/models", kind="headers_then_reset", count=1)
    with http.build_client("openai", sandbox.urls["openai"],
                           {"Authorization": f"Bearer {sandbox.env['SANDBOX_LEAKED_KEY']}"},
                           policy=http.RetryPolicy(attempts=3, base=0.01, cap=0.02)) as client:
        response = client.get("models")
    assert response.status_code == 200 and response.json()["data"]
    assert sandbox.state.requests[("openai", "GET", "/models")] == 2  # the cut one, then the whole one
