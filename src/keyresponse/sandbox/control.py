"""The control API under /_sandbox: state, reset, faults, and test hooks.

Not an emulated service: never faulted, never counted as a mutation. Key
values appear only through the GitHub decrypt hook, which exists so a test
(or a curious human) can check what a redeploy actually wrote.
"""

from __future__ import annotations

import json

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Service, route

PREFIX = "/_sandbox"


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status)


async def info(call: Call) -> Response:
    """The same object `keyresponse sandbox --json` prints on its first line."""
    return JSONResponse(call.runtime.info())


async def health(call: Call) -> Response:
    return JSONResponse({"ok": True})


async def get_state(call: Call) -> Response:
    view = call.state.public_view()
    view["faults"] = call.runtime.faults.active()
    return JSONResponse(view)


async def reset(call: Call) -> Response:
    call.runtime.reset()
    return JSONResponse({"reset": True, "seed": call.runtime.seed})


async def list_faults(call: Call) -> Response:
    return JSONResponse({"faults": call.runtime.faults.active()})


async def add_faults(call: Call) -> Response:
    """Body: one fault spec object, a list of them, or {"faults": [...]}."""
    try:
        body = json.loads(await call.request.body() or b"null")
    except ValueError:
        return _error(400, "body is not JSON")
    specs = body.get("faults", body) if isinstance(body, dict) and "kind" not in body else body
    specs = specs if isinstance(specs, list) else [specs]
    try:
        faults = [call.runtime.faults.add(spec) for spec in specs]
    except (TypeError, ValueError) as exc:
        return _error(400, f"bad fault spec: {exc}")
    return JSONResponse({"faults": [f.to_dict() for f in faults]}, 201)


async def clear_faults(call: Call) -> Response:
    call.runtime.faults.clear()
    return Response(status_code=204)


async def remove_fault(call: Call) -> Response:
    if not call.runtime.faults.remove(call.params["fault_id"]):
        return _error(404, f"no fault {call.params['fault_id']}")
    return Response(status_code=204)


async def slack_messages(call: Call) -> Response:
    channel = call.request.query_params.get("channel")
    messages = [m for m in call.state.slack_messages if channel in (None, m["channel"], m["channel_name"],
                                                                     "#" + m["channel_name"])]
    return JSONResponse({"messages": messages})


async def github_secret(call: Call) -> Response:
    """Decrypt hook: GET /_sandbox/github/secret?scope=repo:acme/chatbot&name=OPENAI_API_KEY"""
    q = call.request.query_params
    scope, name = q.get("scope"), q.get("name")
    if not scope or not name:
        return _error(400, "give scope= and name=")
    try:
        value = call.state.github_secret_value(scope, name)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    return JSONResponse({"scope": scope, "name": name.upper(), "value": value})


def service() -> Service:
    routes = [
        route("GET", "/info", info),
        route("GET", "/health", health),
        route("GET", "/state", get_state),
        route("POST", "/reset", reset),
        route("GET", "/faults", list_faults),
        route("POST", "/faults", add_faults),
        route("DELETE", "/faults", clear_faults),
        route("DELETE", "/faults/{fault_id}", remove_fault),
        route("GET", "/slack/messages", slack_messages),
        route("GET", "/github/secret", github_secret),
    ]
    return Service("control", PREFIX, routes, _error)

