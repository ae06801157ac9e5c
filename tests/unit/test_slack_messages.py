"""Slack message building, the client's retry set-up, and notify.slack without a Slack.

Payloads are validated against Slack's own API description (Swagger 2.0, its
`definitions` through jsonschema) plus the Block Kit limits Slack enforces; the
sandbox-backed behaviour (one thread, updates, outages) is in
tests/integration/test_notify_report.py.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from keyresponse import slack
from keyresponse.action import StepContext
from keyresponse.actions.notify import Slack, SlackArgs, find_thread
from keyresponse.inventory import Inventory, LoadedInventory, Notify, SlackNotify
from keyresponse.journal import Incident
from keyresponse.report import digest, sample
from keyresponse.report import model as report_model
from tests.conftest import SPECS

SPEC_PATH = SPECS / "slack-web.openapi.json"
HOSTILE = "<!channel> <script>alert(1)</script> {{ 7*7 }} & <@U0BOSS>"


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return spec


def post_message_schema() -> dict[str, Any]:
    """chat.postMessage's form parameters as a JSON Schema; `blocks` as the array slack-sdk
    sends in its JSON body, checked against the spec's `blocks` definition."""
    spec = _spec()
    params = [p for p in spec["paths"]["/chat.postMessage"]["post"]["parameters"] if p["in"] == "formData"]
    props: dict[str, Any] = {p["name"]: {"type": p["type"]} for p in params}
    props["blocks"] = {"$ref": "#/definitions/blocks"}
    return {"type": "object", "properties": props, "additionalProperties": False,
            "required": [p["name"] for p in params if p.get("required")], "definitions": spec["definitions"]}


