"""OpenAI behaviour an incident depends on: revocation, probing, minting, usage, audit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

HOUR, DAY = 3600, 86400


@pytest.fixture
def admin(sandbox: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.urls["openai"], timeout=10,
                      headers={"Authorization": f"Bearer {sandbox.env['OPENAI_ADMIN_KEY']}"}) as client:
        yield client


def probe(sandbox: Any, key: str) -> httpx.Response:
    return httpx.get(sandbox.urls["openai"] + "/models", headers={"Authorization": f"Bearer {key}"})


def test_a_service_account_key_is_deleted_alone(sandbox: Any, admin: httpx.Client) -> None:
    """The current API reference: deleting a service account's key leaves the account and its other keys."""
    search = next(p for p in sandbox.state.projects.values() if p["name"] == "Search")
    keys = {k["name"]: k for k in sandbox.state.openai_keys() if k["project_id"] == search["id"]}
    indexer, rerank = keys["search-indexer"], keys["search-rerank"]
    assert indexer["owner_id"] == rerank["owner_id"]
    project = f"/organization/projects/{search['id']}"
    r = admin.delete(f"{project}/api_keys/{indexer['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    state = {k["id"]: k for k in sandbox.state.openai_keys()}
    assert not state[indexer["id"]]["live"] and state[rerank["id"]]["live"]
    assert admin.get(f"{project}/service_accounts/{indexer['owner_id']}").status_code == 200
    assert probe(sandbox, sandbox.state.openai_key_value(indexer["id"])).status_code == 401


def test_where_the_api_refuses_a_service_account_key_only_the_account_revokes_it(
        sandbox: Any, admin: httpx.Client) -> None:
    from keyresponse.sandbox import seed

    seed.apply_option(sandbox.state, "refuse-service-account-key-delete")
    truth = sandbox.state.truth
    leaked = sandbox.env["SANDBOX_LEAKED_KEY"]
    project = f"/organization/projects/{truth['leaked_project_id']}"
    assert probe(sandbox, leaked).status_code == 200
    assert admin.delete(f"{project}/api_keys/{truth['leaked_key_id']}").status_code == 400
    assert probe(sandbox, leaked).status_code == 200  # still alive after the refused delete
    r = admin.delete(f"{project}/service_accounts/{truth['leaked_service_account_id']}")
    assert r.status_code == 200
    dead = probe(sandbox, leaked)
    assert dead.status_code == 401 and dead.json()["error"]["code"] == "invalid_api_key"
    assert leaked not in dead.text  # the real API masks the key it echoes
    assert truth["leaked_key_id"] not in {k["id"] for k in admin.get(f"{project}/api_keys").json()["data"]}
    events = admin.get("/organization/audit_logs", params={"resource_ids[]": [truth["leaked_key_id"]],
                                                           "event_types[]": ["api_key.deleted"]}).json()["data"]
    [deleted] = events
    assert deleted["actor"]["type"] == "api_key" and deleted["project"]["id"] == truth["leaked_project_id"]
    types = [e["type"] for e in admin.get("/organization/audit_logs", params={"limit": 2}).json()["data"]]
    assert types == ["service_account.deleted", "api_key.deleted"]


def test_a_minted_key_is_live_and_only_its_creation_shows_the_value(sandbox: Any, admin: httpx.Client) -> None:
    project = f"/organization/projects/{sandbox.state.truth['leaked_project_id']}"
    made = admin.post(f"{project}/service_accounts", json={"name": "chatbot-prod"}).json()
    value = made["api_key"]["value"]
    assert value.startswith("sk-proj-") and len(value) >= 48
    assert probe(sandbox, value).status_code == 200
    listed = admin.get(f"{project}/api_keys", params={"limit": 100}).text
    assert value not in listed and value[-4:] in listed
    state_view = httpx.get(f"{sandbox.base_url}/_sandbox/state").text
    assert value not in state_view and sandbox.env["SANDBOX_LEAKED_KEY"] not in state_view
    assert sandbox.state.openai_key_value(made["api_key"]["id"]) == value
    created = admin.get("/organization/audit_logs", params={"event_types[]": ["api_key.created"], "limit": 1})
    assert created.json()["data"][0]["api_key.created"]["id"] == made["api_key"]["id"]


def test_a_deleted_user_key_is_dead(sandbox: Any, admin: httpx.Client) -> None:
    user_key = next(k for k in sandbox.state.openai_keys() if k["name"] == "bob-dev")
    value = sandbox.state.openai_key_value(user_key["id"])
    r = admin.delete(f"/organization/projects/{user_key['project_id']}/api_keys/{user_key['id']}")
    assert r.status_code == 200
    assert probe(sandbox, value).json()["error"]["code"] == "invalid_api_key"


def test_a_scoped_key_is_denied_but_not_dead(sandbox: Any) -> None:
    scoped = next(k for k in sandbox.state.openai_keys() if k["scopes"])
    r = probe(sandbox, sandbox.state.openai_key_value(scoped["id"]))
    assert r.status_code == 401
    assert r.json()["error"]["code"] is None and "Missing scopes" in r.json()["error"]["message"]
    assert scoped["live"] is True


def test_the_wrong_admin_key_gets_the_real_error_body(sandbox: Any) -> None:
    r = httpx.get(sandbox.urls["openai"] + "/organization/projects", headers={"Authorization": "Bearer nope-nope"})
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.headers["x-request-id"].startswith("req_")


def _usage(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every bucket, following next_page."""
    buckets, page = [], None
    while True:
        body = admin.get("/organization/usage/completions", params=params | ({"page": page} if page else {})).json()
        buckets += body["data"]
        if not body["has_more"]:
            return buckets
        page = body["next_page"]


def test_usage_shows_the_abuse_spike(sandbox: Any, admin: httpx.Client) -> None:
    truth = sandbox.state.truth
    start = int(time.time()) - 30 * DAY
    hours = _usage(admin, start_time=start, bucket_width="1h", limit=168, group_by=["model"],
                   api_key_ids=[truth["leaked_key_id"]])
    assert len(hours) >= 30 * 24
    tokens: dict[bool, list[int]] = {True: [], False: []}  # during the attack? -> hourly totals
    for bucket in hours:
        results = bucket["results"]
        during = bucket["start_time"] >= truth["attack_start"]
        models = {r["model"] for r in results}
        assert bool(models & set(truth["attack_models"])) == (during and bool(results))
        tokens[during].append(sum(r["input_tokens"] + r["output_tokens"] for r in results))
    baseline = sum(tokens[False]) / len(tokens[False])
    attack = sum(tokens[True]) / len(tokens[True])
    assert 12 <= attack / baseline <= 30
    assert time.gmtime(truth["attack_start"]).tm_hour < 8  # an off-hour, UTC
    assert 40 * HOUR <= time.time() - truth["attack_start"] <= 72 * HOUR


def test_usage_pages_and_limits(sandbox: Any, admin: httpx.Client) -> None:
    start = int(time.time()) - 30 * DAY
    first = admin.get("/organization/usage/completions", params={"start_time": start}).json()
    assert len(first["data"]) == 7 and first["has_more"] and first["next_page"]  # 1d: default 7
    daily = _usage(admin, start_time=start)
    assert len(daily) == 31 and daily[0]["start_time"] % DAY == 0
    assert daily == _usage(admin, start_time=start, limit=31)
    hourly = admin.get("/organization/usage/completions", params={"start_time": start, "bucket_width": "1h"})
    assert len(hourly.json()["data"]) == 24
    minutes = admin.get("/organization/usage/completions", params={"start_time": start, "bucket_width": "1m"})
    assert len(minutes.json()["data"]) == 60
    for width, most in (("1d", 31), ("1h", 168), ("1m", 1440)):
        params: dict[str, str | int] = {"start_time": start, "bucket_width": width}
        assert admin.get("/organization/usage/completions", params=params | {"limit": most}).status_code == 200
        too_many = admin.get("/organization/usage/completions", params=params | {"limit": most + 1})
        assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"


def test_usage_filters_and_groups(sandbox: Any, admin: httpx.Client) -> None:
    start = int(time.time()) - 7 * DAY
    keys = {k["name"]: k for k in sandbox.state.openai_keys()}
    grouped = _usage(admin, start_time=start, group_by=["api_key_id", "project_id"],
                     project_ids=[keys["chatbot-prod"]["project_id"]])
    seen = {(r["api_key_id"], r["project_id"]) for b in grouped for r in b["results"]}
    assert all(p == keys["chatbot-prod"]["project_id"] for _, p in seen)
    assert keys["chatbot-prod"]["id"] in {k for k, _ in seen} and keys["search-indexer"]["id"] not in {k for k, _ in seen}
    embeddings = admin.get("/organization/usage/embeddings",
                           params={"start_time": start, "group_by": "api_key_id", "limit": 7}).json()
    assert {r["api_key_id"] for b in embeddings["data"] for r in b["results"]} == {keys["search-indexer"]["id"]}


def test_costs_jump_with_the_attack(sandbox: Any, admin: httpx.Client) -> None:
    truth = sandbox.state.truth
    start = int(time.time()) - 10 * DAY
    days = admin.get("/organization/costs", params={"start_time": start, "limit": 11,
                                                    "api_key_ids": truth["leaked_key_id"]}).json()["data"]
    spend = [sum(r["amount"]["value"] for r in d["results"]) for d in days]
    before = [s for d, s in zip(days, spend, strict=True) if d["end_time"] <= truth["attack_start"]]
    assert max(spend) > 20 * max(before)
