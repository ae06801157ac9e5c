"""Usage, costs and audit logs: what an incident audit reads (and, from
openai_project.py, the project resources its blast radius lists)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox import consumers, openai_project, usage
from keyresponse.sandbox.app import Call, Route, route
from keyresponse.sandbox.openai_common import admin, error, int_param, multi

# Every usage family in the spec; the seed has rows for completions, embeddings and
# images (seed_attack.py), the rest answer with well-formed empty buckets.
USAGE_KINDS = (
    "completions", "embeddings", "moderations", "images", "audio_speeches", "audio_transcriptions",
    "vector_stores", "code_interpreter_sessions", "file_search_calls", "web_search_calls",
)


def _report(call: Call, kind: str) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    q = call.request.query_params
    query = {k: q.get(k) for k in ("start_time", "end_time", "bucket_width", "limit", "page", "batch")}
    filters = {name: multi(call, name) for name in usage.FILTERS}
    if kind == "costs":
        filters = {k: v for k, v in filters.items() if k in ("project_ids", "api_key_ids")}
        rows = call.state.usage.get("completions", []) + call.state.usage.get("embeddings", [])
        rows += [_image_cost_row(r) for r in call.state.usage.get("images", [])]
        rows.sort(key=lambda r: r[0])
    else:
        rows = call.state.usage.get(kind, [])
    if query.get("bucket_width") == "1m":
        rows = []  # the seed's history is hourly: per-minute buckets show the live usage only
    now = consumers.now(call.state)
    if kind in ("completions", "costs"):
        rows = usage.merged(rows, consumers.rows(call.state, 0, now + 1))
    try:
        body = usage.page(kind, rows, query, filters, multi(call, "group_by"), now)
    except usage.BadParam as exc:
        return error(400, str(exc), param=exc.param)
    if kind not in ("completions", "embeddings", "costs"):
        for bucket in body["data"]:
            bucket["results"] = [_shaped(kind, r) for r in bucket["results"]]
    return JSONResponse(body)


IMAGE_PRICE_TOKENS = 40_000  # an image costs as much as this many tokens at the fallback price ($1/M): $0.04


def _image_cost_row(row: list[Any]) -> list[Any]:
    """An images row (input = images) as the costs report prices it."""
    from keyresponse.sandbox.seed_usage import INPUT

    out = list(row)
    out[INPUT] = int(row[INPUT]) * IMAGE_PRICE_TOKENS
    return out


# usage kind -> (result object, its count fields from the row's input tokens and requests)
_SHAPES = {
    "images": ("organization.usage.images.result", "images", "num_model_requests"),
    "moderations": ("organization.usage.moderations.result", "input_tokens", "num_model_requests"),
    "audio_speeches": ("organization.usage.audio_speeches.result", "characters", "num_model_requests"),
    "audio_transcriptions": ("organization.usage.audio_transcriptions.result", "seconds", "num_model_requests"),
    "vector_stores": ("organization.usage.vector_stores.result", "usage_bytes", None),
    "code_interpreter_sessions": ("organization.usage.code_interpreter_sessions.result", "num_sessions", None),
    "file_search_calls": ("organization.usage.file_searches.result", "num_requests", None),
    "web_search_calls": ("organization.usage.web_searches.result", "num_requests", "num_model_requests"),
}
_GROUPED = ("project_id", "user_id", "api_key_id", "model")


def _shaped(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """A completions-shaped result (usage.page) in the shape of usage `kind`'s schema."""
    obj, amount, requests = _SHAPES[kind]
    out: dict[str, Any] = {"object": obj, amount: result.get("input_tokens", 0)}
    if requests:
        out[requests] = result.get("num_model_requests", 0)
    groups = ("project_id",) if kind in ("vector_stores", "code_interpreter_sessions") else _GROUPED
    out.update({g: result.get(g) for g in groups if g != "model" or kind != "file_search_calls"})
    return out


def _usage_handler(kind: str) -> Any:
    async def handler(call: Call) -> Response:
        return _report(call, kind)

    handler.__name__ = f"usage_{kind}"
    return handler


async def costs(call: Call) -> Response:
    return _report(call, "costs")


def _actor_ids(ev: dict[str, Any]) -> set[str]:
    actor = ev.get("actor") or {}
    found = set()
    for part in (actor.get("session") or {}, actor.get("api_key") or {}):
        if part.get("id"):
            found.add(part["id"])
        for who in ("user", "service_account"):
            if (part.get(who) or {}).get("id"):
                found.add(part[who]["id"])
    return found


def _actor_emails(ev: dict[str, Any]) -> set[str]:
    actor = ev.get("actor") or {}
    parts = (actor.get("session") or {}, actor.get("api_key") or {})
    return {p["user"]["email"] for p in parts if (p.get("user") or {}).get("email")}


async def audit_logs(call: Call) -> Response:
    if isinstance(who := admin(call), Response):
        return who
    q = call.request.query_params
    bounds = {}
    for op in ("gt", "gte", "lt", "lte"):
        raw = q.get(f"effective_at[{op}]")
        if raw is not None:
            try:
                bounds[op] = int(raw)
            except ValueError:
                return error(400, f"Invalid value for 'effective_at[{op}]': expected Unix seconds.",
                             param=f"effective_at[{op}]")
    limit = int_param(call, "limit", 20, 1, 100)
    if isinstance(limit, Response):
        return limit
    types, projects = set(multi(call, "event_types")), set(multi(call, "project_ids"))
    actors, emails = set(multi(call, "actor_ids")), set(multi(call, "actor_emails"))
    resources = set(multi(call, "resource_ids"))
    checks = {"gt": lambda t, v: t > v, "gte": lambda t, v: t >= v, "lt": lambda t, v: t < v,
              "lte": lambda t, v: t <= v}

    def keep(ev: dict[str, Any]) -> bool:
        t = ev["effective_at"]
        return (all(checks[op](t, v) for op, v in bounds.items())
                and (not types or ev["type"] in types)
                and (not projects or (ev.get("project") or {}).get("id") in projects)
                and (not actors or bool(_actor_ids(ev) & actors))
                and (not emails or bool(_actor_emails(ev) & emails))
                and (not resources or (ev.get(ev["type"]) or {}).get("id") in resources))

    # newest first, as the real API lists them (ties: the later recorded first)
    items = sorted((ev for ev in reversed(call.state.audit) if keep(ev)), key=lambda e: -e["effective_at"])
    ids = [ev["id"] for ev in items]
    after, before = q.get("after"), q.get("before")
    if after:
        start = ids.index(after) + 1 if after in ids else len(items)
        chunk, has_more = items[start : start + limit], start + limit < len(items)
    elif before:
        stop = ids.index(before) if before in ids else 0
        chunk, has_more = items[max(0, stop - limit) : stop], stop - limit > 0
    else:
        chunk, has_more = items[:limit], limit < len(items)
    return JSONResponse({"object": "list", "data": chunk, "first_id": chunk[0]["id"] if chunk else None,
                         "last_id": chunk[-1]["id"] if chunk else None, "has_more": has_more})


def routes() -> list[Route]:
    out = [route("GET", f"/organization/usage/{kind}", _usage_handler(kind)) for kind in USAGE_KINDS]
    return out + [
        route("GET", "/organization/costs", costs),
        route("GET", "/organization/audit_logs", audit_logs),
        *openai_project.routes(),
    ]
