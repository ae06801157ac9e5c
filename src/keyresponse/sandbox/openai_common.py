"""Shared pieces of the OpenAI emulation: errors, auth, objects, pagination."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox import events
from keyresponse.sandbox.app import Call
from keyresponse.sandbox.state import State, redact

DOCS = "https://platform.openai.com/account/api-keys"
MODEL_SCOPES = ("api.model.read", "model.read", "api.model.request")


def error(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
          code: str | None = None) -> JSONResponse:
    """The real error body: {"error": {"message", "type", "param", "code"}}."""
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}}, status)


async def json_body(call: Call) -> dict[str, Any] | Response:
    """The request's JSON object, or OpenAI's 400 for a body that does not parse."""
    try:
        return await call.body()
    except ValueError:
        return error(400, "We could not parse the JSON body of your request.")


def service_error(status: int, message: str) -> Response:
    if status == 429:
        return error(429, "Rate limit reached for requests in organization. Please try again shortly.",
                     type="requests", code="rate_limit_exceeded")
    if status >= 500:
        text = {502: "Bad gateway.", 503: "The server is overloaded or not ready yet."}.get(
            status, "The server had an error while processing your request. Sorry about that!")
        return error(status, text, type="server_error")
    return error(status, message)


def finish(response: Response) -> None:
    response.headers["x-request-id"] = "req_" + uuid.uuid4().hex
    response.headers["openai-version"] = "2020-10-01"
    response.headers["x-ratelimit-limit-requests"] = "10000"
    response.headers["x-ratelimit-remaining-requests"] = "9999"
    response.headers["x-ratelimit-reset-requests"] = "6ms"


def bearer(call: Call) -> str | None:
    scheme, _, token = call.request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _masked(token: str) -> str:
    return token[:8] + "*" * max(len(token) - 12, 4) + token[-4:] if len(token) > 12 else "****"


def no_key() -> JSONResponse:
    return error(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                      "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")


def bad_key(token: str) -> JSONResponse:
    return error(401, f"Incorrect API key provided: {_masked(token)}. You can find your API key at {DOCS}.",
                 code="invalid_api_key")


def missing_scopes(scopes: str) -> JSONResponse:
    """A live key that may not do this: 401 with code null. Not a dead key."""
    return error(401, "You have insufficient permissions for this operation. Missing scopes: "
                      f"{scopes}. Check that you have the correct role in your organization (Reader, Writer, "
                      "Owner) and project (Member, Owner), and if you're using a restricted API key, that it "
                      "has the necessary scopes.")


def project_key(call: Call, needs: str, accepts: tuple[str, ...] = ()) -> dict[str, Any] | Response:
    """The live project key the call authenticates with (marked used), else the real API's
    answer: no key, a revoked or unknown one (invalid_api_key), or missing scopes for an
    admin key (it manages the organization, it calls no project endpoint) and for a key
    restricted away from `needs` (any scope of `accepts` is enough, when given)."""
    token = bearer(call)
    if token is None:
        return no_key()
    st = call.state
    now = int(time.time())
    key = next((k for k in st.keys.values() if k["value"] == token and k["live"]
                and (k.get("expires_at") is None or k["expires_at"] > now)), None)
    if key is None:
        if any(a["value"] == token and a["live"] for a in st.admin_keys.values()):
            return missing_scopes(needs)
        return bad_key(token)  # revoked or never existed: the real API cannot tell them apart either
    if key["scopes"] and not set(key["scopes"]) & set(accepts or (needs,)):
        return missing_scopes(needs)
    key["last_used_at"] = now
    return key


def admin(call: Call) -> dict[str, Any] | Response:
    """The live admin key the request carries, or the 401 to send."""
    token = bearer(call)
    if token is None:
        return no_key()
    st = call.state
    now = int(time.time())
    for key in st.admin_keys.values():
        expired = key["expires_at"] is not None and key["expires_at"] <= now
        if key["value"] == token and key["live"] and not expired:
            key["last_used_at"] = now
            return key
    if any(k["value"] == token and k["live"] for k in st.keys.values()):
        return missing_scopes("api.management.read")  # a project key: live, but not an admin key
    return bad_key(token)


def policy(st: State) -> dict[str, Any]:
    """The organization's API-key policy the emulation follows (seed.py sets it):
    `max_key_lifetime` (seconds: every new key must expire within it) and
    `service_account_key_delete: refuse` (the older API's 400 for a service account's key)."""
    found = st.org.get("policy")
    return found if isinstance(found, dict) else {}


def expiry(st: State, body: dict[str, Any]) -> int | JSONResponse | None:
    """`expires_in_seconds` of a create request as an `expires_at`, or the 400 to send."""
    ttl = body.get("expires_in_seconds")
    limit = policy(st).get("max_key_lifetime")
    if ttl is None:
        if limit:
            return error(400, "Your organization's API key policy requires an expiration: 'expires_in_seconds' "
                              f"must be set, at most {limit}.", param="expires_in_seconds")
        return None
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 31536000:
        return error(400, "Invalid value for 'expires_in_seconds': expected an integer from 1 to 31536000.",
                     param="expires_in_seconds")
    if limit and ttl > limit:
        return error(400, f"'expires_in_seconds' exceeds your organization's maximum key lifetime ({limit}).",
                     param="expires_in_seconds")
    return int(time.time()) + ttl


def actor(st: State, admin_key: dict[str, Any]) -> dict[str, Any]:
    return events.admin_key_actor(admin_key, st.users[admin_key["owner_id"]])


def audit(st: State, event_type: str, admin_key: dict[str, Any], details: dict[str, Any],
          project: dict[str, Any] | None = None) -> None:
    st.audit.append(events.event(st.token(16), event_type, int(time.time()), actor(st, admin_key), details, project))


def project_obj(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p["id"], "object": "organization.project", "name": p["name"], "created_at": p["created_at"],
            "archived_at": p["archived_at"], "status": p["status"]}


def sa_obj(sa: dict[str, Any]) -> dict[str, Any]:
    return {"object": "organization.project.service_account", "id": sa["id"], "name": sa["name"],
            "role": sa["role"], "created_at": sa["created_at"]}


def key_obj(st: State, k: dict[str, Any]) -> dict[str, Any]:
    if k["owner_type"] == "service_account":
        sa = st.service_accounts[k["owner_id"]]
        owner: dict[str, Any] = {"type": "service_account", "service_account": {
            "id": sa["id"], "name": sa["name"], "created_at": sa["created_at"], "role": sa["role"]}}
    else:
        u = st.users[k["owner_id"]]
        owner = {"type": "user", "user": {"id": u["id"], "email": u["email"], "name": u["name"],
                                          "created_at": u["created_at"], "role": u["role"]}}
    return {"object": "organization.project.api_key", "redacted_value": redact(k["value"]), "name": k["name"],
            "created_at": k["created_at"], "last_used_at": k["last_used_at"], "id": k["id"],
            "owner_project_access": "active", "owner": owner}


def int_param(call: Call, name: str, default: int, low: int, high: int) -> int | Response:
    raw = call.request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return error(400, f"Invalid value for '{name}': expected an integer.", param=name)
    if not low <= value <= high:
        return error(400, f"Invalid value for '{name}': must be between {low} and {high}.", param=name)
    return value


def page(call: Call, items: list[dict[str, Any]]) -> dict[str, Any] | Response:
    """Cursor pagination: limit (1-100, default 20), after=<id>."""
    limit = int_param(call, "limit", 20, 1, 100)
    if isinstance(limit, Response):
        return limit
    after = call.request.query_params.get("after")
    start = 0
    if after:
        ids = [item["id"] for item in items]
        # an unknown cursor (say, deleted since) ends the listing rather than restarting it
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + limit]
    return {"object": "list", "data": chunk, "first_id": chunk[0]["id"] if chunk else None,
            "last_id": chunk[-1]["id"] if chunk else None, "has_more": start + limit < len(items)}


def multi(call: Call, name: str) -> list[str]:
    """Array query params, sent as repeated `name` or `name[]`."""
    q = call.request.query_params
    return q.getlist(name) + q.getlist(name + "[]")