def check_payload(payload: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(post_message_schema()).validate(payload)
    blocks = payload.get("blocks") or []
    assert payload["text"].strip(), "a plain-text fallback is required"
    assert len(blocks) <= 50
    for b in blocks:
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and len(b["text"]["text"]) <= 150
        elif b["type"] == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert b["text"]["type"] in ("mrkdwn", "plain_text") and 0 < len(b["text"]["text"]) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(0 < len(f["text"]) <= 2000 for f in b.get("fields", []))
        elif b["type"] == "context":
            assert 0 < len(b["elements"]) <= 10
        else:
            pytest.fail(f"unexpected block type {b['type']}")


def all_texts(payload: dict[str, Any]) -> list[str]:
    out = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(payload.get("blocks"))
    return out


def assert_inert(payload: dict[str, Any]) -> None:
    """No Slack control sequence can survive: no raw < or >, and & only as an entity."""
    for text in all_texts(payload):
        assert "<" not in text and ">" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


def facts(event: str = "step", **kw: Any) -> dict[str, Any]:
    model = report_model.build(sample.records(**kw), incident_id="2024-05-20T0900Z-abcd")
    return digest.facts(model, event=event, report="/srv/ir/.keyresponse/incidents/x/report.html")


def test_escape_turns_slack_control_characters_into_entities() -> None:
    assert slack.escape("<!channel> & <@U1|x>") == "&lt;!channel&gt; &amp; &lt;@U1|x&gt;"
    assert slack.escape("a &amp; b") == "a &amp;amp; b"  # escaped once, literally
    assert slack.code("a`b") == "`a'b`"


def test_root_message_says_who_what_where_and_validates() -> None:
    msg = slack.root_message(facts())
    check_payload({"channel": "C0INCIDENT", **msg})
    assert_inert(msg)
    body = json.dumps(msg, ensure_ascii=False)
    for expected in ("CRITICAL", "chatbot-prod", "sk-proj-…a1b2", "proj_chatbot", "oncall on laptop-7", "leaked-key",
                     "old key proven dead", "targets 3/3 on the new key"):
        assert expected in body, expected
    assert msg["blocks"][0]["text"]["text"] == "Leaked API key · CRITICAL"
    assert "in progress" in msg["text"]


def test_hostile_names_ping_nobody_in_any_message() -> None:
    f = facts(key_name=HOSTILE)
    f["user"] = "<!here>"
    records = [{"key": "<!everyone>", "ok": False, "incident": "x", "problems": [HOSTILE], "steps": {"a": "failed"}}]
    for msg in (slack.root_message(f), slack.progress_reply(f, note=HOSTILE), slack.closing_reply(f, note=HOSTILE),
                slack.drill_message(records)):
        check_payload({"channel": "C1", **msg})
        assert_inert(msg)
    assert "&lt;!channel&gt;" in json.dumps(slack.root_message(f))
    assert "{{ 7*7 }}" in json.dumps(slack.progress_reply(f, note=HOSTILE))


def test_progress_reply_lists_finished_steps_and_failures() -> None:
    msg = slack.progress_reply(facts(fail_target=True), note="deploy finished")
    check_payload({"channel": "C1", "thread_ts": "1.000100", **msg})
    progress = msg["blocks"][1]["text"]["text"]
    assert ":white_check_mark: `revoke` key.revoke — applied (1.3s)" in progress
    assert ":x: `deploy` targets.deploy — failed" in progress and "1 of 3 targets failed" in progress
    assert "notify.slack" not in progress  # the thread does not narrate itself
    assert msg["text"] == "deploy finished — 3 step(s) done, failed: deploy"


def test_closing_reply_resolved_with_times_and_report_path() -> None:
    f = facts(event="closed")
    msg = slack.closing_reply(f)
    check_payload({"channel": "C1", "thread_ts": "1.000100", **msg})
    assert f["status"] == "resolved"
    body = json.dumps(msg, ensure_ascii=False)
    assert "Incident resolved" in body and "report.html" in body and "keyresponse report 2024-05-20T0900Z-abcd" in body
    assert f["time_to_contain"] == "3.1s" and f["cost"] == "$2,611.50" and f["targets"] == "3/3 on the new key"
    assert slack.root_message(f)["text"].endswith("resolved")


def test_closing_reply_needs_attention_names_the_problem() -> None:
    f = facts(event="closed", fail_target=True)
    assert f["status"] == "needs attention"
    body = json.dumps(slack.closing_reply(f), ensure_ascii=False)
    assert "GitLab variable acme/worker:OPENAI_API_KEY not updated" in body


def test_drill_message_pass_and_fail() -> None:
    ok = slack.drill_message([{"key": "chatbot-prod", "ok": True, "incident": "i1", "problems": [],
                               "steps": {"find": "planned", "open": "planned"}}])
    assert ok["text"] == "Drill passed: 1/1 key(s) ready"
    bad = slack.drill_message([
        {"key": "a", "ok": True, "steps": {"find": "planned"}},
        {"key": "b", "ok": False, "problems": ["deploy: token lacks secrets:write -> fix: use a token with it"],
         "steps": {"find": "planned", "deploy": "failed"}},
    ])
    check_payload({"channel": "C1", **bad})
    assert bad["text"] == "Drill failed: 1/2 key(s) ready; failing: b"
    assert "token lacks secrets:write" in json.dumps(bad)


def test_long_content_is_capped_below_slack_limits() -> None:
    f = facts()
    f["steps"] = [{"id": f"s{i}", "uses": "log.message", "status": "failed", "error": "x" * 500, "duration": 1.0}
                  for i in range(200)]
    check_payload({"channel": "C1", **slack.progress_reply(f)})


def test_client_uses_slack_sdk_retry_handlers() -> None:
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

    client = slack.client("token-for-test", "http://127.0.0.1:9/slack/api")
    assert any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers)
    assert any(isinstance(h, ConnectionErrorRetryHandler) for h in client.retry_handlers)
    assert client.base_url == "http://127.0.0.1:9/slack/api/"


def test_a_long_retry_after_is_not_waited_out(sandbox: object) -> None:
    """slack-sdk would sleep whatever Retry-After says; an incident gives up past the cap."""
    import time

    from slack_sdk.errors import SlackApiError

    sb: Any = sandbox
    sb.add_fault(service="slack", method="*", path="/chat.postMessage", kind="status", status=429,
                 retry_after=str(slack.RATE_LIMIT_CAP + 50), count=None)
    client = slack.client(sb.env["SLACK_BOT_TOKEN"], sb.urls["slack"])
    started = time.monotonic()
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="#incidents", text="hello")
    assert time.monotonic() - started < slack.RATE_LIMIT_CAP


# --- the action, without any Slack


