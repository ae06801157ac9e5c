"""notify.slack and report.render through the engine, against the sandbox over real HTTP.

Slack assertions read the sandbox's message log (what a channel would show),
never call lists. Every run's Slack messages, journal and report files are
searched for every secret value the run touched.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from keyresponse import registry, slack
from keyresponse.action import BaseAction, Plan, StepContext
from keyresponse.actions.notify import after_step
from keyresponse.engine import Engine, Mode, Reporter, RunResult
from keyresponse.inventory import load_inventory
from keyresponse.journal import Incident
from keyresponse.playbook import coerce_inputs, find, load_playbook
from keyresponse.secret import Secret
from keyresponse.slack import post_drill_summary
from tests.unit.test_report import assert_tables_well_formed
from tests.unit.test_slack_messages import assert_inert, check_payload

HOSTILE = "<!channel> <script>alert(1)</script> {{ 7*7 }}"
LOG_BOOK = """
- {id: open, uses: notify.slack, with: {event: opened, severity: critical}}
- {id: work, uses: log.message, with: {message: working}}
- {id: progress, uses: notify.slack, with: {event: step, text: "revoked & proven dead"}}
- {id: report, uses: report.render}
- {id: close, uses: notify.slack, with: {event: closed}}
"""


@pytest.fixture
def world(sandbox_config: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox's inventory in tmp_path (the working folder) and its credentials in the environment."""
    monkeypatch.setattr(slack, "RETRY_INTERVAL", 0.01)
    monkeypatch.chdir(sandbox_config.parent)
    return sandbox_config


class SlackAfterEachStep(Reporter):
    """What the engine's notify hook does: after each step, `notify.after_step`."""

    def __init__(self, engine_inventory: Any) -> None:
        self.inventory = engine_inventory
        self.incident: Incident | None = None

    def run_started(self, incident: Incident, *args: Any) -> None:
        self.incident = incident

    def step_finished(self, step: Any, result: Any) -> None:
        assert self.incident is not None
        after_step(self.incident, self.inventory, step.id, step.uses, result.status)


def run(config: Path, steps: str | None = None, inputs: dict[str, Any] | None = None, *, book: str | None = None,
        mode: Mode = Mode.APPLY, hook: bool = False, key: str | None = "chatbot-prod") -> RunResult:
    if book is None:
        path = config.parent / "book.yaml"
        path.write_text("name: t\ninputs: {leaked: {type: secret}}\nsteps:\n"
                        + textwrap.indent(textwrap.dedent(steps or ""), "  "))
    else:
        path = find(book, config.parent)
    pb = load_playbook(path)
    inventory = load_inventory(config)
    engine = Engine(inventory, mode=mode, assume_yes=True, reporter=SlackAfterEachStep(inventory) if hook else None)
    return engine.start(pb, coerce_inputs(pb, inputs or {}), key)


