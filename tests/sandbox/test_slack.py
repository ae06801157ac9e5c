"""Slack through slack-sdk's own WebClient, answers checked against the Slack description.

The description is Swagger 2.0, which openapi-core does not read; its response
schemas are JSON Schema draft 4 over `definitions`, checked with jsonschema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


@pytest.fixture(scope="module")
def slack_spec(specs_dir: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((specs_dir / "slack-web.openapi.json").read_text())
    return spec


def check(spec: dict[str, Any], method: str, status: str, body: Any) -> None:
    ops = spec["paths"][method]
    op = ops.get("post") or ops.get("get")
    schema = dict(op["responses"][status]["schema"], definitions=spec["definitions"])
    jsonschema.Draft4Validator(schema).validate(body)


@pytest.fixture
def web(sandbox: Any) -> WebClient:
    return WebClient(token=sandbox.env["SLACK_BOT_TOKEN"], base_url=sandbox.urls["slack"])


def test_auth_test_and_channel_info(web: WebClient, slack_spec: dict[str, Any]) -> None:
    me = web.auth_test()
    check(slack_spec, "/auth.test", "200", me.data)
    posted = web.chat_postMessage(channel="#incidents", text="which channel is this?")  # names work here
    info = web.conversations_info(channel=posted["channel"])
    check(slack_spec, "/conversations.info", "200", info.data)
    assert info["channel"]["name"] == "incidents"
    for wrong in ("C0NOSUCHCHAN", "#incidents", "incidents"):  # as in Slack, only an id is found
        with pytest.raises(SlackApiError) as missing:
            web.conversations_info(channel=wrong)
        assert missing.value.response["error"] == "channel_not_found"
        check(slack_spec, "/conversations.info", "default", missing.value.response.data)


def test_a_thread_with_an_update_is_kept_for_reading(sandbox: Any, web: WebClient,
                                                      slack_spec: dict[str, Any]) -> None:
    opened = web.chat_postMessage(channel="#incidents", text=":rotating_light: key leaked",
                                  blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*leaked*"}}])
    check(slack_spec, "/chat.postMessage", "200", opened.data)
    reply = web.chat_postMessage(channel=opened["channel"], text="revoked", thread_ts=opened["ts"])
    check(slack_spec, "/chat.postMessage", "200", reply.data)
    assert reply["message"]["thread_ts"] == opened["ts"]
    updated = web.chat_update(channel=opened["channel"], ts=opened["ts"], text=":white_check_mark: contained")
    assert updated["text"] == ":white_check_mark: contained"
    messages = httpx.get(f"{sandbox.base_url}/_sandbox/slack/messages", params={"channel": "#incidents"}).json()
    texts = [(m["text"], m["thread_ts"]) for m in messages["messages"]]
    assert texts == [(":white_check_mark: contained", None), ("revoked", opened["ts"])]
    assert messages["messages"][0]["edits"][0]["text"] == ":rotating_light: key leaked"
    assert len(sandbox.state.slack_messages) == 2


def test_errors_use_slacks_envelope(sandbox: Any, web: WebClient, slack_spec: dict[str, Any]) -> None:
    bad = WebClient(token="not-a-token", base_url=sandbox.urls["slack"])
    with pytest.raises(SlackApiError) as denied:
        bad.auth_test()
    assert denied.value.response.data == {"ok": False, "error": "invalid_auth"}
    check(slack_spec, "/auth.test", "default", denied.value.response.data)
    for channel, error in (("#random", "not_in_channel"), ("#old-alerts", "is_archived"), ("#nope", "channel_not_found")):
        with pytest.raises(SlackApiError) as failed:
            web.chat_postMessage(channel=channel, text="x")
        assert failed.value.response["error"] == error
        check(slack_spec, "/chat.postMessage", "default", failed.value.response.data)


def test_form_bodies_and_token_parameters_work(sandbox: Any) -> None:
    r = httpx.post(sandbox.urls["slack"] + "chat.postMessage",
                   data={"token": sandbox.env["SLACK_BOT_TOKEN"], "channel": "#keyresponse-drills", "text": "drill"})
    assert r.status_code == 200 and r.json()["ok"] is True
    r = httpx.post(sandbox.urls["slack"] + "chat.postMessage", data={"channel": "#incidents", "text": "x"})
    assert r.json() == {"ok": False, "error": "not_authed"}