def make_ctx(tmp_path: Path, notify: Notify, step_id: str = "open") -> StepContext:
    inv = LoadedInventory(Inventory(notify=notify), tmp_path / "keyresponse.yaml")
    incident = Incident.create(tmp_path / ".keyresponse")
    events: list[tuple[str, str]] = []
    given = dict(incident=incident, inventory=inv, inputs={}, key_name=None, step_id=step_id, attempt=1,
                 outputs={}, assume_yes=True, interactive=False, deadline=None,
                 _http=lambda *a: None, _emit=lambda kind, msg: events.append((kind, msg)), playbook_name="t")
    known = {f.name for f in dataclasses.fields(StepContext)}  # the engine's context grows; pass what it takes
    ctx = StepContext(**cast(dict[str, Any], {k: v for k, v in given.items() if k in known}))
    ctx.events = events  # type: ignore[attr-defined]
    return ctx


def test_not_configured_posts_nothing_and_a_drill_skips_the_check(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, Notify())
    action = Slack()
    plan = action.plan(SlackArgs(event="opened"), ctx)
    assert "not configured" in plan.summary
    assert all(c.ok for c in action.preflight(plan, ctx))
    drill = action.preflight(action.plan(SlackArgs(event="drill"), ctx), ctx)  # `keyresponse drill` warns
    assert all(c.ok for c in drill) and "not checked" in drill[0].detail
    out = action.apply(plan, ctx)
    assert out["ok"] is False and out["skipped"] is True
    assert not [r for r in ctx.incident.journal.records() if r["event"] == "step.warning"]


def test_unreachable_slack_warns_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_TOKEN", "test-token-" + "x" * 12)
    dead = SlackNotify(token_env="TEST_SLACK_TOKEN", channel="C0NOWHERE", base_url="http://127.0.0.1:9/api/")
    ctx = make_ctx(tmp_path, Notify(slack=dead))
    monkeypatch.setattr(slack, "client", lambda token, base_url, timeout=2, **_: _no_retry_client(token, base_url))
    action = Slack()
    plan = action.plan(SlackArgs(event="opened"), ctx)
    checks = action.preflight(plan, ctx)
    assert checks[0].ok and "unavailable" in checks[0].detail  # best effort: the response goes on
    drill = action.preflight(action.plan(SlackArgs(event="drill"), ctx), ctx)
    assert not drill[0].ok and drill[0].fix
    out = action.apply(plan, ctx)
    assert out["background"] and out["event"] == "opened"  # posted in a thread of its own
    from keyresponse.actions.notify import wait_for_root

    wait_for_root(ctx.incident.id)
    out = action.apply(action.plan(SlackArgs(event="step"), ctx), ctx)
    assert out["ok"] is False and out["error"] and out["event"] == "step"
    warnings = [r for r in ctx.incident.journal.records() if r["event"] == "step.warning"][:1]
    assert len(warnings) == 1 and "the response goes on" in warnings[0]["message"]


def test_missing_token_env_is_a_warning_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SLACK_TOKEN", raising=False)
    ctx = make_ctx(tmp_path, Notify(slack=SlackNotify(token_env="TEST_SLACK_TOKEN", channel="C1")))
    out = Slack().apply(Slack().plan(SlackArgs(event="step"), ctx), ctx)
    assert out["ok"] is False and "TEST_SLACK_TOKEN is not set" in out["error"]


def test_thread_is_found_whichever_step_journaled_it(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, Notify(slack=SlackNotify(token_env="TEST_SLACK_TOKEN", channel="#incidents")),
                   step_id="close")
    assert "start the incident thread in #incidents" in Slack().plan(SlackArgs(event="closed"), ctx).summary
    assert find_thread(ctx) is None
    ctx.incident.journal.append("step.note", step="open", note="slack.thread", channel="C1", ts="1.5")
    ctx.incident.journal.append("step.note", step="open", note="something.else", channel="C9", ts="9.9")
    assert find_thread(ctx) == ("C1", "1.5")
    assert "reply in thread 1.5" in Slack().plan(SlackArgs(event="closed"), ctx).summary


def _no_retry_client(token: str, base_url: str) -> Any:
    from slack_sdk import WebClient

    return WebClient(token=token, base_url=base_url, timeout=2, retry_handlers=[], logger=slack.QUIET)