def thread(sandbox: Any, channel: str = "incidents") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one root message in the channel and its replies; fails if there is not exactly one root."""
    msgs = [m for m in sandbox.state.slack_messages if m["channel_name"] == channel]
    roots = [m for m in msgs if not m["thread_ts"]]
    assert len(roots) == 1, [m["text"] for m in roots]
    replies = [m for m in msgs if m["thread_ts"]]
    assert all(m["thread_ts"] == roots[0]["ts"] for m in replies)
    return roots[0], replies


def check_messages(sandbox: Any, *secrets: str) -> str:
    """Every message as Slack holds it validates against the spec, pings nobody and leaks nothing."""
    dump = ""
    for m in sandbox.state.slack_messages:
        for version in [*m["edits"], m]:
            payload = {"channel": m["channel"], "text": version["text"], "blocks": version["blocks"]}
            if m["thread_ts"]:
                payload["thread_ts"] = m["thread_ts"]
            check_payload(payload)
            assert_inert(payload)
            dump += json.dumps(payload, ensure_ascii=False)
    for value in secrets:
        assert value not in dump
    return dump


def incident_text(result: RunResult) -> str:
    return "".join(p.read_text() for p in result.incident.dir.iterdir() if p.is_file()) + repr(result.as_dict())


def warnings(result: RunResult) -> list[str]:
    return [r["message"] for r in result.incident.journal.records() if r["event"] == "step.warning"]


# --- the thread


def test_leaked_key_run_posts_one_thread_updated_to_resolved(world: Path, sandbox: Any) -> None:
    leaked = os.environ["CHATBOT_PROD_OPENAI_KEY"]
    result = run(world, book="leaked-key", inputs={"leaked": Secret(leaked), "severity": "critical"}, hook=True)
    assert result.ok, [(s.id, s.error) for s in result.steps]
    root, replies = thread(sandbox)
    assert root["edits"], "the root message is updated as steps finish"
    assert root["text"].startswith("[CRITICAL] Leaked API key chatbot-prod") and root["text"].endswith(": resolved")
    assert ":white_check_mark: *Status: resolved*" in json.dumps(root["blocks"], ensure_ascii=False)
    texts = [r["text"] for r in replies]
    for sid in ("revoke", "dead", "issue", "deploy", "live", "audit"):
        assert any(t.startswith(f"{sid} (") and ": applied" in t for t in texts), (sid, texts)
    assert "dead (key.probe): applied — old key proven dead" in texts
    assert texts[-1].startswith("Incident resolved. Report: ") and texts[-1].endswith("report.html")
    assert Path(texts[-1].rsplit(" ", 1)[-1]).is_file()

    new_value = (world.parent / "apps/chatbot/.env").read_text().split("OPENAI_API_KEY=", 1)[1].split()[0].strip("'\"")
    assert new_value and new_value != leaked
    secrets = (leaked, new_value, os.environ["SLACK_BOT_TOKEN"], os.environ["OPENAI_ADMIN_KEY"])
    check_messages(sandbox, *secrets)
    text = incident_text(result)
    for value in secrets:
        assert value not in text

    report = json.loads((result.incident.dir / "report.json").read_text())
    assert report["summary"]["outcome"] == "resolved" and report["containment"]["dead"]
    assert report["targets"]["ok"] == len(report["targets"]["rows"]) > 0
    assert all(n["ok"] for n in report["notifications"])
    assert_tables_well_formed((result.incident.dir / "report.md").read_text())
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart"' in (result.incident.dir / "report.html").read_text()


def test_explicit_step_events_reply_in_the_thread(world: Path, sandbox: Any) -> None:
    leaked = os.environ["CHATBOT_PROD_OPENAI_KEY"]
    result = run(world, LOG_BOOK, {"leaked": Secret(leaked)})
    assert result.ok and all(s.outputs.get("ok") for s in result.steps if s.uses == "notify.slack")
    root, replies = thread(sandbox)
    assert replies[0]["text"].startswith("revoked &amp; proven dead — ")
    assert replies[1]["text"].startswith("Incident resolved. Report: ")
    assert len(root["edits"]) == 2 and root["text"].endswith("resolved")
    assert "sk-proj-…" in root["text"]  # the leaked input's mask says which key, before key.find runs
    check_messages(sandbox, leaked, os.environ["SLACK_BOT_TOKEN"])
    opened = next(r for r in result.incident.journal.records() if r.get("note") == "slack.thread")
    assert opened["ts"] == root["ts"] and opened["channel"] == root["channel"]
    assert next(s for s in result.steps if s.id == "close").outputs["ts"] == root["ts"]


def test_opened_twice_and_resume_keep_one_thread(world: Path, sandbox: Any, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    result = run(world, f"""
        - {{id: open, uses: notify.slack, with: {{event: opened}}}}
        - {{id: reopen, uses: notify.slack, with: {{event: opened}}}}
        - {{id: flaky, uses: test.fail_once, with: {{marker: "{marker}"}}}}
        - {{id: close, uses: notify.slack, always: true, with: {{event: closed}}}}
        """)
    assert not result.ok
    root, replies = thread(sandbox)
    # the engine's reply for the failed step, then the closing reply
    assert root["text"].endswith("needs attention") and len(replies) == 2
    assert "flaky" in replies[0]["text"]

    again = Engine(load_inventory(world), mode=Mode.APPLY, assume_yes=True).resume(result.incident)
    assert again.ok
    root, replies = thread(sandbox)  # still exactly one root
    assert root["text"].endswith("resolved")
    assert replies[1]["text"].startswith("Incident needs attention: 1 problem(s)")
    assert replies[2]["text"].startswith("Incident resolved")


@pytest.mark.parametrize("kind", ["commit_then_drop", "commit_then_fail"])
def test_a_root_post_whose_answer_is_lost_is_found_not_posted_twice(world: Path, sandbox: Any, kind: str) -> None:
    """Slack keeps the first root message but its answer never arrives: the incident looks
    it up in the channel's history by its marker, and edits that one root to the end."""
    sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind=kind, count=1)
    leaked = os.environ["CHATBOT_PROD_OPENAI_KEY"]
    result = run(world, book="leaked-key", inputs={"leaked": Secret(leaked)}, hook=True)
    assert result.ok, [(s.id, s.error) for s in result.steps]
    root, replies = thread(sandbox)  # exactly one root, every reply in its thread
    assert root["text"].endswith(": resolved") and root["edits"], root["text"]
    assert replies and replies[-1]["text"].startswith("Incident resolved")
    opened = [r for r in result.incident.journal.records() if r.get("note") == "slack.thread"]
    assert [(r["channel"], r["ts"]) for r in opened] == [(root["channel"], root["ts"])]
    assert not warnings(result), warnings(result)
    check_messages(sandbox, leaked, os.environ["SLACK_BOT_TOKEN"])


