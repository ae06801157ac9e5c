"""The OpenAI provider and the key actions over httpx.MockTransport and a small fake org.

The fake keeps state (keys, service accounts, audit log) and the tests assert on
that state, not on call lists. Key values are made at run time.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from keyresponse import http
from keyresponse.errors import ProviderError, ServiceError
from keyresponse.providers.base import IssueSpec, KeyNotFound, KeyRecord, UsagePoint
from keyresponse.providers.openai import OpenAIClient
from keyresponse.secret import Secret

BASE = "https://api.test/v1"


def key_value(tail: str | None = None) -> str:
    body = secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")
    return "sk-" + "proj-" + body + (tail or "")


class FakeOpenAI:
    """Just enough of the organization API, with paging capped at `page_cap` items."""

    def __init__(self, page_cap: int = 2) -> None:
        self.admin = "adm-" + secrets.token_hex(12)
        self.page_cap = page_cap
        self.projects = {"proj_a": "Chatbot", "proj_b": "Billing", "proj_c": "Empty"}
        self.keys: dict[str, dict[str, Any]] = {}
        self.sas: dict[str, dict[str, Any]] = {}
        self.audit: list[dict[str, Any]] = []
        self.usage: dict[str, list[dict[str, Any]]] = {"completions": [], "embeddings": []}
        self.restricted: set[str] = set()
        self.queries: list[tuple[str, str, dict[str, list[str]]]] = []
        self.fail_next: list[tuple[str, str, int, bool]] = []  # (method, path regex, status, commit first)
        self.n = 0

    # --- seeding

    def add_key(self, project: str, name: str, owner: str = "user", tail: str | None = None,
                sa_name: str = "svc") -> dict[str, Any]:
        self.n += 1
        k: dict[str, Any] = {"id": f"key_{self.n:03d}", "project": project, "name": name, "value": key_value(tail),
             "owner_type": owner, "created_at": 1_700_000_000 + self.n, "last_used_at": 1_700_100_000 + self.n}
        if owner == "service_account":
            sa = self.add_sa(project, sa_name)
            k["owner_id"] = sa["id"]
        else:
            k["owner_id"] = f"user_{self.n}"
        self.keys[k["id"]] = k
        return k

    def add_sa(self, project: str, name: str) -> dict[str, Any]:
        self.n += 1
        sa: dict[str, Any] = {"id": f"svc_acct_{self.n:03d}", "project": project, "name": name,
                              "created_at": 1_700_000_000}
        self.sas[sa["id"]] = sa
        return sa

    def live_keys(self) -> list[dict[str, Any]]:
        return list(self.keys.values())

    # --- the app

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1/")
        query = parse_qs(request.url.query.decode(), keep_blank_values=True)
        self.queries.append((request.method, path, query))
        commit_then_fail = None
        for i, (method, pattern, status, commit) in enumerate(self.fail_next):
            if method == request.method and re.fullmatch(pattern, path):
                del self.fail_next[i]
                if not commit:
                    return httpx.Response(status, json=_err("server_error", "boom"), headers={"x-request-id": "req_1"})
                commit_then_fail = status
                break
        auth = request.headers.get("authorization", "").removeprefix("Bearer ")
        if path == "models":
            return self._models(auth)
        if auth != self.admin:
            return httpx.Response(401, json=_err("invalid_api_key", "Incorrect API key provided"))
        response = self._route(request, path, query)
        if commit_then_fail:
            return httpx.Response(commit_then_fail, json=_err("server_error", "upstream"))
        return response

    def _models(self, auth: str) -> httpx.Response:
        key = next((k for k in self.keys.values() if k["value"] == auth), None)
        if key is None:
            return httpx.Response(401, json=_err("invalid_api_key", "Incorrect API key provided: sk-proj-...."))
        if key["id"] in self.restricted:
            return httpx.Response(401, json=_err(None, "You have insufficient permissions for this operation. "
                                                       "Missing scopes: api.model.read."))
        return httpx.Response(200, json={"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})

    def _route(self, request: httpx.Request, path: str, q: dict[str, list[str]]) -> httpx.Response:
        parts = path.split("/")
        m = request.method
        if parts[:2] == ["organization", "projects"] and len(parts) == 2:
            return self._page([{"id": p, "object": "organization.project", "name": n} for p, n in self.projects.items()], q)
        if parts[:2] == ["organization", "projects"] and parts[3:4] == ["api_keys"]:
            project = parts[2]
            if len(parts) == 4:
                return self._page([self._key(k) for k in self.keys.values() if k["project"] == project], q)
            k = self.keys.get(parts[4])
            if k is None or k["project"] != project:
                return httpx.Response(404, json=_err(None, "not found"))
            if m == "GET":
                return httpx.Response(200, json=self._key(k))
            if k["owner_type"] == "service_account":
                return httpx.Response(400, json=_err(None, "API keys owned by service accounts cannot be deleted"))
            del self.keys[k["id"]]
            self._event("api_key.deleted", k["id"], project)
            return httpx.Response(200, json={"object": "organization.project.api_key.deleted", "id": k["id"], "deleted": True})
        if parts[:2] == ["organization", "projects"] and parts[3:4] == ["service_accounts"]:
            return self._service_accounts(request, parts[2], parts[4:], q)
        if parts[:2] == ["organization", "usage"]:
            return self._usage(parts[2], q)
        if path == "organization/costs":
            return httpx.Response(200, json={"object": "page", "has_more": False, "next_page": None, "data": [
                {"object": "bucket", "start_time": 0, "end_time": 86400, "results": [
                    {"object": "organization.costs.result", "amount": {"value": 12.5, "currency": "usd"},
                     "api_key_id": q.get("api_key_ids", [None])[0]}]}]})
        if path == "organization/audit_logs":
            types = set(q.get("event_types[]", []))
            return self._page([e for e in self.audit if not types or e["type"] in types], q)
        return httpx.Response(404, json=_err(None, f"no route {m} {path}"))

    def _service_accounts(self, request: httpx.Request, project: str, rest: list[str],
                          q: dict[str, list[str]]) -> httpx.Response:
        if not rest:
            if request.method == "GET":
                return self._page([{"object": "organization.project.service_account", "role": "member", **s}
                                   for s in self.sas.values() if s["project"] == project], q)
            made = self.add_sa(project, json.loads(request.content)["name"])
            k = self._mint(project, made["id"], "Secret Key")
            return httpx.Response(200, json={"object": "organization.project.service_account", "role": "member",
                                             **made, "api_key": self._minted(k)})
        sa = self.sas.get(rest[0])
        if sa is None or sa["project"] != project:
            return httpx.Response(404, json=_err(None, "no such service account"))
        if rest[1:] == ["api_keys"]:
            return httpx.Response(200, json=self._minted(self._mint(project, sa["id"], json.loads(request.content)["name"])))
        if request.method == "DELETE":
            del self.sas[sa["id"]]
            for k in [k for k in self.keys.values() if k["owner_id"] == sa["id"]]:
                del self.keys[k["id"]]
            self._event("service_account.deleted", sa["id"], project)
            return httpx.Response(200, json={"object": "organization.project.service_account.deleted",
                                             "id": sa["id"], "deleted": True})
        return httpx.Response(200, json={"object": "organization.project.service_account", "role": "member", **sa})

    def _mint(self, project: str, sa_id: str, name: str) -> dict[str, Any]:
        self.n += 1
        k: dict[str, Any] = {"id": f"key_{self.n:03d}", "project": project, "name": name, "value": key_value(),
                             "owner_type": "service_account", "owner_id": sa_id, "created_at": 1_700_000_000, "last_used_at": None}
        self.keys[k["id"]] = k
        return k

    def _minted(self, k: dict[str, Any]) -> dict[str, Any]:
        return {"object": "organization.project.service_account.api_key", "value": k["value"], "name": k["name"],
                "created_at": k["created_at"], "id": k["id"]}

    def _key(self, k: dict[str, Any]) -> dict[str, Any]:
        v = k["value"]
        owner = {"type": k["owner_type"], k["owner_type"]: {"id": k["owner_id"], "name": "n", "email": "e@x.test",
                                                            "created_at": 0, "role": "member"}}
        return {"object": "organization.project.api_key", "redacted_value": v[:8] + "..." + v[-4:], "name": k["name"],
                "created_at": k["created_at"], "last_used_at": k["last_used_at"], "id": k["id"],
                "owner_project_access": "active", "owner": owner}

    def _page(self, items: list[dict[str, Any]], q: dict[str, list[str]]) -> httpx.Response:
        limit = min(int(q.get("limit", ["20"])[0]), self.page_cap)
        after = q.get("after", [None])[0]
        start = next((i + 1 for i, it in enumerate(items) if it["id"] == after), 0)
        chunk = items[start:start + limit]
        return httpx.Response(200, json={"object": "list", "data": chunk, "has_more": start + limit < len(items),
                                         "first_id": chunk[0]["id"] if chunk else None,
                                         "last_id": chunk[-1]["id"] if chunk else None})

    def _usage(self, kind: str, q: dict[str, list[str]]) -> httpx.Response:
        start, end = int(q["start_time"][0]), int(q["end_time"][0])
        limit = int(q["limit"][0])
        first = int(q.get("page", [start])[0])
        rows = [r for r in self.usage[kind] if r["api_key_id"] in q.get("api_key_ids", [r["api_key_id"]])]
        buckets: list[dict[str, Any]] = []
        t = first
        while t < end and len(buckets) < limit:
            results = [{"object": f"organization.usage.{kind}.result", **{k: v for k, v in r.items() if k != "hour"}}
                       for r in rows if r["hour"] == t]
            buckets.append({"object": "bucket", "start_time": t, "end_time": t + 3600, "results": results})
            t += 3600
        more = t < end
        return httpx.Response(200, json={"object": "page", "data": buckets, "has_more": more,
                                         "next_page": str(t) if more else None})

    def _event(self, kind: str, rid: str, project: str) -> None:
        self.n += 1
        self.audit.append({"id": f"audit_log-{self.n}", "type": kind, "effective_at": 1_700_200_000 + self.n,
                           "project": {"id": project}, kind: {"id": rid},
                           "actor": {"type": "api_key", "api_key": {"id": "key_admin", "type": "user",
                                                                     "user": {"id": "u1", "email": "ops@x.test"}}}})


def _err(code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def client_for(fake: FakeOpenAI, token: str | None = None, **kw: Any) -> httpx.Client:
    policy = kw.pop("policy", http.RetryPolicy(attempts=4, base=0.0, cap=0.0))
    c = http.build_client("openai", BASE, {"Authorization": f"Bearer {token or fake.admin}"},
                          transport=httpx.MockTransport(fake), policy=policy, **kw)
    c._transport.sleep = lambda s: None  # type: ignore[attr-defined]
    return c


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def provider(fake: FakeOpenAI) -> OpenAIClient:
    return OpenAIClient(client_for(fake), key_client=lambda secret: client_for(fake, secret.reveal()))


# --- finding -----------------------------------------------------------------------------


def test_list_keys_reads_every_page_of_every_project(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    made = [fake.add_key("proj_a", f"a{i}") for i in range(5)] + [fake.add_key("proj_b", "b", "service_account")]
    listed = provider.list_keys()
    assert sorted(k.key_id for k in listed) == sorted(k["id"] for k in made)
    sa_key = next(k for k in listed if k.project_id == "proj_b")
    assert sa_key.owner_type == "service_account" and sa_key.owner_id.startswith("svc_acct_")
    # owner_project_access=any: keys of owners who lost access are the ones that leak
    assert all(q.get("owner_project_access") == ["any"] for _, p, q in fake.queries if p.endswith("/api_keys"))


def test_find_by_leaked_value_one_zero_two(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    leaked = fake.add_key("proj_b", "leaky")
    fake.add_key("proj_a", "other")
    assert provider.find(value=Secret(leaked["value"])).key_id == leaked["id"]

    stranger = key_value()
    with pytest.raises(KeyNotFound) as none:
        provider.find(value=Secret(stranger))
    assert "no key among" in none.value.message and stranger not in str(none.value)

    twin = fake.add_key("proj_a", "twin", tail=leaked["value"][-4:])
    with pytest.raises(KeyNotFound) as two:
        provider.find(value=Secret(leaked["value"]))
    assert {c.key_id for c in two.value.candidates} == {leaked["id"], twin["id"]}
    assert twin["id"] in two.value.message and leaked["value"] not in str(two.value)


def test_find_by_id_searches_projects_when_none_given(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    k = fake.add_key("proj_b", "x", "service_account")
    rec = provider.find(key_id=k["id"])
    assert (rec.project_id, rec.owner_type) == ("proj_b", "service_account")
    with pytest.raises(KeyNotFound):
        provider.find(key_id="key_nope", project_id="proj_a")


def test_redacted_match_needs_prefix_and_suffix() -> None:
    rec = KeyRecord("key_1", "p", redacted_value="sk-proj-...wxyz")
    assert rec.matches("sk-proj-" + "a" * 20 + "wxyz")
    assert not rec.matches("sk-admin-" + "a" * 20 + "wxyz")
    assert not rec.matches("sk-proj-" + "a" * 20 + "wxya")


# --- revoking ----------------------------------------------------------------------------


def test_revoke_user_key_and_service_account_key(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    user = fake.add_key("proj_a", "u")
    svc = fake.add_key("proj_a", "s", "service_account")
    r1 = provider.revoke(provider.find(key_id=user["id"], project_id="proj_a"))
    assert r1.method == f"DELETE /organization/projects/proj_a/api_keys/{user['id']}" and not r1.already_gone
    r2 = provider.revoke(provider.find(key_id=svc["id"], project_id="proj_a"))
    assert r2.method == f"DELETE /organization/projects/proj_a/service_accounts/{svc['owner_id']}"
    assert fake.keys == {} and svc["owner_id"] not in fake.sas
    again = provider.revoke(KeyRecord(user["id"], "proj_a"))
    assert again.already_gone and again.revoked_at is None


def test_revoke_learns_the_owner_when_the_api_refuses(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    svc = fake.add_key("proj_a", "s", "service_account")
    stale = KeyRecord(svc["id"], "proj_a", owner_type="user")  # e.g. from an old note
    result = provider.revoke(stale)
    assert "service_accounts" in result.method and svc["id"] not in fake.keys


def test_revoke_failure_is_an_error_naming_the_call(fake: FakeOpenAI) -> None:
    user = fake.add_key("proj_a", "u")
    fake.fail_next = [("DELETE", r".*/api_keys/.*", 503, False)] * 4
    p = OpenAIClient(client_for(fake), key_client=lambda secret: client_for(fake, secret.reveal()))
    with pytest.raises(ProviderError) as err:
        p.revoke(KeyRecord(user["id"], "proj_a"))
    text = str(err.value)
    assert "503" in text and "DELETE" in text and "gave up after 4 attempts" in text and "req_1" in text
    assert user["id"] in fake.keys


# --- probing -----------------------------------------------------------------------------


def test_probe_live_dead_restricted(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    live = fake.add_key("proj_a", "live")
    limited = fake.add_key("proj_a", "limited")
    fake.restricted.add(limited["id"])
    assert provider.probe(Secret(live["value"])).result == "live"
    assert provider.probe(Secret(limited["value"])).result == "restricted"
    dead = provider.probe(Secret(key_value()))
    assert dead.result == "dead" and dead.status == 401


# --- issuing -----------------------------------------------------------------------------


def test_issue_service_account_and_key_on_existing_account(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    issued = provider.issue(IssueSpec("proj_a", "keyresponse-inc-1"))
    assert isinstance(issued.secret, Secret) and issued.secret.reveal() not in repr(issued)
    assert fake.sas[issued.service_account_id]["name"] == "keyresponse-inc-1"
    sa = fake.add_sa("proj_a", "app")
    second = provider.issue(IssueSpec("proj_a", "keyresponse-inc-2", service_account_id=sa["id"]))
    assert fake.keys[second.key_id]["owner_id"] == sa["id"]
    found = provider.find_minted("proj_a", ["keyresponse-inc-1", "keyresponse-inc-2"], keys=True)
    assert {f.service_account_id for f in found} >= {issued.service_account_id}
    assert second.key_id in {f.key_id for f in found}


def test_minting_post_is_not_retried_on_a_5xx(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    fake.fail_next = [("POST", r".*/service_accounts", 502, True)]
    with pytest.raises(ServiceError):
        provider.issue(IssueSpec("proj_a", "keyresponse-inc-1"))
    assert len(fake.sas) == 1  # made once (commit then fail), never twice
    assert [f.service_account_id for f in provider.find_minted("proj_a", ["keyresponse-inc-1"])]


# --- usage, events, costs ----------------------------------------------------------------


def test_usage_pages_hourly_buckets_with_repeated_query_names(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    k = fake.add_key("proj_a", "u")
    start = 1_700_000_000 // 3600 * 3600
    for h in range(0, 400, 7):
        fake.usage["completions"].append({"hour": start + h * 3600, "api_key_id": k["id"], "model": "gpt-4o",
                                          "num_model_requests": 2, "input_tokens": 10, "output_tokens": 5})
    fake.usage["embeddings"].append({"hour": start, "api_key_id": k["id"], "model": "text-embedding-3-small",
                                     "num_model_requests": 1, "input_tokens": 3})
    rec = provider.find(key_id=k["id"], project_id="proj_a")
    points = provider.usage(rec, start, start + 400 * 3600)
    assert len([p for p in points if p.model == "gpt-4o"]) == len(range(0, 400, 7))
    assert UsagePoint(start, "text-embedding-3-small", 1, 3, 0) in points
    usage_queries = [q for _, p, q in fake.queries if p == "organization/usage/completions"]
    assert len(usage_queries) == 3  # 400 hours at 168 a page
    assert usage_queries[0]["group_by"] == ["model"] and usage_queries[0]["api_key_ids"] == [k["id"]]
    assert usage_queries[0]["bucket_width"] == ["1h"] and usage_queries[0]["limit"] == ["168"]


def test_events_and_costs(fake: FakeOpenAI, provider: OpenAIClient) -> None:
    k = fake.add_key("proj_a", "s", "service_account")
    rec = provider.find(key_id=k["id"], project_id="proj_a")
    provider.revoke(rec)
    events = provider.events(rec, 0, 2_000_000_000)
    assert [e.type for e in events] == ["service_account.deleted"]
    assert events[0].resource_id == rec.owner_id and "ops@x.test" in events[0].actor
    about, window = [q for _, p, q in fake.queries if p == "organization/audit_logs"]
    assert about["resource_ids[]"] == sorted([rec.key_id, rec.owner_id]) and "effective_at[gte]" not in about
    assert window["effective_at[gte]"] == ["0"] and window["project_ids[]"] == ["proj_a"]
    assert "service_account.deleted" in window["event_types[]"]
    assert provider.costs(rec, 0, 86400) == 12.5


# --- http: retries, budgets --------------------------------------------------------------


def test_429_with_retry_after_is_waited_once_then_succeeds(fake: FakeOpenAI) -> None:
    waits: list[float] = []
    calls = {"n": 0}

    def app(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json=_err("rate_limit_exceeded", "slow down"))
        return httpx.Response(200, json={"ok": True})

    c = http.build_client("openai", BASE, transport=httpx.MockTransport(app))
    c._transport.sleep = waits.append  # type: ignore[attr-defined]
    assert c.get("organization/projects").status_code == 200
    assert waits == [1.0] and calls["n"] == 2


def test_step_budget_bounds_retries_across_requests() -> None:
    waits: list[float] = []
    app = lambda request: httpx.Response(503, headers={"Retry-After": "2"}, json=_err(None, "down"))  # noqa: E731
    c = http.build_client("openai", BASE, transport=httpx.MockTransport(app))
    c._transport.sleep = waits.append  # type: ignore[attr-defined]
    with http.retry_budget(3.0):
        first = c.get("a")
        second = c.get("b")
    assert waits == [2.0] and first.status_code == second.status_code == 503
    assert "step retry budget spent" in str(http.error_for(second, "openai"))


def test_retry_after_beyond_the_cap_is_not_waited_out() -> None:
    waits: list[float] = []
    app = lambda request: httpx.Response(429, headers={"Retry-After": "3600"}, json=_err("rate_limit_exceeded", "x"))  # noqa: E731
    c = http.build_client("openai", BASE, transport=httpx.MockTransport(app))
    c._transport.sleep = waits.append  # type: ignore[attr-defined]
    response = c.get("a")
    assert waits == [] and "more than the 30 s cap" in str(http.error_for(response, "openai"))


def test_keys_listing_for_the_inventory(fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyresponse.commands import keys as keys_cmd
    from keyresponse.inventory import load_inventory

    a = fake.add_key("proj_a", "chatbot")
    b = fake.add_key("proj_b", "billing", "service_account")
    (tmp_path / "keyresponse.yaml").write_text(
        f"providers: {{openai: {{kind: openai, base_url: '{BASE}', admin_key_env: FAKE_ADMIN}}}}\n"
        f"keys: {{chatbot-prod: {{project: proj_a, key_id: {a['id']}}}, billing: {{secret_env: FAKE_BILLING}}}}\n")
    monkeypatch.setenv("FAKE_ADMIN", fake.admin)
    monkeypatch.setenv("FAKE_BILLING", b["value"])
    real = httpx.HTTPTransport
    monkeypatch.setattr(httpx, "HTTPTransport", lambda **kw: httpx.MockTransport(fake))
    try:
        rows = keys_cmd.list_keys(load_inventory(tmp_path / "keyresponse.yaml"))
    finally:
        monkeypatch.setattr(httpx, "HTTPTransport", real)
    by_id = {r["key_id"]: r for r in rows}
    assert by_id[a["id"]]["inventory_name"] == "chatbot-prod" and by_id[a["id"]]["project_name"] == "Chatbot"
    assert by_id[b["id"]]["inventory_name"] == "billing" and by_id[b["id"]]["owner_type"] == "service_account"
    assert by_id[a["id"]]["last_used_at"].endswith("Z")
    assert b["value"] not in json.dumps(rows)


# --- key resolution (actions/key.py) -----------------------------------------------------


class _Ctx:
    """The parts of StepContext that `resolve` reads."""

    def __init__(self, notes: list[dict[str, Any]] | None = None, outputs: dict[str, Any] | None = None,
                 inputs: dict[str, Any] | None = None) -> None:
        self._notes, self.outputs, self.inputs = notes or [], outputs or {}, inputs or {}
        self.recorded: list[tuple[str, dict[str, Any]]] = []
        self.key = None
        self.step_id = "s"

    def notes(self, name: str) -> list[dict[str, Any]]:
        return [n for n in self._notes if n["note"] == name]

    def record(self, note: str, **data: Any) -> None:
        self.recorded.append((note, data))

    def warn(self, message: str) -> None:
        pass

    def prefetched(self) -> Any:
        return None


class _NoCalls:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"resolve called the provider ({name}) when it had no need to")


def test_resolve_prefers_earlier_notes_then_earlier_outputs_without_calls(fake: FakeOpenAI,
                                                                       provider: OpenAIClient) -> None:
    from keyresponse.actions.key_common import resolve

    leaked = KeyRecord("key_old", "proj_a", owner_type="service_account", owner_id="svc_1", redacted_value="sk-...abcd")
    note = {"note": "key.resolved", "key": leaked.outputs()}
    assert resolve(_Ctx(notes=[note]), provider=_NoCalls()) == leaked  # type: ignore[arg-type]
    outputs = {"find": leaked.outputs(), "issue": {"key_id": "key_new", "secret": Secret(key_value()),
                                                   "service_account_id": "svc_2"}}
    ctx = _Ctx(outputs=outputs)
    assert resolve(ctx, provider=_NoCalls()).key_id == "key_old"  # type: ignore[arg-type]
    assert ctx.recorded[0][0] == "key.resolved" and ctx.recorded[0][1]["key"]["key_id"] == "key_old"
    named = fake.add_key("proj_b", "named")
    assert resolve(_Ctx(outputs=outputs), named["id"], provider=provider).project_id == "proj_b"  # type: ignore[arg-type]
    value = fake.add_key("proj_a", "by-value")
    by_value = _Ctx(inputs={"leaked": Secret(value["value"])})
    assert resolve(by_value, provider=provider).key_id == value["id"]  # type: ignore[arg-type]
    assert value["value"] not in repr(by_value.recorded)
