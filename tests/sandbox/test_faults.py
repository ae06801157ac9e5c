"""Faults on demand: exact 429s, measured latency, hangs, drops, commit-then-fail, headers-then-reset."""

from __future__ import annotations

import email.utils
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from keyresponse.sandbox import parse_fault


@pytest.fixture
def models(sandbox: Any) -> Iterator[httpx.Client]:
    """GET /models with the leaked (live) key, over one keep-alive connection."""
    with httpx.Client(base_url=sandbox.urls["openai"], timeout=5,
                      headers={"Authorization": f"Bearer {sandbox.env['SANDBOX_LEAKED_KEY']}"}) as client:
        yield client


def test_a_429_with_retry_after_is_returned_exactly_as_configured(sandbox: Any, models: httpx.Client) -> None:
    r = httpx.post(f"{sandbox.base_url}/_sandbox/faults",
                   json="openai:GET:/models:status:status=429,retry_after=1,count=2")
    assert r.status_code == 201
    for _ in range(2):
        limited = models.get("/models")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert models.get("/models").status_code == 200  # the count is spent


def test_retry_after_can_be_an_http_date_or_absent(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="openai", path="/models", kind="status", status=429, retry_after="date+30", count=1)
    when = email.utils.parsedate_to_datetime(models.get("/models").headers["Retry-After"]).timestamp()
    assert 25 <= when - time.time() <= 31
    sandbox.add_fault(service="openai", path="/models", kind="status", status=429, count=1)
    bare = models.get("/models")
    assert bare.status_code == 429 and "Retry-After" not in bare.headers


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_use_the_service_error_shape(sandbox: Any, models: httpx.Client, status: int) -> None:
    sandbox.add_fault(service="openai", kind="status", status=status, count=1)
    r = models.get("/models")
    assert r.status_code == status and r.json()["error"]["type"] == "server_error"


def test_latency_of_100ms_is_added_within_20ms(sandbox: Any, models: httpx.Client) -> None:
    def timed() -> float:
        t0 = time.perf_counter()
        assert models.get("/models").status_code == 200
        return time.perf_counter() - t0

    baseline = statistics.median(timed() for _ in range(5))
    sandbox.add_fault(service="openai", method="GET", path="/models", kind="latency", latency_ms=100)
    added = statistics.median(timed() for _ in range(5)) - baseline
    assert 0.080 <= added <= 0.120, f"added {added * 1000:.1f} ms"


def test_latency_overlaps_across_concurrent_requests(sandbox: Any) -> None:
    sandbox.add_fault(service="github", kind="latency", latency_ms=200)
    url = sandbox.urls["github"] + "/repos/acme/chatbot/actions/secrets/public-key"
    headers = {"Authorization": f"Bearer {sandbox.env['GITHUB_TOKEN']}"}
    with httpx.Client(headers=headers, limits=httpx.Limits(max_connections=20)) as client, \
            ThreadPoolExecutor(20) as pool:
        t0 = time.perf_counter()
        statuses = list(pool.map(lambda _: client.get(url).status_code, range(20)))
        elapsed = time.perf_counter() - t0
    assert statuses == [200] * 20
    assert elapsed < 1.0, f"20 requests with 200 ms latency took {elapsed:.2f} s: they did not overlap"


def test_jitter_stays_within_its_bounds(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="openai", path="/models", kind="latency", latency_ms=60, jitter_ms=40)
    for _ in range(5):
        t0 = time.perf_counter()
        models.get("/models")
        assert 0.015 <= time.perf_counter() - t0 <= 0.2


def test_a_hang_times_the_client_out_and_the_server_carries_on(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="openai", path="/models", kind="hang", count=1)
    with pytest.raises(httpx.ReadTimeout):
        models.get("/models", timeout=0.3)
    assert models.get("/models").status_code == 200


