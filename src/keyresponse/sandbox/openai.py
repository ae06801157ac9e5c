"""OpenAI emulation, mounted at /openai/v1: models, projects and project keys.

Service accounts and admin keys live in openai_accounts.py; usage, costs and
audit logs in openai_reports.py. All of it follows openai-admin.openapi.yaml
plus the behaviour the spec does not write down (see specs/README.md).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox import openai_accounts, openai_reports
from keyresponse.sandbox.app import Call, Service, route
from keyresponse.sandbox.openai_common import (
    MODEL_SCOPES,
    admin,
    audit,
    error,
    finish,
    json_body,
    key_obj,
    page,
    policy,
    project_key,
    project_obj,
    service_error,
)

PREFIX = "/openai/v1"
MODELS = [  # id, created, owned_by
    ("gpt-4o-mini-2024-07-18", 1721172741, "system"),
    ("gpt-4o-2024-08-06", 1722814719, "system"),
    ("gpt-4.1-2025-04-14", 1744316542, "system"),
    ("o3-2025-04-16", 1744133301, "system"),
    ("text-embedding-3-small", 1705948997, "system"),
    ("text-embedding-3-large", 1705953180, "system"),
]
_MODEL_LIST = json.dumps({"object": "list", "data": [
    {"id": m, "object": "model", "created": c, "owned_by": o} for m, c, o in MODELS]}).encode()


async def list_models(call: Call) -> Response:
    """Authenticated by an ordinary project key: the way to tell live from dead."""
    if isinstance(key := project_key(call, "api.model.read", MODEL_SCOPES), Response):
        return key
    return Response(_MODEL_LIST, media_type="application/json")


def _project(call: Call) -> dict[str, Any] | Response:
    p = call.state.projects.get(call.params["project_id"])
    if p is None:
        return error(404, f"No such project: {call.params['project_id']}", param="project_id")
    return p


async def list_projects(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    archived = call.request.query_params.get("include_archived", "false").lower() == "true"
    items = [project_obj(p) for p in call.state.projects.values() if archived or p["archived_at"] is None]
    body = page(call, items)
    return body if isinstance(body, Response) else JSONResponse(body)


async def create_project(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(body := await json_body(call), Response):
        return body
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return error(400, "Missing required parameter: 'name'.", param="name")
    st = call.state
    p: dict[str, Any] = {"id": "proj_" + st.token(24), "name": name, "created_at": int(time.time()), "archived_at": None,
         "status": "active"}
    st.projects[p["id"]] = p
    audit(st, "project.created", who, {"id": p["id"], "data": {"name": name, "title": name}}, p)
    return JSONResponse(project_obj(p))


async def get_project(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    p = _project(call)
    return p if isinstance(p, Response) else JSONResponse(project_obj(p))


async def modify_project(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(p := _project(call), Response):
        return p
    if isinstance(body := await json_body(call), Response):
        return body
    if p["name"] == "Default project":
        return error(400, "The default project cannot be modified.")
    if isinstance(body.get("name"), str) and body["name"].strip():
        p["name"] = body["name"]
        audit(call.state, "project.updated", who, {"id": p["id"], "changes_requested": {"title": p["name"]}}, p)
    return JSONResponse(project_obj(p))


def _key(call: Call) -> dict[str, Any] | Response:
    if isinstance(p := _project(call), Response):
        return p
    k = call.state.keys.get(call.params["api_key_id"])
    if k is None or not k["live"] or k["project_id"] != p["id"]:
        return error(404, f"No such API key: {call.params['api_key_id']}", param="api_key_id")
    return k


async def list_keys(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(p := _project(call), Response):
        return p
    st = call.state
    items = [key_obj(st, k) for k in st.keys.values() if k["project_id"] == p["id"] and k["live"]]
    body = page(call, items)
    return body if isinstance(body, Response) else JSONResponse(body)


async def get_key(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    k = _key(call)
    return k if isinstance(k, Response) else JSONResponse(key_obj(call.state, k))


async def delete_key(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    if isinstance(k := _key(call), Response):
        return k
    st = call.state
    if k["owner_type"] == "service_account" and policy(st).get("service_account_key_delete") == "refuse":
        # what older API versions answered: a service account's key went only with its account
        return error(400, "API keys owned by a service account cannot be deleted directly. "
                          "Delete the service account instead.", param="api_key_id")
    # The current API reference: any project key, a service account's too, is deleted alone;
    # the account and its other keys stay.
    k["live"] = False
    k["deleted_at"] = int(time.time())
    audit(st, "api_key.deleted", who, {"id": k["id"]}, st.projects[k["project_id"]])
    return JSONResponse({"object": "organization.project.api_key.deleted", "id": k["id"], "deleted": True})


def service() -> Service:
    org = "/organization"
    keys = org + "/projects/{project_id}/api_keys"
    routes = [
        route("GET", "/models", list_models),
        route("GET", org + "/projects", list_projects),
        route("POST", org + "/projects", create_project),
        route("GET", org + "/projects/{project_id}", get_project),
        route("POST", org + "/projects/{project_id}", modify_project),
        route("GET", keys, list_keys),
        route("GET", keys + "/{api_key_id}", get_key),
        route("DELETE", keys + "/{api_key_id}", delete_key),
        *openai_accounts.routes(),
        *openai_reports.routes(),
    ]
    return Service("openai", PREFIX, routes, service_error, finish)
