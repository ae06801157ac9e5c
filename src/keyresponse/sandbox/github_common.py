"""Shared pieces of the GitHub emulation: errors, tokens, and one secret store
per scope (repository, environment, organization, Dependabot)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox import ghcrypto
from keyresponse.sandbox.app import Call
from keyresponse.sandbox.state import State, iso

DOCS = "https://docs.github.com/rest/actions/secrets"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VALUE = 48 * 1024
_REASONS = {400: "Problems parsing JSON", 401: "Bad credentials", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 422: "Validation Failed", 429: "API rate limit exceeded", 500: "Server Error",
            502: "Server Error", 503: "Service Unavailable"}


def error(status: int, message: str | None = None) -> JSONResponse:
    """GitHub's basic-error body: message, documentation_url, status."""
    return JSONResponse({"message": message or _REASONS.get(status, "Error"), "documentation_url": DOCS,
                         "status": str(status)}, status)


def service_error(status: int, message: str) -> Response:
    return error(status, _REASONS.get(status) if status in (404, 429) or status >= 500 else message)


def finish(response: Response) -> None:
    response.headers["x-github-api-version-selected"] = "2022-11-28"
    response.headers["x-github-request-id"] = uuid.uuid4().hex[:20].upper()
    response.headers["x-ratelimit-limit"] = "5000"
    response.headers["x-ratelimit-remaining"] = "4999"
    response.headers["x-ratelimit-resource"] = "core"


def principal(call: Call) -> dict[str, Any] | Response:
    scheme, _, token = call.request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        return error(401, "Requires authentication")
    who: dict[str, Any] | None = call.state.github["tokens"].get(token.strip())
    return who if who is not None else error(401, "Bad credentials")


def repo(call: Call) -> dict[str, Any] | Response:
    """The repository in the path, or 404 when missing or not visible to the token (as GitHub does)."""
    if isinstance(who := principal(call), Response):
        return who
    wanted = f"{call.params['owner']}/{call.params['repo']}".lower()
    repos: dict[str, dict[str, Any]] = call.state.github["repos"]
    for full, r in repos.items():
        if full.lower() == wanted and (who["repos"] is None or full in who["repos"]):
            return r
    return error(404)


def org(call: Call) -> dict[str, Any] | Response:
    if isinstance(who := principal(call), Response):
        return who
    o: dict[str, Any] = call.state.github["org"]
    if call.params["org"].lower() != o["login"]:
        return error(404)
    if not who["org_admin"]:
        return error(403, "Resource not accessible by personal access token")
    return o


def paginate(call: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]] | Response:
    q = call.request.query_params
    try:
        per_page = min(max(int(q.get("per_page", 30)), 1), 100)
        number = max(int(q.get("page", 1)), 1)
    except ValueError:
        return error(422, "Invalid request.\n\nper_page and page must be integers.")
    last = max((len(items) + per_page - 1) // per_page, 1)
    headers = {}
    if number < last:
        url = str(call.request.url.remove_query_params("page").include_query_params(page=number + 1))
        end = str(call.request.url.remove_query_params("page").include_query_params(page=last))
        headers["Link"] = f'<{url}>; rel="next", <{end}>; rel="last"'
    return items[(number - 1) * per_page : number * per_page], headers


def secret_obj(call: Call, scope: str, s: dict[str, Any]) -> dict[str, Any]:
    out = {"name": s["name"], "created_at": s["created_at"], "updated_at": s["updated_at"]}
    if scope.startswith("org:"):
        out["visibility"] = s["visibility"]
        if s["visibility"] == "selected":
            out["selected_repositories_url"] = (
                f"{call.base_url()}/orgs/{scope[4:]}/actions/secrets/{s['name']}/repositories")
    return out


async def list_secrets(call: Call, scope: str) -> Response:
    secrets = sorted(call.state.github["secrets"][scope].values(), key=lambda s: s["name"])
    paged = paginate(call, [secret_obj(call, scope, s) for s in secrets])
    if isinstance(paged, Response):
        return paged
    chunk, headers = paged
    return JSONResponse({"total_count": len(secrets), "secrets": chunk}, headers=headers)


async def get_secret(call: Call, scope: str) -> Response:
    s = call.state.github["secrets"][scope].get(call.params["secret_name"].upper())
    return error(404) if s is None else JSONResponse(secret_obj(call, scope, s))


async def public_key(call: Call, scope: str) -> Response:
    entry = call.state.github["keys"][scope]
    return JSONResponse({"key_id": entry["key_id"], "key": entry["key"]})


async def delete_secret(call: Call, scope: str) -> Response:
    secrets = call.state.github["secrets"][scope]
    if secrets.pop(call.params["secret_name"].upper(), None) is None:
        return error(404)
    return Response(status_code=204)


async def put_secret(call: Call, scope: str, extra: dict[str, Any] | None = None) -> Response:
    """Create (201) or update (204) a secret from a sealed box made with the scope's key."""
    name = call.params["secret_name"]
    try:
        body = await call.body()
    except ValueError:
        return error(400)
    for field in ("encrypted_value", "key_id"):
        if not isinstance(body.get(field), str):
            return error(422, f'Invalid request.\n\n"{field}" wasn\'t supplied.')
    if not NAME.fullmatch(name) or name.upper().startswith("GITHUB_"):
        return error(422, "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or "
                          "underscores (_), must not start with a number, and must not start with GITHUB_.")
    st = call.state
    current = st.github["keys"][scope]
    if body["key_id"] != current["key_id"]:
        return error(422, f"Bad request - key_id {body['key_id']!r} is not the current public key; "
                          "fetch the public key again and re-encrypt.")
    plaintext = ghcrypto.decrypt(st, body["key_id"], body["encrypted_value"])
    if plaintext is None:
        return error(422, "Bad request - encrypted_value is not a sealed box for the public key key_id.")
    if len(plaintext) > MAX_VALUE:
        return error(422, "Secret value is too large (maximum 48 KB).")
    secrets = st.github["secrets"][scope]
    name = name.upper()
    now = iso(time.time())
    existing = secrets.get(name)
    secrets[name] = {**(existing or {}), "name": name, "encrypted_value": body["encrypted_value"],
                     "key_id": body["key_id"], "created_at": existing["created_at"] if existing else now,
                     "updated_at": now, **(extra or {})}
    if existing:
        return Response(status_code=204)
    return JSONResponse({}, 201)


def rotate_for_path(st: State, path: str) -> None:
    """Fault hook: rotate the public key of the scope a request path names."""
    m = re.match(r"/repos/([^/]+)/([^/]+)/(?:environments/(.+?)/secrets|(dependabot)|actions)", path)
    if m:
        owner, name, env, dependabot = m.groups()
        full = f"{owner}/{name}".lower()
        scope = f"env:{full}:{env}" if env else f"dependabot:{full}" if dependabot else f"repo:{full}"
    elif (o := re.match(r"/orgs/([^/]+)/", path)) is not None:
        scope = f"org:{o.group(1).lower()}"
    else:
        for scope in list(st.github["keys"]):
            ghcrypto.rotate(st, scope)
        return
    ghcrypto.rotate(st, scope)
