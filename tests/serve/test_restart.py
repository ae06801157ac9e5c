"""The server SIGKILLed in the middle of an incident: after a restart the incident completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from keyresponse.serve import signatures
from tests.e2e.conftest import World, assert_restored
from tests.serve.conftest import add_serve_section, github_alert


def _serve(world: World, **env: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "keyresponse", "serve", "--port", "0"], cwd=world.dir,
                            env={**world.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the receiver printed nothing"
    return proc, str(json.loads(line)["url"])


def _summaries(world: World) -> list[dict[str, Any]]:
    from keyresponse.journal import Incident

    return [i.summary() for i in Incident.all(world.dir / ".keyresponse")]


def test_killed_mid_incident_then_restarted_completes(world: World) -> None:
    values = add_serve_section(world)
    proc, url = _serve(world, KEYRESPONSE_CRASH_AT="after:issue")  # SIGKILL once the mint is journaled
    try:
        body = json.dumps(github_alert()).encode()
        r = httpx.post(f"{url}/webhooks/github", content=body, timeout=30, headers={
            "content-type": "application/json", "x-github-event": "secret_scanning_alert",
            "x-github-delivery": "3f1e0c1a-0000-4000-8000-000000000001",
            "x-hub-signature-256": signatures.github_signature(values["TEST_GITHUB_WEBHOOK_SECRET"], body)})
        assert r.status_code == 202, r.text
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    [killed] = _summaries(world)
    assert killed["status"] == "interrupted" and killed["steps"]["issue"] == "applied"

    proc, url = _serve(world)
    try:
        deadline = time.monotonic() + 90
        while _summaries(world)[0]["status"] != "succeeded":
            assert proc.poll() is None and time.monotonic() < deadline, _summaries(world)
            time.sleep(0.1)
        # the same delivery again, after the restart: still known
        r = httpx.post(f"{url}/webhooks/github", content=body, timeout=30, headers={
            "content-type": "application/json", "x-github-event": "secret_scanning_alert",
            "x-github-delivery": "3f1e0c1a-0000-4000-8000-000000000001",
            "x-hub-signature-256": signatures.github_signature(values["TEST_GITHUB_WEBHOOK_SECRET"], body)})
        assert r.json()["status"] == "duplicate"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert len(_summaries(world)) == 1
    assert_restored(world)


def test_the_url_it_prints_takes_connections_at_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` prints its URL before the event loop runs: the socket must already be
    listening then (a sender that connects at once was refused under load)."""
    import socket

    from keyresponse.serve.app import JsonLog, Receiver, Server

    add_serve_section(world)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    with (world.dir / "serve.log").open("w") as log:
        server = Server(Receiver(world.config, JsonLog(log)), "127.0.0.1", 0)  # bound, not yet serving
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5):
                pass  # queued by the kernel until the loop accepts it
        finally:
            server.sock.close()
