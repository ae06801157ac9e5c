"""The receiver in a thread on a loopback port, against the session's sandbox."""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyresponse.serve import signatures
from tests.conftest import REPO
from tests.e2e.conftest import World

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"

SERVE_SECTION = """
serve:
  github: {secret_env: TEST_GITHUB_WEBHOOK_SECRET}
  gitguardian: {secret_env: TEST_GITGUARDIAN_TOKEN, max_age_seconds: 60}
  generic: {secret_env: TEST_GENERIC_TOKEN}
  slack_signing_secret_env: TEST_SLACK_SIGNING_SECRET
  workers: 4
"""


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def github_alert(repo: str = "acme/chatbot", action: str = "created", number: int = 7,
                 secret_type: str = "openai_api_key") -> dict[str, Any]:
    data = copy.deepcopy(fixture("github-webhook-secret_scanning_alert-reopened.json"))
    data["action"] = action
    data["alert"].update(number=number, secret_type=secret_type, created_at="2026-12-01T10:00:00Z")
    data["repository"]["full_name"] = repo
    return dict(data)


def gitguardian_alert(repo: str = "acme/chatbot", detector: str = "openai_apikey") -> dict[str, Any]:
    data = copy.deepcopy(fixture("gitguardian-webhook-new_occurrence.json"))
    data["incident"]["detector"]["name"] = detector
    data["occurrence"]["source"]["full_name"] = repo
    return dict(data)


def gitleaks_alert(value: str, rule: str = "openai-api-key") -> list[dict[str, Any]]:
    finding = copy.deepcopy(fixture("gitleaks-report.json")[0])
    finding.update(RuleID=rule, Secret=value, Match=f"OPENAI_API_KEY={value}")
    return [finding]


@dataclass
class Hooks:
    world: World
    server: Any
    secrets: dict[str, str] = field(repr=False)
    client: httpx.Client = field(repr=False)

    @property
    def receiver(self) -> Any:
        return self.server.receiver

    def post(self, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.post(f"{self.server.url}/webhooks/{source}", content=body,
                                headers={"content-type": "application/json", **headers})

    def github(self, payload: Any, *, event: str = "secret_scanning_alert", delivery: str | None = None,
               secret: str | None = None, body: bytes | None = None) -> httpx.Response:
        raw = body if body is not None else json.dumps(payload).encode()
        sig = signatures.github_signature(secret or self.secrets["TEST_GITHUB_WEBHOOK_SECRET"], raw)
        return self.post("github", raw, {"x-github-event": event, "x-hub-signature-256": sig,
                                         "x-github-delivery": delivery or secrets.token_hex(8)})

    def gitguardian(self, payload: Any, *, timestamp: float | None = None) -> httpx.Response:
        raw = json.dumps(payload).encode()
        ts = str(int(time.time() if timestamp is None else timestamp))
        sig = signatures.gitguardian_signature(self.secrets["TEST_GITGUARDIAN_TOKEN"], ts, raw)
        return self.post("gitguardian", raw, {"gitguardian-signature": sig, "timestamp": ts})

    def generic(self, payload: Any, *, delivery: str | None = None) -> httpx.Response:
        headers = {"authorization": "Bearer " + self.secrets["TEST_GENERIC_TOKEN"]}
        if delivery:
            headers["idempotency-key"] = delivery
        return self.post("generic", json.dumps(payload).encode(), headers)

    def settle(self) -> None:
        assert self.receiver.queue.wait_idle(90), "the receiver's workers did not finish"

    def serve_incidents(self) -> list[dict[str, Any]]:
        from keyresponse.journal import Incident

        return [i.summary() for i in Incident.all(self.world.dir / ".keyresponse")]

    def deliveries(self) -> list[dict[str, Any]]:
        return list(self.receiver.queue.journal.records())


def add_serve_section(world: World, extra: str = "") -> dict[str, str]:
    values = {name: secrets.token_hex(16) for name in
              ("TEST_GITHUB_WEBHOOK_SECRET", "TEST_GITGUARDIAN_TOKEN", "TEST_GENERIC_TOKEN", "TEST_SLACK_SIGNING_SECRET")}
    with world.config.open("a") as fh:
        fh.write(SERVE_SECTION + extra)
    world.env.update(values)
    return values


@pytest.fixture
def world(sandbox: Any, tmp_path: Path) -> World:
    """As tests/e2e's: a freshly seeded sandbox's inventory in tmp_path, and its env."""
    import os

    sandbox.write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update(sandbox.env)
    env.update({"NO_COLOR": "1", "PYTHONPATH": str(REPO)})
    return World(tmp_path, sandbox, env, {k["id"] for k in sandbox.state.openai_keys()})


@pytest.fixture
def serve_extra() -> str:
    """More of the `serve:` section (indented two spaces), for a module to override."""
    return ""


@pytest.fixture
def hooks(world: World, monkeypatch: pytest.MonkeyPatch, serve_extra: str) -> Iterator[Hooks]:
    from keyresponse.serve.app import JsonLog, Receiver, Server

    values = add_serve_section(world, serve_extra)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    log_path = world.dir / "serve.log"
    with log_path.open("w") as log_stream:
        server = Server(Receiver(world.config, JsonLog(log_stream)), "127.0.0.1", 0).start()
        with httpx.Client(timeout=30) as client:
            try:
                yield Hooks(world, server, values, client)
            finally:
                server.stop()
