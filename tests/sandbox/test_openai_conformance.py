"""Every OpenAI operation in the description, called over HTTP, answers per its schema.

Each scenario also provokes the error answers the real API gives for that route;
CheckedClient validates those too (documented ones by openapi-core, the rest
against components/schemas/ErrorResponse).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.sandbox.spec_client import CheckedClient

Scenario = Callable[[CheckedClient, Any], None]
SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {}  # name -> (scenario, operations it covers)
PROJECTS = "/organization/projects"


def scenario(*operations: str, name: str | None = None) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name or fn.__name__.strip("_")] = (fn, operations)
        return fn

    return register


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def key_named(sb: Any, name: str) -> dict[str, Any]:
    return next(k for k in sb.state.openai_keys() if k["name"] == name)


@scenario("GET /models")
def _models(oa: CheckedClient, sb: Any) -> None:
    r = oa.get("/models", headers=bearer(sb.env["SANDBOX_LEAKED_KEY"]))
    assert r.status_code == 200 and {m["id"] for m in r.json()["data"]} >= {"gpt-4o-mini-2024-07-18"}
    r = oa.get("/models", headers=bearer("not-a-real-key-at-all"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    scoped = sb.state.openai_key_value(key_named(sb, "reporting-readonly")["id"])
    r = oa.get("/models", headers=bearer(scoped))
    assert r.status_code == 401 and r.json()["error"]["code"] is None
    assert "Missing scopes: api.model.read" in r.json()["error"]["message"]
    assert oa.get("/models", headers={"Authorization": ""}).status_code == 401


@scenario("GET /organization/admin_api_keys", "POST /organization/admin_api_keys",
          "GET /organization/admin_api_keys/{key_id}", "DELETE /organization/admin_api_keys/{key_id}")
def _admin_keys(oa: CheckedClient, sb: Any) -> None:
    listed = oa.get("/organization/admin_api_keys", params={"limit": 1})
    assert listed.status_code == 200 and listed.json()["has_more"] is True
    created = oa.post("/organization/admin_api_keys", json={"name": "ci", "expires_in_seconds": 3600})
    assert created.status_code == 200 and created.json()["value"].startswith("sk-admin-")
    key_id = created.json()["id"]
    assert oa.get(f"/organization/admin_api_keys/{key_id}").json()["name"] == "ci"
    assert oa.delete(f"/organization/admin_api_keys/{key_id}").json()["deleted"] is True
    assert oa.get(f"/organization/admin_api_keys/{key_id}").status_code == 404
    assert oa.delete(f"/organization/admin_api_keys/{key_id}").status_code == 404
    assert oa.post("/organization/admin_api_keys", json={}).status_code == 400
    assert oa.get("/organization/admin_api_keys", headers=bearer("wrong")).status_code == 401


@scenario("GET /organization/audit_logs")
def _audit(oa: CheckedClient, sb: Any) -> None:
    since = int(time.time()) - 30 * 86400
    r = oa.get("/organization/audit_logs", params={"effective_at[gte]": since, "limit": 5})
    assert r.status_code == 200 and len(r.json()["data"]) == 5 and r.json()["has_more"]
    r = oa.get("/organization/audit_logs", params={"event_types[]": ["api_key.created"], "limit": 100})
    assert {e["type"] for e in r.json()["data"]} == {"api_key.created"}
    assert oa.get("/organization/audit_logs", params={"effective_at[gte]": "soon"}).status_code == 400


@scenario("GET /organization/costs")
def _costs(oa: CheckedClient, sb: Any) -> None:
    start = int(time.time()) - 7 * 86400
    r = oa.get("/organization/costs", params={"start_time": start, "group_by": ["line_item", "project_id"]})
    assert r.status_code == 200
    items = {res["line_item"] for b in r.json()["data"] for res in b["results"]}
    assert "o3-2025-04-16, output" in items
    assert oa.get("/organization/costs", params={"start_time": start, "bucket_width": "1h"}).status_code == 400


@scenario("GET /organization/projects", "POST /organization/projects", "GET /organization/projects/{project_id}",
          "POST /organization/projects/{project_id}")
def _projects(oa: CheckedClient, sb: Any) -> None:
    first = oa.get(PROJECTS, params={"limit": 2}).json()
    assert first["has_more"] and len(first["data"]) == 2
    rest = oa.get(PROJECTS, params={"after": first["last_id"], "limit": 100}).json()
    archived = oa.get(PROJECTS, params={"include_archived": "true", "limit": 100}).json()
    assert len(archived["data"]) == len(first["data"]) + len(rest["data"]) + 1
    made = oa.post(PROJECTS, json={"name": "Incident sandbox"})
    assert made.status_code == 200 and made.json()["status"] == "active"
    pid = made.json()["id"]
    assert oa.post(f"{PROJECTS}/{pid}", json={"name": "Renamed"}).json()["name"] == "Renamed"
    assert oa.get(f"{PROJECTS}/{pid}").json()["name"] == "Renamed"
    assert oa.get(f"{PROJECTS}/proj_missing").status_code == 404
    assert oa.post(PROJECTS, json={}).status_code == 400
    default = first["data"][0]
    assert default["name"] == "Default project"
    assert oa.post(f"{PROJECTS}/{default['id']}", json={"name": "x"}).status_code == 400


@scenario("GET /organization/projects/{project_id}/api_keys",
          "GET /organization/projects/{project_id}/api_keys/{api_key_id}",
          "DELETE /organization/projects/{project_id}/api_keys/{api_key_id}")
def _project_keys(oa: CheckedClient, sb: Any) -> None:
    truth = sb.state.truth
    keys = f"{PROJECTS}/{truth['leaked_project_id']}/api_keys"
    page = oa.get(keys, params={"limit": 1}).json()
    assert page["has_more"] and page["first_id"] == page["last_id"]
    listed = oa.get(keys).json()["data"]
    leaked = oa.get(f"{keys}/{truth['leaked_key_id']}").json()
    assert leaked["owner"]["type"] == "service_account" and leaked["redacted_value"].endswith(
        sb.env["SANDBOX_LEAKED_KEY"][-4:])
    # a service account's key is deleted on its own (the current API reference) ...
    sibling = next(k for k in listed if k["owner"]["type"] == "service_account" and k["id"] != truth["leaked_key_id"])
    assert oa.delete(f"{keys}/{sibling['id']}").json() == {
        "object": "organization.project.api_key.deleted", "id": sibling["id"], "deleted": True}
    # ... except where the organization's API answers as older versions did (a 400)
    from keyresponse.sandbox import seed

    seed.apply_option(sb.state, "refuse-service-account-key-delete")
    r = oa.delete(f"{keys}/{truth['leaked_key_id']}")
    assert r.status_code == 400 and "service account" in r.json()["error"]["message"]
    user_key = next(k for k in listed if k["owner"]["type"] == "user")
    assert oa.delete(f"{keys}/{user_key['id']}").json() == {
        "object": "organization.project.api_key.deleted", "id": user_key["id"], "deleted": True}
    assert oa.get(f"{keys}/{user_key['id']}").status_code == 404
    assert oa.get(f"{PROJECTS}/proj_missing/api_keys").status_code == 404


@scenario("GET /organization/projects/{project_id}/service_accounts",
          "POST /organization/projects/{project_id}/service_accounts",
          "GET /organization/projects/{project_id}/service_accounts/{service_account_id}",
          "POST /organization/projects/{project_id}/service_accounts/{service_account_id}",
          "DELETE /organization/projects/{project_id}/service_accounts/{service_account_id}",
          "POST /organization/projects/{project_id}/service_accounts/{service_account_id}/api_keys")
def _service_accounts(oa: CheckedClient, sb: Any) -> None:
    pid = sb.state.truth["leaked_project_id"]
    accounts = f"{PROJECTS}/{pid}/service_accounts"
    seeded = [sa for sa in sb.state.service_accounts.values() if sa["project_id"] == pid and not sa["deleted_at"]]
    assert len(oa.get(accounts).json()["data"]) == len(seeded)
    made = oa.post(accounts, json={"name": "chatbot-prod-2"}).json()
    assert made["role"] == "member" and made["api_key"]["value"].startswith("sk-proj-")
    sid = made["id"]
    bare = oa.post(accounts, json={"name": "empty", "create_service_account_only": True}).json()
    assert bare["api_key"] is None and bare["role"] == "none"
    assert oa.get(f"{accounts}/{sid}").json()["name"] == "chatbot-prod-2"
    assert oa.post(f"{accounts}/{sid}", json={"role": "owner"}).json()["role"] == "owner"
    extra = oa.post(f"{accounts}/{sid}/api_keys", json={"name": "second", "scopes": ["api.model.read"]}).json()
    assert extra["name"] == "second" and extra["value"] != made["api_key"]["value"]
    assert oa.delete(f"{accounts}/{sid}").json()["deleted"] is True
    assert oa.get(f"{accounts}/{sid}").status_code == 404
    assert oa.post(accounts, json={}).status_code == 400
    archived = next(p for p in sb.state.projects.values() if p["archived_at"])
    assert oa.get(f"{PROJECTS}/{archived['id']}/service_accounts").status_code == 400


def _usage(kind: str) -> Scenario:
    def run(oa: CheckedClient, sb: Any) -> None:
        path = f"/organization/usage/{kind}"
        start = int(time.time()) - 3 * 86400
        r = oa.get(path, params={"start_time": start, "bucket_width": "1h", "limit": 72, "group_by": ["project_id"]})
        assert r.status_code == 200 and len(r.json()["data"]) == 72
        assert oa.get(path, params={"start_time": start, "bucket_width": "1h", "limit": 169}).status_code == 400
        assert oa.get(path).status_code == 400  # start_time is required

    return run


for _kind in ("completions", "embeddings", "moderations", "images", "audio_speeches", "audio_transcriptions",
              "vector_stores", "code_interpreter_sessions", "file_search_calls", "web_search_calls"):
    scenario(f"GET /organization/usage/{_kind}", name=f"usage_{_kind}")(_usage(_kind))


@scenario("GET /files", "GET /vector_stores", "GET /batches", "GET /fine_tuning/jobs", "GET /assistants")
def _project_resources(oa: CheckedClient, sb: Any) -> None:
    project_key = bearer(sb.env["SANDBOX_LEAKED_KEY"])
    for path in ("/files", "/vector_stores", "/batches", "/fine_tuning/jobs", "/assistants"):
        r = oa.get(path, params={"limit": 1}, headers=project_key)
        assert r.status_code == 200 and len(r.json()["data"]) == 1, path
        assert oa.get(path, headers=bearer("not-a-real-key-at-all")).status_code == 401
    assert oa.get("/files", params={"order": "sideways"}, headers=project_key).status_code == 400


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_routes_conform(name: str, oa: CheckedClient, sandbox: Any) -> None:
    run, operations = SCENARIOS[name]
    run(oa, sandbox)
    for operation in operations:
        statuses = [status for op, status in oa.seen if op == operation]
        assert any(200 <= s < 300 for s in statuses), f"{operation} was never answered successfully"


def test_every_operation_in_the_description_has_a_scenario(openai_book: Any) -> None:
    covered = {op for _, operations in SCENARIOS.values() for op in operations}
    assert openai_book.operations == covered
