"""Service accounts (the way to mint a project key) and admin API keys."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Route, route
from keyresponse.sandbox.openai_common import admin, audit, error, expiry, json_body, page, sa_obj
from keyresponse.sandbox.state import ADMIN_KEY_PREFIX, URLSAFE, State, redact


def _project(call: Call, *, active: bool = False) -> dict[str, Any] | Response:
    p = call.state.projects.get(call.params["project_id"])
    if p is None:
        return error(404, f"No such project: {call.params['project_id']}", param="project_id")
    if active and p["archived_at"] is not None:
        return error(400, f"Project {p['id']} is archived.", param="project_id")
    return p


def _account(call: Call) -> dict[str, Any] | Response:
    if isinstance(p := _project(call), Response):
        return p
    sa = call.state.service_accounts.get(call.params["service_account_id"])
    if sa is None or sa["deleted_at"] is not None or sa["project_id"] != p["id"]:
        return error(404, f"No such service account: {call.params['service_account_id']}",
                     param="service_account_id")
    return sa


def _mint(st: State, who: dict[str, Any], sa: dict[str, Any], name: str, scopes: list[str] | None,
          expires_at: int | None = None) -> dict[str, Any]:
    key = {
        "id": "key_" + st.token(16), "project_id": sa["project_id"], "name": name,
        "value": st.new_openai_key_value(), "created_at": int(time.time()), "last_used_at": None,
        "owner_type": "service_account", "owner_id": sa["id"], "scopes": scopes or None, "live": True,
        "deleted_at": None, "expires_at": expires_at,
    }
    st.keys[key["id"]] = key
    audit(st, "api_key.created", who, {"id": key["id"], "data": {"scopes": scopes or []}},
          st.projects[sa["project_id"]])
    return key


def _key_body(key: dict[str, Any]) -> dict[str, Any]:
    """The only place a key's value is ever returned: once, on creation."""
    return {"object": "organization.project.service_account.api_key", "value": key["value"],
            "name": key["name"], "created_at": key["created_at"], "id": key["id"],
            "expires_at": key.get("expires_at")}


