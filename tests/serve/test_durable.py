"""What the 202 promises, from the outside: the server SIGKILLed right after it (or right
before it) and restarted. A delivery answered 202 is an incident on disk, listed by
`keyresponse incidents`, that a restart completes; a value-only alert (its value is never
written down) is answered only once the key's id is durable, and one whose value died
with the process before that is reported, not silently dropped, and accepted when sent again."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from keyresponse.serve import signatures
from tests.e2e.conftest import World, leaked
from tests.serve.conftest import add_serve_section, github_alert, gitleaks_alert
from tests.serve.test_restart import _serve, _summaries


def _stop(proc: subprocess.Popen[str], *, kill: bool = False) -> int:
    if kill and proc.poll() is None:
        proc.kill()
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _until(what: str, done: Callable[[], bool], proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 90
    while not done():
        assert proc is None or proc.poll() is None, f"the receiver died waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _status(world: World, incident: str) -> str | None:
    return next((s["status"] for s in _summaries(world) if s["id"] == incident), None)


def test_a_202_is_an_incident_on_disk_that_a_restart_completes(world: World) -> None:
    values = add_serve_section(world)
    state = world.sandbox.state
    stray = next(k for k in state.openai_keys() if k["name"] == "bob-dev")  # a key no inventory entry names
    stray_value = state.openai_key_value(stray["id"])

    def github(url: str) -> httpx.Response:
        body = json.dumps(github_alert()).encode()
        return httpx.post(f"{url}/webhooks/github", content=body, timeout=60, headers={
            "content-type": "application/json", "x-github-event": "secret_scanning_alert",
            "x-github-delivery": "5b0c1a2e-0000-4000-8000-000000000014",
            "x-hub-signature-256": signatures.github_signature(values["TEST_GITHUB_WEBHOOK_SECRET"], body)})

    def value_only(url: str) -> httpx.Response:
        return httpx.post(f"{url}/webhooks/generic", content=json.dumps(gitleaks_alert(stray_value)).encode(),
                          timeout=60, headers={"content-type": "application/json", "idempotency-key": "ci-run-14",
                                               "authorization": "Bearer " + values["TEST_GENERIC_TOKEN"]})

    # 1. SIGKILLed as soon as the 202 is out, before a worker touches it
    proc, url = _serve(world, KEYRESPONSE_CRASH_AT="serve:answered")
    try:
        r = github(url)
    finally:
        code = _stop(proc, kill=True)
    assert r.status_code == 202, r.text
    assert code == -signal.SIGKILL
    incident = r.json()["incident"]
    listed = {i["id"]: i for i in world.incidents()}
    assert incident in listed, listed
    assert (listed[incident]["status"], listed[incident]["key"], listed[incident]["steps"]) == \
        ("queued", "chatbot-prod", {})
    assert leaked(world)["live"]

    # 2. restarted: the queued incident runs; then a value-only alert, and a SIGKILL before it is durable
    proc, url = _serve(world, KEYRESPONSE_CRASH_AT="serve:accepted")
    try:
        _until("the queued incident to complete", lambda: _status(world, incident) == "succeeded", proc)
        assert not leaked(world)["live"]
        try:
            r = value_only(url)
            answered: int | None = r.status_code
        except httpx.TransportError:
            answered = None
    finally:
        code = _stop(proc)
    assert (answered, code) == (None, -signal.SIGKILL)  # never answered: the sender knows to send it again
    [lost] = [s for s in _summaries(world) if s["id"] != incident]
    assert stray_value not in world.everything_written()

    # 3. restarted: the lost value is reported, and the same delivery sent again is accepted
    proc, url = _serve(world, KEYRESPONSE_CRASH_AT="serve:answered")
    try:
        _until("the lost alert to be reported", lambda: _status(world, lost["id"]) == "lost", proc)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert 'keyresponse_incidents_total{outcome="lost"} 1' in metrics, metrics
        r = value_only(url)
    finally:
        code = _stop(proc, kill=True)
    assert (r.status_code, r.json()["status"]) == (202, "accepted"), r.text
    assert code == -signal.SIGKILL
    again = r.json()["incident"]
    records = [json.loads(line) for line in (world.dir / ".keyresponse/incidents" / again / "journal.jsonl")
               .read_text().splitlines()]
    found = [x for x in records if x["event"] == "step.finished" and x["step"] == "find"]
    assert [(x["status"], x["outputs"]["key_id"]) for x in found] == [("applied", stray["id"])]
    assert next(k for k in state.openai_keys() if k["id"] == stray["id"])["live"]

    # 4. restarted once more: it resumes by key id and revokes the stray key
    proc, url = _serve(world)
    try:
        _until("the value-only incident to complete", lambda: _status(world, again) == "succeeded", proc)
        proc.send_signal(signal.SIGTERM)
    finally:
        code = _stop(proc)
    assert code == 0
    assert not next(k for k in state.openai_keys() if k["id"] == stray["id"])["live"]
    deliveries: list[dict[str, Any]] = [json.loads(line) for line in
                                        (world.dir / ".keyresponse/serve/deliveries.jsonl").read_text().splitlines()]
    ended = [(d["delivery"], d["status"]) for d in deliveries if d["event"] == "finished"]
    assert sorted(ended) == sorted([("github:5b0c1a2e-0000-4000-8000-000000000014", "succeeded"),
                                    ("generic:ci-run-14", "lost"), ("generic:ci-run-14", "succeeded")])
    assert stray_value not in world.everything_written()
