"""The shared HTTP client: retries, Retry-After, read-only plan mode, what counts as a secret."""

from __future__ import annotations

import httpx
import pytest

from keyresponse import http
from keyresponse.secret import REDACTOR


def test_only_credential_headers_become_secrets() -> None:
    token = "tok-" + "Q" * 30
    client = http.build_client("github", "https://example.invalid", {
        "Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28",
        "Accept": "application/vnd.github+json"})
    client.close()
    assert REDACTOR.redact(f"created 2022-11-28 as application/vnd.github+json with {token}") == \
        f"created 2022-11-28 as application/vnd.github+json with {REDACTOR.redact(token)}"
    assert token not in REDACTOR.redact(token)


def test_plan_mode_client_refuses_writes() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    client = http.build_client("openai", "https://example.invalid", read_only=True, transport=transport)
    assert client.get("/models").status_code == 200
    with pytest.raises(http.ReadOnlyViolation):
        client.delete("/organization/projects/p/api_keys/k")
    client.close()


def test_retry_after_is_honoured_then_succeeds() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "1"}) if len(calls) == 1 else httpx.Response(200)

    slept: list[float] = []
    transport = http.RetryTransport(httpx.MockTransport(handler), "openai", http.RetryPolicy(), False,
                                    sleep=slept.append)
    with httpx.Client(transport=transport, base_url="https://example.invalid") as client:
        assert client.get("/models").status_code == 200
    assert slept == [1.0] and len(calls) == 2


def test_refused_credential_names_its_env_var() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(
        401, json={"error": {"message": "Incorrect API key", "type": "invalid_request_error", "param": None,
                             "code": "invalid_api_key"}}))
    client = http.build_client("openai", "https://example.invalid", transport=transport,
                               credential_env="OPENAI_ADMIN_KEY")
    err = http.error_for(client.get("/organization/projects"), "openai")
    assert "401 invalid_api_key" in err.message and "$OPENAI_ADMIN_KEY" in (err.hint or "")
    client.close()