async def list_accounts(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(p := _project(call, active=True), Response):
        return p
    items = [sa_obj(sa) for sa in call.state.service_accounts.values()
             if sa["project_id"] == p["id"] and sa["deleted_at"] is None]
    body = page(call, items)
    return body if isinstance(body, Response) else JSONResponse(body)


async def create_account(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(p := _project(call, active=True), Response):
        return p
    if isinstance(body := await json_body(call), Response):
        return body
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return error(400, "Missing required parameter: 'name'.", param="name")
    st = call.state
    only = bool(body.get("create_service_account_only"))
    if only and body.get("expires_in_seconds") is not None:
        return error(400, "'expires_in_seconds' must be null when 'create_service_account_only' is true.",
                     param="expires_in_seconds")
    expires = None if only else expiry(st, body)
    if isinstance(expires, Response):
        return expires
    sa = {"id": "svc_acct_" + st.token(24), "project_id": p["id"], "name": name,
          "role": "none" if only else "member", "created_at": int(time.time()), "deleted_at": None}
    st.service_accounts[sa["id"]] = sa
    audit(st, "service_account.created", who, {"id": sa["id"], "data": {"role": sa["role"]}}, p)
    key = None if only else _key_body(_mint(st, who, sa, "Secret Key", None, expires))
    return JSONResponse(sa_obj(sa) | {"api_key": key})


async def get_account(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    sa = _account(call)
    return sa if isinstance(sa, Response) else JSONResponse(sa_obj(sa))


async def update_account(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(sa := _account(call), Response):
        return sa
    if isinstance(body := await json_body(call), Response):
        return body
    if body.get("role") not in (None, "member", "owner"):
        return error(400, "Invalid value for 'role': expected 'member' or 'owner'.", param="role")
    changes = {k: body[k] for k in ("name", "role") if isinstance(body.get(k), str)}
    sa.update(changes)
    audit(call.state, "service_account.updated", who, {"id": sa["id"], "changes_requested": changes},
          call.state.projects[sa["project_id"]])
    return JSONResponse(sa_obj(sa))


async def delete_account(call: Call) -> Response:
    """Deleting a service account kills every key it owns."""
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(sa := _account(call), Response):
        return sa
    st = call.state
    now = int(time.time())
    sa["deleted_at"] = now
    project = st.projects[sa["project_id"]]
    for key in st.keys.values():
        if key["owner_id"] == sa["id"] and key["live"]:
            key["live"] = False
            key["deleted_at"] = now
            audit(st, "api_key.deleted", who, {"id": key["id"]}, project)
    audit(st, "service_account.deleted", who, {"id": sa["id"]}, project)
    return JSONResponse({"object": "organization.project.service_account.deleted", "id": sa["id"], "deleted": True})


async def create_account_key(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(sa := _account(call), Response):
        return sa
    if isinstance(body := await json_body(call), Response):
        return body
    scopes = body.get("scopes")
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        return error(400, "Invalid value for 'scopes': expected an array of strings.", param="scopes")
    name = body["name"] if isinstance(body.get("name"), str) else "Secret Key"
    expires = expiry(call.state, body)
    if isinstance(expires, Response):
        return expires
    return JSONResponse(_key_body(_mint(call.state, who, sa, name, scopes, expires)))


def _admin_obj(st: State, a: dict[str, Any]) -> dict[str, Any]:
    u = st.users[a["owner_id"]]
    return {"object": "organization.admin_api_key", "id": a["id"], "name": a["name"],
            "redacted_value": redact(a["value"]), "created_at": a["created_at"], "expires_at": a["expires_at"],
            "last_used_at": a["last_used_at"],
            "owner": {"type": "user", "object": "organization.user", "id": u["id"], "name": u["name"],
                      "created_at": u["created_at"], "role": u["role"]}}


def _admin_key(call: Call) -> dict[str, Any] | Response:
    a = call.state.admin_keys.get(call.params["key_id"])
    if a is None or not a["live"]:
        return error(404, f"No such admin API key: {call.params['key_id']}", param="key_id")
    return a


async def list_admin_keys(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    st = call.state
    items = [_admin_obj(st, a) for a in st.admin_keys.values() if a["live"]]
    if call.request.query_params.get("order") == "desc":
        items.reverse()
    body = page(call, items)
    return body if isinstance(body, Response) else JSONResponse(body)


async def create_admin_key(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(body := await json_body(call), Response):
        return body
    if not isinstance(body.get("name"), str):
        return error(400, "Missing required parameter: 'name'.", param="name")
    ttl = body.get("expires_in_seconds")
    if ttl is not None and (not isinstance(ttl, int) or not 1 <= ttl <= 31536000):
        return error(400, "Invalid value for 'expires_in_seconds'.", param="expires_in_seconds")
    st = call.state
    now = int(time.time())
    a = {"id": "key_" + st.token(16), "name": body["name"], "value": ADMIN_KEY_PREFIX + st.token(48, URLSAFE),
         "created_at": now, "expires_at": now + ttl if ttl else None, "last_used_at": None,
         "owner_id": who["owner_id"], "live": True}
    st.admin_keys[a["id"]] = a
    # the spec's event for it: tenant.admin_api_key.created, its payload shaped like api_key.created's
    audit(st, "tenant.admin_api_key.created", who, {"id": a["id"], "data": {"name": a["name"]}})
    return JSONResponse(_admin_obj(st, a) | {"value": a["value"]})


async def get_admin_key(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    a = _admin_key(call)
    return a if isinstance(a, Response) else JSONResponse(_admin_obj(call.state, a))


async def delete_admin_key(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(a := _admin_key(call), Response):
        return a
    a["live"] = False
    audit(call.state, "tenant.admin_api_key.deleted", who, {"id": a["id"]})
    return JSONResponse({"id": a["id"], "object": "organization.admin_api_key.deleted", "deleted": True})


def routes() -> list[Route]:
    sas = "/organization/projects/{project_id}/service_accounts"
    one = sas + "/{service_account_id}"
    admins = "/organization/admin_api_keys"
    return [
        route("GET", sas, list_accounts),
        route("POST", sas, create_account),
        route("GET", one, get_account),
        route("POST", one, update_account),
        route("DELETE", one, delete_account),
        route("POST", one + "/api_keys", create_account_key),
        route("GET", admins, list_admin_keys),
        route("POST", admins, create_admin_key),
        route("GET", admins + "/{key_id}", get_admin_key),
        route("DELETE", admins + "/{key_id}", delete_admin_key),
    ]
