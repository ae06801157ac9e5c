"""A second provider, added without touching keyresponse's source: fake_provider.py
(the module) registered through KEYRESPONSE_PROVIDER_MODULES, and `FakeIssuer` (its
emulator, a loopback HTTP server). `leaked-key` and `rotate` run end to end through
the CLI in a subprocess."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World


def _value() -> str:
    return "fk-live-" + secrets.token_hex(16)


class FakeIssuer(ThreadingHTTPServer):
    """The fake issuer's state: keys by id (value, project, name, live); one admin token."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.admin = _value()
        self.keys: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.add("p1", "app")

    def add(self, project: str, name: str) -> dict[str, Any]:
        with self.lock:
            value, key_id = _value(), f"fk_{len(self.keys) + 1}"
            key: dict[str, Any] = {"id": key_id, "project": project, "name": name, "live": True,
                   "value": value, "redacted": value[:8] + "..." + value[-4:]}
            self.keys[key_id] = key
            return key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: FakeIssuer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _token(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _public(self, key: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in key.items() if k != "value"}

    def do_GET(self) -> None:
        keys = self.server.keys
        if self.path == "/whoami":
            live = any(k["value"] == self._token() and k["live"] for k in keys.values())
            return self._send(200 if live else 401, {"ok": live})
        if self._token() != self.server.admin:
            return self._send(401, {"error": "bad admin token"})
        if self.path == "/keys":
            return self._send(200, {"keys": [self._public(k) for k in keys.values()]})
        key = keys.get(self.path.removeprefix("/keys/"))
        return self._send(200, self._public(key)) if key else self._send(404, {"error": "no such key"})

    def do_POST(self) -> None:
        if self._token() != self.server.admin or self.path != "/keys":
            return self._send(401, {"error": "bad admin token"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._send(201, self.server.add(body["project"], body["name"]))

    def do_DELETE(self) -> None:
        key = self.server.keys.get(self.path.removeprefix("/keys/"))
        if self._token() != self.server.admin or key is None or not key["live"]:
            return self._send(404, {"error": "no such key"})
        key["live"] = False
        self._send(200, {"deleted": True})


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    server = FakeIssuer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_world(tmp_path: Path, world: World, issuer: FakeIssuer) -> World:
    """An inventory with one key at the fake issuer, deployed to one env file."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text(f"API_KEY={issuer.keys['fk_1']['value']}\n")
    world.config.write_text(f"""version: 1
providers:
  fake: {{kind: fake, base_url: "{issuer.url}", admin_key_env: FAKE_ADMIN_KEY}}
keys:
  svc:
    provider: fake
    project: p1
    key_id: fk_1
    secret_env: SVC_KEY
    targets:
      - {{kind: envfile, path: app/.env, variables: [API_KEY]}}
""")
    world.env.update({"KEYRESPONSE_PROVIDER_MODULES": "tests.e2e.fake_provider", "FAKE_ADMIN_KEY": issuer.admin,
                      "SVC_KEY": issuer.keys["fk_1"]["value"]})
    return world


def _restored(world: World, issuer: FakeIssuer) -> str:
    """The old key dead, one live replacement, held by the env file; its value."""
    assert not issuer.keys["fk_1"]["live"]
    [new] = [k for k in issuer.keys.values() if k["live"]]
    assert (world.dir / "app" / ".env").read_text() == f"API_KEY={new['value']}\n"
    return str(new["value"])


@pytest.mark.parametrize("playbook", ["leaked-key", "rotate"])
def test_a_provider_registered_from_outside_runs_whole_incidents(fake_world: World, issuer: FakeIssuer,
                                                                  playbook: str) -> None:
    old = issuer.keys["fk_1"]["value"]
    out = fake_world.kr("run", playbook, "--key", "svc", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["ok"], result
    new = _restored(fake_world, issuer)
    written = fake_world.everything_written(out.stdout, out.stderr)
    assert old not in written and new not in written


def test_its_key_shape_is_refused_as_a_literal_and_its_settings_are_in_the_schema(fake_world: World,
                                                                                   issuer: FakeIssuer) -> None:
    text = fake_world.config.read_text().replace("admin_key_env: FAKE_ADMIN_KEY", f"admin_key_env: {_value()}")
    fake_world.config.write_text(text)
    out = fake_world.kr("validate")
    assert out.returncode != 0 and "literal Fake key" in out.stderr + out.stdout
    schema = json.loads(fake_world.kr("schema", "inventory").stdout)
    kinds = {ref["$ref"].rsplit("/", 1)[-1] for ref in schema["properties"]["providers"]["additionalProperties"]["oneOf"]}
    assert {"OpenAISettings", "Settings"} <= kinds
