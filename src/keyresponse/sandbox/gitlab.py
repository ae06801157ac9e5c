"""GitLab emulation, mounted at /gitlab/api/v4: CI/CD variables of projects and
groups, and the pipeline trigger. Project and group ids are numeric or
URL-encoded paths (`acme%2Fchatbot`); the token comes in PRIVATE-TOKEN.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Service, route
from keyresponse.sandbox.state import iso

PREFIX = "/gitlab/api/v4"
KEY = re.compile(r"[A-Za-z0-9_]{1,255}")
MASKABLE = re.compile(r"[A-Za-z0-9_+=/@:.~-]{8,}")  # GitLab's rule for masked values
CONFLICT = "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"
FIELDS = ("value", "protected", "masked", "raw", "variable_type", "environment_scope", "description")


def error(status: int, message: Any) -> JSONResponse:
    return JSONResponse({"message": message}, status)


def service_error(status: int, message: str) -> Response:
    names = {404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
             503: "Service Unavailable"}
    return error(status, f"{status} {names[status]}" if status in names else message)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def _authorized(call: Call) -> bool:
    token = call.request.headers.get("private-token")
    if token is None:
        scheme, _, rest = call.request.headers.get("authorization", "").partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else None
    return token is not None and token in call.state.gitlab["tokens"]


def _owner(call: Call, kind: str) -> tuple[dict[str, Any], str] | Response:
    if not _authorized(call):
        return error(401, "401 Unauthorized")
    ident = call.params["id"].lower()
    for obj in call.state.gitlab["projects" if kind == "project" else "groups"].values():
        if ident in (str(obj["id"]), obj["path"].lower()):
            return obj, f"{kind}:{obj['id']}"
    return error(404, f"404 {kind.title()} Not Found")


async def _params(call: Call) -> dict[str, Any]:
    """Query and body (JSON or form) together, with filter[...] unpacked."""
    params: dict[str, Any] = dict(call.request.query_params)
    params.update(await call.body())
    scope = params.pop("filter[environment_scope]", None)
    filt = params.pop("filter", None)
    if isinstance(filt, dict):
        scope = filt.get("environment_scope", scope)
    params["_filter_scope"] = scope
    return params


def _var_obj(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "value": None if v["hidden"] else v["value"]}


def _find(variables: list[dict[str, Any]], key: str, scope: str | None) -> dict[str, Any] | Response:
    found = [v for v in variables if v["key"] == key and scope in (None, v["environment_scope"])]
    if not found:
        return error(404, "404 Variable Not Found")
    if len(found) > 1:
        return error(409, CONFLICT)
    return found[0]


def _invalid(v: dict[str, Any]) -> Response | None:
    if v["variable_type"] not in ("env_var", "file"):
        return JSONResponse({"error": "variable_type does not have a valid value"}, 400)
    if v["masked"] and not MASKABLE.fullmatch(str(v["value"])):
        return error(400, {"value": ["is invalid"]})
    return None


def _handler(kind: str, op: str) -> Any:
    async def handler(call: Call) -> Response:
        if isinstance(found := _owner(call, kind), Response):
            return found
        _, owner = found
        try:
            params = await _params(call)
        except ValueError:
            return JSONResponse({"error": "The request body is not valid JSON"}, 400)
        return _OPS[op](call.state.gitlab["variables"].setdefault(owner, []), call, params)

    handler.__name__ = f"{kind}_{op}"
    return handler


def _list(variables: list[dict[str, Any]], call: Call, params: dict[str, Any]) -> Response:
    try:
        per_page = min(max(int(params.get("per_page", 20)), 1), 100)
        number = max(int(params.get("page", 1)), 1)
    except ValueError:
        return JSONResponse({"error": "page is invalid"}, 400)
    total_pages = max((len(variables) + per_page - 1) // per_page, 1)
    headers = {"X-Total": str(len(variables)), "X-Total-Pages": str(total_pages), "X-Per-Page": str(per_page),
               "X-Page": str(number), "X-Next-Page": str(number + 1) if number < total_pages else "",
               "X-Prev-Page": str(number - 1) if number > 1 else ""}
    chunk = variables[(number - 1) * per_page : number * per_page]
    return JSONResponse([_var_obj(v) for v in chunk], headers=headers)


def _get(variables: list[dict[str, Any]], call: Call, params: dict[str, Any]) -> Response:
    v = _find(variables, call.params["key"], params["_filter_scope"])
    return v if isinstance(v, Response) else JSONResponse(_var_obj(v))


def _create(variables: list[dict[str, Any]], call: Call, params: dict[str, Any]) -> Response:
    for required in ("key", "value"):
        if params.get(required) is None:
            return JSONResponse({"error": f"{required} is missing"}, 400)
    key = str(params["key"])
    if not KEY.fullmatch(key):
        return error(400, {"key": ["can contain only letters, digits and '_'."]})
    hidden = _truthy(params.get("masked_and_hidden"))
    v = {"variable_type": params.get("variable_type", "env_var"), "key": key, "value": str(params["value"]),
         "protected": _truthy(params.get("protected")), "masked": hidden or _truthy(params.get("masked")),
         "hidden": hidden, "raw": _truthy(params.get("raw")),
         "environment_scope": params.get("environment_scope") or "*", "description": params.get("description")}
    if (bad := _invalid(v)) is not None:
        return bad
    if any(x["key"] == key and x["environment_scope"] == v["environment_scope"] for x in variables):
        return error(400, {"key": [f"({key}) has already been taken"]})
    variables.append(v)
    return JSONResponse(_var_obj(v), 201)


def _update(variables: list[dict[str, Any]], call: Call, params: dict[str, Any]) -> Response:
    v = _find(variables, call.params["key"], params["_filter_scope"])
    if isinstance(v, Response):
        return v
    changed = dict(v)
    for name in FIELDS:
        if name in params:
            value = params[name]
            changed[name] = _truthy(value) if name in ("protected", "masked", "raw") else value
    changed["value"] = str(changed["value"])
    if (bad := _invalid(changed)) is not None:
        return bad
    if any(x is not v and x["key"] == v["key"] and x["environment_scope"] == changed["environment_scope"]
           for x in variables):
        return error(400, {"key": [f"({v['key']}) has already been taken"]})
    v.update(changed)
    return JSONResponse(_var_obj(v))


def _delete(variables: list[dict[str, Any]], call: Call, params: dict[str, Any]) -> Response:
    v = _find(variables, call.params["key"], params["_filter_scope"])
    if isinstance(v, Response):
        return v
    variables.remove(v)
    return Response(status_code=204)


_OPS = {"list": _list, "get": _get, "create": _create, "update": _update, "delete": _delete}


async def trigger_pipeline(call: Call) -> Response:
    """POST /projects/:id/pipeline: recorded, never run."""
    if isinstance(found := _owner(call, "project"), Response):
        return found
    project, _ = found
    try:
        params = await _params(call)
    except ValueError:
        return JSONResponse({"error": "The request body is not valid JSON"}, 400)
    ref = params.get("ref")
    if not ref:
        return JSONResponse({"error": "ref is missing"}, 400)
    if ref not in project["branches"]:
        return error(400, {"base": ["Reference not found"]})
    st = call.state
    gl = st.gitlab
    pid = gl["next_pipeline_id"]
    gl["next_pipeline_id"] += 1
    now = iso(time.time())
    given = params.get("variables")
    variables: list[Any] = given if isinstance(given, list) else []
    pipeline = {"id": pid, "iid": len(gl["pipelines"]) + 1, "project_id": project["id"],
                "sha": st.token(40, "0123456789abcdef"), "ref": ref, "status": "created", "source": "api",
                "created_at": now, "updated_at": now,
                "web_url": f"https://gitlab.example/{project['path']}/-/pipelines/{pid}"}
    # variable values may be secrets: the record keeps their names only
    gl["pipelines"].append({**pipeline, "project_path": project["path"],
                            "variables": [v.get("key") for v in variables if isinstance(v, dict)]})
    return JSONResponse(pipeline, 201)


async def current_user(call: Call) -> Response:
    if not _authorized(call):
        return error(401, "401 Unauthorized")
    return JSONResponse(call.state.gitlab["user"])


async def get_project(call: Call) -> Response:
    if isinstance(found := _owner(call, "project"), Response):
        return found
    p = found[0]
    return JSONResponse({"id": p["id"], "name": p["name"], "path_with_namespace": p["path"],
                         "default_branch": p["branches"][0], "visibility": p.get("visibility", "private"),
                         "web_url": f"https://gitlab.example/{p['path']}"})


def service() -> Service:
    routes = [route("GET", "/user", current_user), route("GET", "/projects/{id}", get_project),
              route("POST", "/projects/{id}/pipeline", trigger_pipeline)]
    for kind in ("project", "group"):
        base = f"/{kind}s/{{id}}/variables"
        routes += [
            route("GET", base, _handler(kind, "list")),
            route("POST", base, _handler(kind, "create")),
            route("GET", base + "/{key}", _handler(kind, "get")),
            route("PUT", base + "/{key}", _handler(kind, "update")),
            route("DELETE", base + "/{key}", _handler(kind, "delete")),
        ]
    return Service("gitlab", PREFIX, routes, service_error)
