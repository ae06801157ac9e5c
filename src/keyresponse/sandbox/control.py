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


async def send_webhook(call: Call) -> Response:
    """Post a realistic, signed scanner webhook to a URL (`keyresponse serve`'s, say).
    Body: {"kind": "github" | "gitguardian", "url": ..., "secret": the webhook secret or
    signature token, "repo": "acme/chatbot", "secret_type": ..., "delivery": ...}."""
    import time
    import uuid

    import httpx

    from keyresponse.serve import signatures

    try:
        spec = json.loads(await call.request.body() or b"null")
        kind, url, secret = spec["kind"], str(spec["url"]), str(spec["secret"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "give kind (github or gitguardian), url and secret")
    repo = str(spec.get("repo") or "acme/chatbot")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if kind == "github":
        number = int(spec.get("number") or 1)
        payload = {"action": "created", "alert": {
            "number": number, "created_at": now, "secret_type": spec.get("secret_type") or "openai_api_key",
            "secret_type_display_name": "OpenAI API Key", "validity": "active", "publicly_leaked": True,
            "html_url": f"https://github.com/{repo}/security/secret-scanning/{number}",
            "url": f"https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}"},
            "repository": {"full_name": repo, "html_url": f"https://github.com/{repo}", "private": False},
            "sender": {"login": "github"}}
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": "secret_scanning_alert", "X-GitHub-Delivery": str(spec.get("delivery") or uuid.uuid4()),
                   "X-Hub-Signature-256": signatures.github_signature(secret, body)}
    elif kind == "gitguardian":
        payload = {"source": "GitGuardian", "timestamp": now, "action": "incident_triggered", "message": "",
                   "incident": {"id": int(spec.get("number") or 1), "date": now, "severity": "critical",
                                "detector": {"name": spec.get("secret_type") or "openai_apikey",
                                             "display_name": "OpenAI API Key"},
                                "occurrences": [{"source": {"full_name": repo}, "filepath": ".env", "date": now,
                                                 "url": f"https://github.com/{repo}"}]}}
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        headers = {"Timestamp": ts, "Gitguardian-Signature": signatures.gitguardian_signature(secret, ts, body)}
    else:
        return _error(400, f"unknown kind {kind!r}: github or gitguardian")
    headers["Content-Type"] = "application/json"
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            answer = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _error(502, f"could not post to {url}: {type(exc).__name__}")
    return JSONResponse({"status": answer.status_code, "body": answer.text[:2000]})


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
        route("POST", "/webhooks/send", send_webhook),
    ]
    return Service("control", PREFIX, routes, _error)

