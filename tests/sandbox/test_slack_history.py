"""conversations.list and conversations.history, and message metadata, through slack-sdk's
own WebClient, every answer checked against the Slack description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


def _nullable(node: Any) -> Any:
    """Swagger 2.0's `x-nullable` as JSON Schema: the value, or null."""
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "x-nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("x-nullable") else out


@pytest.fixture(scope="module")
def spec(specs_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = _nullable(json.loads((specs_dir / "slack-web.openapi.json").read_text()))
    return loaded


def check(spec: dict[str, Any], method: str, status: str, body: Any) -> None:
    ops = spec["paths"][method]
    op = ops.get("post") or ops.get("get")
    schema = dict(op["responses"][status]["schema"], definitions=spec["definitions"])
    jsonschema.Draft4Validator(schema).validate(body)


@pytest.fixture
def web(sandbox: Any) -> WebClient:
    return WebClient(token=sandbox.env["SLACK_BOT_TOKEN"], base_url=sandbox.urls["slack"])


def test_history_lists_top_level_messages_newest_first_with_metadata_on_request(
        web: WebClient, spec: dict[str, Any]) -> None:
    marker = {"event_type": "keyresponse_incident", "event_payload": {"incident_id": "i-1", "nonce": "n1"}}
    first = web.chat_postMessage(channel="#incidents", text="root", metadata=marker)
    web.chat_postMessage(channel=first["channel"], text="reply", thread_ts=first["ts"])
    second = web.chat_postMessage(channel="#incidents", text="another")
    channel = first["channel"]

    plain = web.conversations_history(channel=channel, oldest=str(float(first["ts"]) - 1))
    check(spec, "/conversations.history", "200", plain.data)
    assert [m["text"] for m in plain["messages"]] == ["another", "root"]  # no thread replies
    assert all("metadata" not in m for m in plain["messages"])

    full = web.conversations_history(channel=channel, oldest=str(float(first["ts"]) - 1), include_all_metadata=True)
    check(spec, "/conversations.history", "200", full.data)
    assert full["messages"][1]["metadata"] == marker

    one = web.conversations_history(channel=channel, oldest=str(float(first["ts"]) - 1), limit=1)
    check(spec, "/conversations.history", "200", one.data)
    assert [m["ts"] for m in one["messages"]] == [second["ts"]] and one["has_more"] is True
    older = web.conversations_history(channel=channel, oldest=str(float(first["ts"]) - 1), latest=second["ts"])
    assert [m["ts"] for m in older["messages"]] == [first["ts"]] and older["has_more"] is False

    quiet = web.conversations_history(channel=channel, oldest=second["ts"])  # exclusive
    check(spec, "/conversations.history", "200", quiet.data)
    assert quiet["messages"] == []


def test_history_takes_an_id_only_and_metadata_must_be_well_formed(web: WebClient, spec: dict[str, Any]) -> None:
    for wrong in ("#incidents", "incidents", "C0NOSUCHCHAN"):
        with pytest.raises(SlackApiError) as missing:
            web.conversations_history(channel=wrong)
        assert missing.value.response["error"] == "channel_not_found"
        check(spec, "/conversations.history", "default", missing.value.response.data)
    with pytest.raises(SlackApiError) as bad:
        web.chat_postMessage(channel="#incidents", text="x", metadata={"event_type": "x"})
    assert bad.value.response["error"] == "invalid_metadata_format"


def test_list_finds_a_channel_by_name_page_by_page(web: WebClient, spec: dict[str, Any]) -> None:
    seen, cursor = [], None
    while True:
        page = web.conversations_list(types="public_channel,private_channel", limit=1, cursor=cursor)
        check(spec, "/conversations.list", "200", page.data)
        seen += [c["name"] for c in page["channels"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert "incidents" in seen and len(seen) == len(set(seen)) > 1
    live = web.conversations_list(exclude_archived=True)
    assert "old-alerts" not in [c["name"] for c in live["channels"]]
