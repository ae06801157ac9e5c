"""Slack Web API emulation, mounted at /slack/api: auth.test, chat.postMessage,
chat.update, conversations.info, conversations.list, conversations.history. Answers
use Slack's {"ok": ...} envelope with HTTP 200, as Slack does; every message is kept
for tests and humans to read (GET /_sandbox/slack/messages).

As in Slack, chat.postMessage takes a channel name or id; conversations.info and
conversations.history only an id (a name is `channel_not_found`). A message's
`metadata` ({event_type, event_payload}) is kept and shown by conversations.history
only with `include_all_metadata`. https://api.slack.com/metadata/using
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.app import Call, Service, route

PREFIX = "/slack/api"
MAX_TEXT = 40000


def fail(error: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status)


def service_error(status: int, message: str) -> Response:
    if status == 429:
        return fail("ratelimited", 429)
    if status == 404:
        return fail("unknown_method", 404)
    return fail("internal_error" if status >= 500 else "invalid_request", status)


async def _args(call: Call) -> dict[str, Any] | Response:
    """Arguments from the query string, a form body or a JSON body, as slack-sdk sends them."""
    args: dict[str, Any] = dict(call.request.query_params)
    try:
        args.update(await call.body())
    except ValueError:
        return fail("invalid_json")
    scheme, _, token = call.request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        args["token"] = token.strip()
    if not args.get("token"):
        return fail("not_authed")
    if args["token"] not in call.state.slack["tokens"]:
        return fail("invalid_auth")
    return args


def _channel(call: Call, ref: Any) -> dict[str, Any] | None:
    ref = str(ref or "")
    channels: dict[str, dict[str, Any]] = call.state.slack["channels"]
    for ch in channels.values():
        if ref in (ch["id"], ch["name"], "#" + ch["name"]):
            return ch
    return None


def _channel_obj(ch: dict[str, Any]) -> dict[str, Any]:
    blank = {"value": "", "creator": "", "last_set": 0}
    return {"id": ch["id"], "name": ch["name"], "name_normalized": ch["name"], "created": ch["created"],
            "creator": ch["creator"], "is_archived": ch["is_archived"], "is_channel": True,
            "is_general": ch["is_general"], "is_mpim": False, "is_group": False, "is_im": False,
            "is_org_shared": False, "is_shared": False, "is_ext_shared": False, "is_private": ch["is_private"],
            "is_member": ch["is_member"], "topic": blank, "purpose": blank}


def _message_obj(call: Call, m: dict[str, Any], *, metadata: bool = False) -> dict[str, Any]:
    bot, team = call.state.slack["bot"], call.state.slack["team"]
    out = {"type": "message", "text": m["text"], "ts": m["ts"], "user": bot["user_id"], "bot_id": bot["bot_id"],
           "team": team["id"]}
    if m["blocks"]:
        out["blocks"] = m["blocks"]
    if m["thread_ts"]:
        out["thread_ts"] = m["thread_ts"]
    if metadata and m.get("metadata"):
        out["metadata"] = m["metadata"]
    return out


def _metadata(raw: Any) -> dict[str, Any] | Response | None:
    """chat.postMessage's `metadata`: a JSON object (or its text) with a string
    `event_type` and an object `event_payload`, as Slack requires."""
    if raw in (None, ""):
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return fail("invalid_metadata_format")
    if not isinstance(value, dict) or not isinstance(value.get("event_type"), str) \
            or not isinstance(value.get("event_payload"), dict):
        return fail("invalid_metadata_format")
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}


def _next_ts(call: Call) -> str:
    sl = call.state.slack
    sl["last_ts"] = max(time.time(), sl["last_ts"] + 0.000001)
    return f"{sl['last_ts']:.6f}"


def _content(args: dict[str, Any]) -> tuple[str, Any, Any] | Response:
    blocks, attachments = args.get("blocks"), args.get("attachments")
    try:
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        attachments = json.loads(attachments) if isinstance(attachments, str) else attachments
    except ValueError:
        return fail("invalid_blocks")
    text = str(args.get("text") or "")
    if not text and not blocks and not attachments:
        return fail("no_text")
    if len(text) > MAX_TEXT:
        return fail("msg_too_long")
    return text, blocks, attachments


async def auth_test(call: Call) -> Response:
    if isinstance(args := await _args(call), Response):
        return args
    sl = call.state.slack
    return JSONResponse({"ok": True, "url": f"https://{sl['team']['domain']}.slack.com/", "team": sl["team"]["name"],
                         "user": sl["bot"]["name"], "team_id": sl["team"]["id"], "user_id": sl["bot"]["user_id"],
                         "bot_id": sl["bot"]["bot_id"], "is_enterprise_install": False})


async def post_message(call: Call) -> Response:
    if isinstance(args := await _args(call), Response):
        return args
    ch = _channel(call, args.get("channel"))
    if ch is None:
        return fail("channel_not_found")
    if ch["is_archived"]:
        return fail("is_archived")
    if not ch["is_member"]:
        return fail("not_in_channel")
    if isinstance(content := _content(args), Response):
        return content
    text, blocks, attachments = content
    if isinstance(metadata := _metadata(args.get("metadata")), Response):
        return metadata
    thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
    m = {"channel": ch["id"], "channel_name": ch["name"], "ts": _next_ts(call), "thread_ts": thread_ts,
         "text": text, "blocks": blocks, "attachments": attachments, "posted_at": time.time(), "edits": [],
         "metadata": metadata}
    call.state.slack["messages"].append(m)
    return JSONResponse({"ok": True, "channel": ch["id"], "ts": m["ts"], "message": _message_obj(call, m)})


async def update_message(call: Call) -> Response:
    if isinstance(args := await _args(call), Response):
        return args
    ch = _channel(call, args.get("channel"))
    if ch is None:
        return fail("channel_not_found")
    m = next((m for m in call.state.slack["messages"]
              if m["channel"] == ch["id"] and m["ts"] == str(args.get("ts"))), None)
    if m is None:
        return fail("message_not_found")
    if isinstance(content := _content(args), Response):
        return content
    m["edits"].append({"text": m["text"], "blocks": m["blocks"], "at": time.time()})
    m["text"], m["blocks"], m["attachments"] = content
    return JSONResponse({"ok": True, "channel": ch["id"], "ts": m["ts"], "text": m["text"],
                         "message": _message_obj(call, m)})


async def conversation_info(call: Call) -> Response:
    if isinstance(args := await _args(call), Response):
        return args
    wanted = str(args.get("channel") or "")
    ch = next((c for c in call.state.slack["channels"].values() if c["id"] == wanted), None)  # ids only
    if ch is None:
        return fail("channel_not_found")
    return JSONResponse({"ok": True, "channel": _channel_obj(ch)})


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


def _number(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int | Response:
    try:
        value = int(args.get(name) or default)
    except ValueError:
        return fail("invalid_arguments")
    return max(low, min(high, value))


async def conversation_list(call: Call) -> Response:
    """Public channels (and private ones with `types=private_channel`) the token can see,
    `limit` at a time (at most 1000); the next page's `cursor` in `response_metadata`."""
    if isinstance(args := await _args(call), Response):
        return args
    types = {t.strip() for t in str(args.get("types") or "public_channel").split(",")}
    if not types <= {"public_channel", "private_channel", "mpim", "im"}:
        return fail("invalid_types")
    if isinstance(limit := _number(args, "limit", 100, 1, 1000), Response):
        return limit
    chans = [c for c in call.state.slack["channels"].values()
             if ("private_channel" if c["is_private"] else "public_channel") in types
             and not (_flag(args.get("exclude_archived")) and c["is_archived"])]
    try:
        start = int(str(args.get("cursor") or "0").removeprefix("next:"))
    except ValueError:
        return fail("invalid_cursor")
    page = chans[start:start + limit]
    more = start + limit < len(chans)
    return JSONResponse({"ok": True, "channels": [_channel_obj(c) for c in page],
                         "response_metadata": {"next_cursor": f"next:{start + limit}" if more else ""}})


