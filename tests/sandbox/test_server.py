"""Running the sandbox: lifecycle, persistence, the written config, the command line."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keyresponse.sandbox import seed, start

ENV_NAMES = {"OPENAI_ADMIN_KEY", "GITHUB_TOKEN", "GITHUB_TOKEN_LIMITED", "GITLAB_TOKEN", "SLACK_BOT_TOKEN",
             "SANDBOX_LEAKED_KEY", "CHATBOT_PROD_OPENAI_KEY"}


def test_urls_and_env(sandbox: Any) -> None:
    port = sandbox.port
    assert sandbox.urls == {
        "openai": f"http://127.0.0.1:{port}/openai/v1",
        "github": f"http://127.0.0.1:{port}/github",
        "gitlab": f"http://127.0.0.1:{port}/gitlab/api/v4",
        "slack": f"http://127.0.0.1:{port}/slack/api/",
    }
    assert set(sandbox.env) == ENV_NAMES
    assert sandbox.env["SANDBOX_LEAKED_KEY"] == sandbox.env["CHATBOT_PROD_OPENAI_KEY"]
    assert httpx.get(f"{sandbox.base_url}/_sandbox/info").json() == sandbox.info()


def fingerprint(state: Any) -> str:
    """The whole state but the sealed boxes (libsodium seals with a random ephemeral key)."""
    data = json.loads(state.to_json())
    for secrets in data["github"]["secrets"].values():
        for secret in secrets.values():
            secret.pop("encrypted_value")
    return json.dumps(data, sort_keys=True)


def test_reset_restores_the_seed(sandbox: Any, sandbox_server: Any) -> None:
    assert sandbox is sandbox_server
    truth = sandbox.state.truth
    before = fingerprint(sandbox.state)
    admin = {"Authorization": f"Bearer {sandbox.env['OPENAI_ADMIN_KEY']}"}
    url = (f"{sandbox.urls['openai']}/organization/projects/{truth['leaked_project_id']}"
           f"/service_accounts/{truth['leaked_service_account_id']}")
    assert httpx.delete(url, headers=admin).status_code == 200
    assert sandbox.state.mutation_count == 1
    assert httpx.post(f"{sandbox.base_url}/_sandbox/reset").json()["reset"] is True
    assert sandbox.state.mutation_count == 0
    assert fingerprint(sandbox.state) == before


def test_only_changes_to_emulated_services_count_as_mutations(sandbox: Any) -> None:
    slack = {"Authorization": f"Bearer {sandbox.env['SLACK_BOT_TOKEN']}"}
    httpx.post(sandbox.urls["slack"] + "auth.test", headers=slack)
    httpx.post(sandbox.urls["slack"] + "conversations.info", headers=slack, data={"channel": "#incidents"})
    httpx.get(sandbox.urls["openai"] + "/models", headers={"Authorization": f"Bearer {sandbox.env['SANDBOX_LEAKED_KEY']}"})
    httpx.post(f"{sandbox.base_url}/_sandbox/faults", json={"kind": "latency", "service": "gitlab"})
    assert sandbox.state.mutation_count == 0
    httpx.post(sandbox.urls["slack"] + "chat.postMessage", headers=slack, json={"channel": "#incidents", "text": "x"})
    assert [(m["service"], m["path"]) for m in sandbox.state.mutations] == [("slack", "/chat.postMessage")]


def test_unknown_routes_answer_in_each_services_shape(sandbox: Any) -> None:
    r = httpx.get(sandbox.urls["openai"] + "/nope")
    assert r.status_code == 404 and r.json()["error"]["message"] == "Invalid URL (GET /openai/v1/nope)"
    assert httpx.get(sandbox.urls["github"] + "/nope").json()["message"] == "Not Found"
    assert httpx.get(sandbox.urls["gitlab"] + "/nope").json() == {"message": "404 Not Found"}
    assert httpx.post(sandbox.urls["slack"] + "nope.nope").json() == {"ok": False, "error": "unknown_method"}
    assert httpx.get(f"{sandbox.base_url}/elsewhere").status_code == 404


def test_same_seed_same_world_whenever_it_starts() -> None:
    a, b = seed.build(42, 1_800_000_000), seed.build(42, 1_800_000_000)
    assert fingerprint(a) == fingerprint(b)
    later = seed.build(42, 1_800_003_600)
    assert later.credentials == a.credentials and later.truth["leaked_key_id"] == a.truth["leaked_key_id"]
    assert later.truth["attack_start"] - a.truth["attack_start"] in (0, 86400)
    other = seed.build(7, 1_800_000_000)
    assert other.credentials["SANDBOX_LEAKED_KEY"] != a.credentials["SANDBOX_LEAKED_KEY"]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with start(seed=5, state_file=str(state_file)) as first:
        truth, env = first.state.truth, first.env
        url = (f"{first.urls['openai']}/organization/projects/{truth['leaked_project_id']}"
               f"/service_accounts/{truth['leaked_service_account_id']}")
        assert httpx.delete(url, headers={"Authorization": f"Bearer {env['OPENAI_ADMIN_KEY']}"}).status_code == 200
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    with start(seed=42, state_file=str(state_file)) as second:  # the file's seed wins
        assert second.env == env and second.state.seed == 5
        r = httpx.get(second.urls["openai"] + "/models", headers={"Authorization": f"Bearer {env['SANDBOX_LEAKED_KEY']}"})
        assert r.status_code == 401


def test_write_config(sandbox: Any, tmp_path: Path) -> None:
    path = sandbox.write_config(tmp_path / "drill")
    inventory = yaml.safe_load(path.read_text())
    assert inventory["providers"]["openai"] == {"kind": "openai", "base_url": sandbox.urls["openai"],
                                               "admin_key_env": "OPENAI_ADMIN_KEY"}
    assert inventory["platforms"]["github"]["base_url"] == sandbox.urls["github"]
    assert inventory["notify"]["slack"]["channel"] == "#incidents"
    leaked = inventory["keys"]["chatbot-prod"]
    truth = sandbox.state.truth
    assert (leaked["project"], leaked["key_id"]) == (truth["leaked_project_id"], truth["leaked_key_id"])
    assert inventory["keys"]["canary-monitor"]["canary"] is True
    value = sandbox.env["SANDBOX_LEAKED_KEY"]
    for target in leaked["targets"]:
        if target["kind"] == "envfile":
            assert f"OPENAI_API_KEY={value}\n" in (path.parent / target["path"]).read_text()
        elif target["kind"] == "github":
            scope = (f"org:{target['org']}" if "org" in target else
                     f"env:{target['repo']}:{target['environment']}" if "environment" in target else
                     f"repo:{target['repo']}")
            assert sandbox.state.github_secret_value(scope, target["secret"]) == value
        else:
            var = sandbox.state.gitlab_variable(f"project:{target['project']}", target["variable"],
                                                target["environment_scope"])
            assert var["value"] == value
    creds = path.parent / "sandbox.env"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    lines = dict(line.split("=", 1) for line in creds.read_text().splitlines())
    assert lines == sandbox.env


def test_importing_the_package_stays_light() -> None:
    code = "import sys, keyresponse.sandbox; print(sorted({'uvicorn', 'starlette', 'nacl'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_the_command_prints_json_first_then_serves_until_stopped(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    command = [sys.executable, "-m", "keyresponse.sandbox", "--json", "--port", "0", "--seed", "9",
               "--state", str(state_file), "--write-config", str(tmp_path / "cfg"),
               "--fault", "openai:GET:/models:status:status=429,retry_after=2,count=1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            info = json.loads(proc.stdout.readline())
            assert set(info) >= {"openai", "github", "gitlab", "slack", "env", "config"}
            assert set(info["env"]) == ENV_NAMES
            assert Path(info["config"]).is_file()
            headers = {"Authorization": f"Bearer {info['env']['SANDBOX_LEAKED_KEY']}"}
            limited = httpx.get(info["openai"] + "/models", headers=headers)
            assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
            assert httpx.get(info["openai"] + "/models", headers=headers).status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert json.loads(state_file.read_text())["seed"] == 9


@pytest.mark.slow
def test_bad_fault_specs_are_refused_on_the_command_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "keyresponse.sandbox", "--fault", "openai:GET:/models"],
                          capture_output=True, text=True, timeout=30, env=os.environ | {"PYTHONWARNINGS": "error"})
    assert proc.returncode == 2 and "SERVICE:METHOD:PATH:KIND" in proc.stderr


def test_stop_is_prompt_even_with_a_hanging_request(tmp_path: Path) -> None:
    sb = start(faults=[{"kind": "hang"}])
    client = httpx.Client(timeout=30)
    import threading

    errors: list[BaseException] = []

    def hang() -> None:
        try:
            client.get(sb.urls["openai"] + "/models")
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=hang)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    sb.stop()
    assert time.monotonic() - t0 < 3
    t.join(timeout=5)
    client.close()
    assert errors and not sb.running