def test_a_dropped_connection(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="openai", path="/models", kind="drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        models.get("/models")
    assert models.get("/models").status_code == 200


def test_commit_then_fail_makes_the_change_then_answers_502(sandbox: Any) -> None:
    truth = sandbox.state.truth
    path = f"/organization/projects/{truth['leaked_project_id']}/service_accounts/{truth['leaked_service_account_id']}"
    admin = {"Authorization": f"Bearer {sandbox.env['OPENAI_ADMIN_KEY']}"}
    sandbox.add_fault(service="openai", method="DELETE", path="/organization/projects/*/service_accounts/*",
                      kind="commit_then_fail", count=1)
    failed = httpx.delete(sandbox.urls["openai"] + path, headers=admin)
    assert failed.status_code == 502
    leaked = next(k for k in sandbox.state.openai_keys() if k["id"] == truth["leaked_key_id"])
    assert leaked["live"] is False
    assert httpx.delete(sandbox.urls["openai"] + path, headers=admin).status_code == 404


def test_commit_then_drop(sandbox: Any) -> None:
    url = sandbox.urls["gitlab"] + "/projects/42/variables/OPENAI_API_KEY"
    sandbox.add_fault(service="gitlab", method="PUT", kind="commit_then_drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.put(url, params={"filter[environment_scope]": "*"}, json={"value": "changed-value-1234"},
                  headers={"PRIVATE-TOKEN": sandbox.env["GITLAB_TOKEN"]})
    assert sandbox.state.gitlab_variable("project:42", "OPENAI_API_KEY")["value"] == "changed-value-1234"


def test_faults_match_service_method_and_path(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="github", kind="status", status=503)
    sandbox.add_fault(service="openai", method="POST", kind="status", status=503)
    sandbox.add_fault(service="openai", path="re:/organization/.*", kind="status", status=503)
    assert models.get("/models").status_code == 200


def test_a_fraction_of_calls(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="openai", path="/models", kind="status", status=500, fraction=0.5)
    failures = sum(models.get("/models").status_code == 500 for _ in range(100))
    assert 25 <= failures <= 75


def test_the_control_endpoint_lists_removes_and_clears(sandbox: Any) -> None:
    control = f"{sandbox.base_url}/_sandbox/faults"
    added = httpx.post(control, json=[{"kind": "latency", "latency_ms": 1}, {"kind": "drop", "service": "slack"}])
    ids = [f["id"] for f in added.json()["faults"]]
    assert len(httpx.get(control).json()["faults"]) == 2
    assert httpx.delete(f"{control}/{ids[0]}").status_code == 204
    assert [f["id"] for f in httpx.get(control).json()["faults"]] == ids[1:]
    assert httpx.delete(control).status_code == 204
    assert httpx.get(control).json()["faults"] == []
    bad = httpx.post(control, json={"kind": "explode"})
    assert bad.status_code == 400 and "kind" in bad.json()["error"]


def test_reset_clears_faults(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(kind="status", status=503)
    sandbox.reset()
    assert models.get("/models").status_code == 200


def test_cli_fault_specs() -> None:
    assert parse_fault("openai:GET:/models:latency:latency_ms=100") | {"id": ""} == parse_fault(
        {"service": "openai", "method": "GET", "path": "/models", "kind": "latency", "latency_ms": 100}) | {"id": ""}
    spec = parse_fault("github:*:re:/repos/(?:a|b)/.*:status:status=429,retry_after=Wed, 21 Oct 2015 07:28:00 GMT")
    assert spec["path"] == "re:/repos/(?:a|b)/.*" and spec["retry_after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_fault('{"kind": "drop", "count": 2}')["count"] == 2
    assert parse_fault("*:*:*:commit_then_fail")["status"] == 502
    for bad in ("openai:GET:/models", "openai:GET:/x:latency:latency_ms=fast", "mail:*:*:drop",
                "openai:*:*:status:colour=red"):
        with pytest.raises(ValueError):
            parse_fault(bad)


def _mint_over_a_raw_socket(sandbox: Any, name: str) -> tuple[bytes, BaseException | None]:
    """POST a new service account by hand; what arrived, and how the connection ended."""
    import json
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(sandbox.urls["openai"] + f"/organization/projects/{sandbox.state.truth['leaked_project_id']}"
                   "/service_accounts")
    body = json.dumps({"name": name}).encode()
    head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {sandbox.env['OPENAI_ADMIN_KEY']}\r\nContent-Length: {len(body)}\r\n\r\n")
    received = b""
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as exc:
            return received, exc
    return received, None


def test_headers_then_reset_commits_sends_the_head_then_resets_mid_body(sandbox: Any) -> None:
    sandbox.add_fault(service="openai", method="POST", path="/organization/projects/*/service_accounts",
                      kind="headers_then_reset", count=1)
    received, ended = _mint_over_a_raw_socket(sandbox, "cut-off-mint")
    assert isinstance(ended, ConnectionResetError), ended  # a reset, not a clean close
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].split(" ")[1] in ("200", "201")  # the mint's success status
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert 0 < len(body) < int(headers["content-length"])  # the body began, and was cut
    # the mutation committed: the account exists, with a live key nobody heard of
    [made] = [s for s in sandbox.state.service_accounts.values() if s["name"] == "cut-off-mint"]
    assert any(k["service_account_id"] == made["id"] and k["live"] for k in sandbox.state.openai_keys())
    # the count is spent: the next mint is answered whole
    received, ended = _mint_over_a_raw_socket(sandbox, "whole-mint")
    assert ended is None and received.split(b" ")[1] in (b"200", b"201")


def test_headers_then_reset_is_a_read_error_to_httpx(sandbox: Any, models: httpx.Client) -> None:
    sandbox.add_fault(service="openai", method="GET", path="/models", kind="headers_then_reset", count=1)
    with models.stream("GET", "/models") as response:
        assert response.status_code == 200 and int(response.headers["content-length"]) > 0
        with pytest.raises(httpx.ReadError):
            response.read()
    assert models.get("/models").status_code == 200