def test_a_lost_root_is_found_by_a_later_step_from_the_journaled_intent(world: Path, sandbox: Any) -> None:
    """The root post lands, its answer is lost and the history cannot be read either: the
    intent stays journaled, and the next Slack step finds that root instead of posting one."""
    sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind="commit_then_drop", count=1)
    sandbox.add_fault(service="slack", path="/conversations.*", kind="status", status=503, count=1)
    result = run(world, """
        - {id: open, uses: notify.slack, with: {event: opened}}
        - {id: work, uses: log.message, with: {message: working}}
        - {id: close, uses: notify.slack, with: {event: closed}}
        """)
    assert result.ok and len(warnings(result)) == 1, warnings(result)
    assert "the response goes on" in warnings(result)[0]
    root, replies = thread(sandbox)
    assert root["text"].endswith(": resolved") and [r["text"][:17] for r in replies] == ["Incident resolved"]
    assert next(s for s in result.steps if s.id == "close").outputs["ts"] == root["ts"]


# --- Slack failing must not stop the response


def test_slack_outage_leaves_the_incident_successful_with_a_warning(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="slack", kind="status", status=503)
    result = run(world, LOG_BOOK)
    assert result.ok
    notify = [s for s in result.steps if s.uses == "notify.slack"]
    # the opening post goes out in the background: its step ends at once, its failure is a warning
    assert all(s.status == "applied" and s.outputs["ok"] is (s.outputs["event"] == "opened") for s in notify)
    assert len(warnings(result)) == 3 and all("the response goes on" in w for w in warnings(result))
    assert sandbox.state.slack_messages == []
    report = json.loads((result.incident.dir / "report.json").read_text())
    failed = [f["what"] for f in report["failures"]]
    assert "Slack notification failed (opened)" in failed and "Slack notification failed (step)" in failed
    md = (result.incident.dir / "report.md").read_text()
    assert "Slack was not told everything" in md


def test_bad_token_is_a_warning_not_a_failure(world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "wrong-token-" + "0" * 16)
    result = run(world, LOG_BOOK)
    assert result.ok
    assert "auth.test: invalid_auth" in result.steps[0].checks[0].detail
    assert any("chat.postMessage: invalid_auth" in w for w in warnings(result))
    assert "wrong-token-" not in incident_text(result)


def test_rate_limit_is_waited_out_without_duplicates(world: Path, sandbox: Any) -> None:
    sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind="status", status=429,
                      retry_after="0", count=1)
    result = run(world, LOG_BOOK)
    assert result.ok and not warnings(result)
    _root, replies = thread(sandbox)
    assert len(replies) == 2


# --- drills


def test_drill_event_preflight_fails_on_a_bad_token_and_passes_on_a_good_one(
        world: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    book = "- {id: slack, uses: notify.slack, with: {event: drill}}"
    good = run(world, book, mode=Mode.PLAN)
    assert good.ok and "token works as keyresponse" in good.steps[0].checks[0].detail
    monkeypatch.setenv("SLACK_BOT_TOKEN", "wrong-token-" + "0" * 16)
    bad = run(world, book, mode=Mode.PLAN)
    assert not bad.ok and "invalid_auth" in (bad.steps[0].error or "")
    assert sandbox.state.slack_messages == []  # a drill posts nothing while planning


def test_drill_summary_goes_to_the_drill_channel(world: Path, sandbox: Any) -> None:
    inventory = load_inventory(world)
    records = [{"key": "chatbot-prod", "ok": True, "incident": "i1", "problems": [], "steps": {"find": "planned"}},
               {"key": "analytics-dev", "ok": False, "incident": "i2",
                "problems": ["deploy: <!here> cannot write -> fix: grant it"], "steps": {"deploy": "failed"}}]
    out = post_drill_summary(inventory, inventory.model.notify.slack, records)
    (msg,) = [m for m in sandbox.state.slack_messages if m["channel_name"] == "keyresponse-drills"]
    assert out["ts"] == msg["ts"] and msg["text"] == "Drill failed: 1/2 key(s) ready; failing: analytics-dev"
    assert "&lt;!here&gt; cannot write" in json.dumps(msg["blocks"])
    check_messages(sandbox)


# --- hostile names from a service


class HostileFind(BaseAction):
    name = "key.find"
    summary = "test: a provider that names its key like an attacker would"

    def plan(self, args: Any, ctx: StepContext) -> Plan:
        return Plan(summary="find")

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        return {"key_id": "key_x", "project_id": "proj_x", "name": HOSTILE, "owner_type": "user",
                "owner_id": "user_<b>", "redacted_value": "sk-…zzzz", "created_at": None, "last_used_at": None}


def test_hostile_key_name_is_inert_in_slack_and_the_report(world: Path, sandbox: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._EXTRA, "key.find", HostileFind)
    result = run(world, """
        - {id: find, uses: key.find}
        - {id: open, uses: notify.slack, with: {event: opened}}
        - {id: report, uses: report.render}
        - {id: close, uses: notify.slack, with: {event: closed}}
        """)
    assert result.ok
    dump = check_messages(sandbox)
    assert "&lt;!channel&gt; &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in dump
    html = (result.incident.dir / "report.html").read_text()
    assert "<script" not in html and "&lt;!channel&gt; &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in html
    md = (result.incident.dir / "report.md").read_text()
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in rendered and "<!channel>" not in rendered and "{{ 7*7 }}" in rendered