async def conversation_history(call: Call) -> Response:
    """A channel's messages (not thread replies), newest first, between `oldest` and
    `latest` (exclusive unless `inclusive`), at most `limit` (1000); `has_more` says
    whether older ones are left. Its next page is asked for with `latest`."""
    if isinstance(args := await _args(call), Response):
        return args
    wanted = str(args.get("channel") or "")
    ch = next((c for c in call.state.slack["channels"].values() if c["id"] == wanted), None)  # ids only
    if ch is None:
        return fail("channel_not_found")
    if not ch["is_member"] and ch["is_private"]:
        return fail("channel_not_found")
    try:
        oldest = float(args.get("oldest") or 0)
    except ValueError:
        return fail("invalid_ts_oldest")
    try:
        latest = float(args["latest"]) if args.get("latest") else None
    except ValueError:
        return fail("invalid_ts_latest")
    if isinstance(limit := _number(args, "limit", 100, 1, 1000), Response):
        return limit
    inclusive = _flag(args.get("inclusive"))

    def within(ts: float) -> bool:
        above = ts >= oldest if inclusive else ts > oldest
        below = latest is None or (ts <= latest if inclusive else ts < latest)
        return above and below

    found = sorted((m for m in call.state.slack["messages"]
                    if m["channel"] == ch["id"] and m["thread_ts"] in (None, m["ts"]) and within(float(m["ts"]))),
                   key=lambda m: float(m["ts"]), reverse=True)
    with_metadata = _flag(args.get("include_all_metadata"))
    return JSONResponse({"ok": True, "messages": [_message_obj(call, m, metadata=with_metadata)
                                                  for m in found[:limit]],
                         "has_more": len(found) > limit, "pin_count": 0, "channel_actions_ts": None,
                         "channel_actions_count": 0})


def service() -> Service:
    routes = []
    for verb in ("GET", "POST"):
        routes += [
            route(verb, "/auth.test", auth_test, mutating=False),
            route(verb, "/conversations.info", conversation_info, mutating=False),
            route(verb, "/conversations.list", conversation_list, mutating=False),
            route(verb, "/conversations.history", conversation_history, mutating=False),
        ]
    routes += [route("POST", "/chat.postMessage", post_message), route("POST", "/chat.update", update_message)]
    return Service("slack", PREFIX, routes, service_error)
