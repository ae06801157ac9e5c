"""The report model from a journal, and its Markdown, HTML and JSON renderings.

Journals are built by hand (report.sample: realistic step.finished records), so
each test picks its situation: finished, failed, cut short, hostile names,
half-shaped outputs. Assertions read content, never a stored copy.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from keyresponse.errors import ConfigError
from keyresponse.inventory import Inventory, LoadedInventory, ReportSettings
from keyresponse.journal import Incident
from keyresponse.report import model as report_model
from keyresponse.report import render, sample, svg, times
from keyresponse.secret import Secret

HOSTILE = "<script>alert(1)</script>{{ 7*7 }}|x*y*_z_ [l](javascript:alert(1))"
START = dt.datetime(2024, 5, 20, 9, 0, tzinfo=dt.UTC)


def build(**kw: Any) -> dict[str, Any]:
    return report_model.build(sample.records(**kw), incident_id="inc-1", incident_dir="/tmp/inc-1")


def md_tables(text: str) -> list[list[list[str]]]:
    """Every table as rows of cell texts, from markdown-it's tokens."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables: list[list[list[str]]] = []
    row: list[str] | None = None
    for i, tok in enumerate(tokens):
        if tok.type == "table_open":
            tables.append([])
        elif tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open"):
            inline = tokens[i + 1]
            assert row is not None
            row.append("".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
                       if inline.type == "inline" else "")
        elif tok.type == "tr_close":
            tables[-1].append(row or [])
    return tables


def assert_tables_well_formed(text: str) -> None:
    """Each table line has exactly as many unescaped pipes as its header (markdown-it would
    silently drop extra cells), and markdown-it sees the same number of cells in every row."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"(\| --- )+\|", line):
            width = _pipes(lines[i - 1])
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert _pipes(lines[j]) == width, lines[j]
                j += 1
    for table in md_tables(text):
        assert len({len(r) for r in table}) == 1, table


def _pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


# --- the model


def test_summary_times_and_sections_from_a_finished_incident() -> None:
    m = build()
    s = m["summary"]
    assert s["outcome"] == "resolved" and s["status"] == "succeeded" and s["severity"] == "critical"
    # opened 09:00:00; the dead probe finished 0.4+0.01+0.2+1.3+0.2+0.8 s later
    assert s["time_to_contain"] == pytest.approx(3.11, abs=0.01)
    assert s["time_to_restore"] == pytest.approx(0.2 + 1.1 + 0.2 + 4.5, abs=0.01)
    assert s["leaked_at"] == "2024-05-20T03:00:00Z" and s["exposure_window_text"] == "6h 00m"
    assert m["key"]["name"] == "chatbot-prod" and m["key"]["redacted_value"] == "sk-proj-…a1b2"
    assert m["containment"]["dead"] and m["containment"]["method"] == "delete_service_account"
    assert m["replacement"]["key_id"] == "key_new02" and m["replacement"]["probe_result"] == "live"
    assert m["targets"]["ok"] == 3 and m["targets"]["failed"] == 0 and m["targets"]["restored"]
    assert m["audit"]["estimated_cost_usd"] == 2611.5 and len(m["audit"]["anomalies"]) == 6
    assert m["audit"]["events"][0]["actor"] == "dev@acme.test"
    assert m["exposure"]["findings"][0]["location"] == "acme/chatbot:src/config.py"
    assert m["failures"] == []
    done = {a["title"]: a["done"] for a in m["action_items"]}
    assert done == {"Restrict the key's scope": False, "Keep keys out of code": False, "Monitor usage": True,
                    "Rotate on a schedule": False, "Add a pre-commit secret scan": False}
    assert any("anomalous hour" in n for n in m["next_steps"])


def test_timeline_has_every_journal_event_in_utc_with_durations() -> None:
    records = sample.records()
    m = report_model.build(records)
    assert len(m["timeline"]) == len(records)
    assert all(e["t"].endswith("Z") for e in m["timeline"])
    finished = [e for e in m["timeline"] if e["event"] == "step.finished"]
    assert finished[1]["step"] == "revoke" and finished[1]["duration_text"] == "1.3s"
    assert m["timeline"][0]["text"] == "opened by oncall@laptop-7: playbook leaked-key, key chatbot-prod, mode apply"


def test_failed_target_marks_the_incident_for_attention() -> None:
    m = build(fail_target=True)
    assert m["summary"]["outcome"] == "needs attention" and m["summary"]["restored_at"] is None
    assert m["summary"]["time_to_restore_text"] == "—"
    whats = [f["what"] for f in m["failures"]]
    assert "step deploy (targets.deploy) failed" in whats
    assert "target GitLab variable acme/worker:OPENAI_API_KEY not updated" in whats
    assert any(n.startswith("Finish the response") and "keyresponse resume inc-1" in n for n in m["next_steps"])


def test_unfinished_incident_and_empty_journal() -> None:
    records = sample.records(finished=False)
    records.append({"t": "2024-05-20T09:10:00Z", "event": "step.started", "step": "report", "uses": "report.render"})
    m = report_model.build(records)
    assert m["incident"]["status"] == "interrupted" and m["summary"]["outcome"] == "unfinished"
    assert m["steps"][-1]["status"] == "unfinished"
    assert report_model.build(records, running=True)["incident"]["status"] == "running"
    empty = report_model.build([])
    assert empty["incident"]["status"] == "unknown" and empty["summary"]["time_to_contain_text"] == "—"
    for fmt in ("md", "html", "json"):
        assert render.render(empty, fmt)


def test_failed_revoke_and_live_probe_say_the_key_is_still_live() -> None:
    records = [r for r in sample.records() if r.get("step") not in ("revoke", "dead")][:4]
    t = "2024-05-20T09:00:05.000Z"
    records += [
        {"t": t, "event": "step.started", "step": "revoke", "uses": "key.revoke", "attempt": 1},
        {"t": t, "event": "step.note", "step": "revoke", "note": "key.revoke.failed", "still_live": True},
        {"t": t, "event": "step.finished", "step": "revoke", "uses": "key.revoke", "status": "failed",
         "duration": 0.5, "outputs": {}, "error": "key_leak01 is STILL LIVE: revocation failed", "hint": "by hand"},
        {"t": t, "event": "step.started", "step": "dead", "uses": "key.probe", "attempt": 1},
        {"t": t, "event": "step.note", "step": "dead", "note": "key.probe.result", "result": "live",
         "expect": "dead", "method": "models", "detail": "200 from /models"},
        {"t": t, "event": "step.finished", "step": "dead", "uses": "key.probe", "status": "failed", "outputs": {},
         "error": "expected the key to be dead, it is live"},
        {"t": t, "event": "incident.finished", "status": "failed"},
    ]
    m = report_model.build(records)
    con = m["containment"]
    assert con["still_live"] and not con["dead"] and con["probe_result"] == "live"
    assert con["contained_at"] is None and m["summary"]["time_to_contain_text"] == "—"
    assert any("not proven dead" in n for n in m["next_steps"])
    md = render.render(m, "md")
    assert "**The leaked key is still live" in md
    assert 'class="alert"' in render.render(m, "html")


def test_rotation_restores_before_revoking_so_time_to_restore_is_zero() -> None:
    records = sample.records()
    order = {"issue": 0, "deploy": 1, "live": 2, "revoke": 3, "dead": 4}
    steps = [r for r in records if r.get("step") in order]
    steps.sort(key=lambda r: order[r["step"]])
    clock = START
    for r in steps:  # re-time them in rotate order
        clock += dt.timedelta(seconds=1)
        r["t"] = clock.isoformat().replace("+00:00", "Z")
    m = report_model.build([records[0], *steps])
    assert m["summary"]["time_to_restore"] == 0.0


def test_half_shaped_outputs_do_not_break_the_model() -> None:
    records = sample.records()
    for r in records:
        if r["event"] == "step.finished" and r["step"] == "deploy":
            r["outputs"] = {"targets": "not a list"}
        if r["event"] == "step.finished" and r["step"] == "audit":
            r["outputs"] = {"hourly": [{"hour": "garbage"}, 3], "totals": {"before": 1}, "events": [{"actor": None}]}
    m = report_model.build(records)
    assert m["targets"]["rows"] == [] and m["audit"]["totals"] == {}
    for fmt in ("md", "html", "json"):
        render.render(m, fmt)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                     max_leaves=12)
USES = ["key.find", "key.revoke", "key.probe", "key.issue", "key.audit", "targets.deploy", "exposure.scan",
        "notify.slack", "report.render"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(USES), st.sampled_from(["applied", "failed", None]),
                          st.dictionaries(st.sampled_from(["targets", "hourly", "result", "expect", "findings",
                                                           "models", "totals", "anomalies", "ok", "name",
                                                           "estimated_cost_usd", "leak_time"]), _json, max_size=5)),
                max_size=8))
def test_any_outputs_render_in_every_format(steps: list[tuple[str, str | None, dict[str, Any]]]) -> None:
    records: list[dict[str, Any]] = [{"t": "2024-05-20T09:00:00Z", "event": "incident.opened", "inputs": {}}]
    for i, (uses, status, outputs) in enumerate(steps):
        records.append({"t": "2024-05-20T09:00:01Z", "event": "step.started", "step": f"s{i}", "uses": uses})
        if status:
            records.append({"t": "2024-05-20T09:00:02Z", "event": "step.finished", "step": f"s{i}", "uses": uses,
                            "status": status, "outputs": outputs, "duration": 1})
    m = report_model.build(records)
    for fmt in ("md", "html", "json"):
        assert render.render(m, fmt)


# --- rendering


def test_markdown_tables_are_well_formed_and_hold_hostile_names_whole() -> None:
    text = render.render(build(key_name=HOSTILE), "md")
    assert_tables_well_formed(text)
    rows: dict[str, str] = {}
    for table in md_tables(text):
        for r in table:
            if len(r) == 2:
                rows.setdefault(r[0], r[1])
    assert rows["Name"] == HOSTILE  # one cell, the literal name: no split on |, no emphasis, no link
    assert rows["Time to contain"] == "3.1s" and rows["Severity"] == "critical"
    html = MarkdownIt("commonmark").enable("table").render(text)  # html=True: raw tags would pass through
    assert "<script" not in html and "javascript:" not in html.replace("(javascript:alert(1))", "")
    assert "<a " not in html and "<em>y</em>" not in html and "<em>z</em>" not in html
    assert "{{ 7*7 }}" in html and "49" not in text.split("## The leaked key")[1].split("##")[0]
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections == ["Summary", "The leaked key", "Containment", "Replacement", "Targets", "Usage audit",
                        "What else the attacker touched", "Exposure", "How it leaked", "What failed", "What to do next", "Action items", "Steps", "Timeline (UTC)"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_escaped_and_has_the_chart() -> None:
    text = render.render(build(key_name=HOSTILE), "html")
    parser = _Tags()
    parser.feed(text)
    names = [t for t, _ in parser.tags]
    assert "script" not in names and "link" not in names and "img" not in names
    assert not [a for _, a in parser.tags if any(str(v).startswith(("http:", "https:", "//")) for k, v in a.items()
                                                  if k in ("src", "href"))]
    assert HOSTILE in "".join(parser.text)  # shown literally, as text
    assert "{{ 7*7 }}" in text and "&lt;script&gt;" in text
    assert "Content-Security-Policy" in text and "<style>" in text and "@media print" in text
    assert names.count("svg") == 1
    assert text.count('class="bar anomalous"') == 6
    assert 'class="leak"' in text
    for section in ("summary", "key", "containment", "replacement", "targets", "audit", "exposure", "failures",
                    "next", "action-items", "steps", "timeline"):
        assert f'<section id="{section}">' in text


def test_json_is_the_model(tmp_path: Path) -> None:
    incident = Incident.create(tmp_path / ".keyresponse")
    sample.write(incident.journal.path, sample.records())
    paths = render.render_incident(incident, None, formats=("json",))
    data = json.loads(paths["json"].read_text())
    assert data["schema"] == "keyresponse.report/1" and data["incident"]["id"] == incident.id
    assert data["summary"]["outcome"] == "resolved" and data["incident"]["rendered_at"].endswith("Z")
    assert set(paths) == {"json"} and (paths["json"].stat().st_mode & 0o777) == 0o600


def test_no_secret_reaches_any_format_even_if_an_output_carried_it(tmp_path: Path) -> None:
    value = "sk-" + "proj-" + "reportsecret" + "Q" * 30
    Secret(value)  # registered with the redactor, as every live secret is
    records = sample.records()
    for r in records:  # a careless action put the value in an error text (the journal would redact it)
        if r["event"] == "step.finished" and r["step"] == "deploy":
            r["error"] = f"target said: bad key {value}"
    incident = Incident.create(tmp_path / ".keyresponse")
    sample.write(incident.journal.path, records)
    paths = render.render_incident(incident, None)
    for path in paths.values():
        content = path.read_text()
        assert value not in content and "…QQQQ" in content


def test_user_template_dir_overrides_and_is_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "report.md.j2").write_text("# {{ incident.id }}: {{ key.name }}\n{{ summary.outcome }}\n")
    inv = LoadedInventory(Inventory(report=ReportSettings(template_dir="tpl")), tmp_path / "keyresponse.yaml")
    incident = Incident.create(tmp_path / ".keyresponse")
    sample.write(incident.journal.path, sample.records(key_name=HOSTILE))
    paths = render.render_incident(incident, inv, formats=("md", "html"))
    md = paths["md"].read_text()
    assert md.startswith(f"# {incident.id}: &lt;script&gt;") and "resolved" in md  # still escaped
    assert "Usage audit" in paths["html"].read_text()  # html falls back to the built-in template
    (tmp_path / "tpl" / "report.md.j2").write_text("{{ incident.__class__.__mro__ }}")
    with pytest.raises(ConfigError, match="report template"):
        render.render_incident(incident, inv, formats=("md",))
    bad = LoadedInventory(Inventory(report=ReportSettings(template_dir="missing")), tmp_path / "keyresponse.yaml")
    with pytest.raises(ConfigError, match="not a folder"):
        render.render_incident(incident, bad)


@pytest.mark.parametrize("value, expected", [
    ("a|b", "a\\|b"), ("<b>&", "&lt;b&gt;&amp;"), ("*x*", "\\*x\\*"), ("proj_abc_def", "proj_abc_def"),
    ("_x_", "\\_x\\_"), ("# h", "\\# h"), ("1. item", "1\\. item"), ("3.0s", "3.0s"), ("+3m", "+3m"),
    ("- x", "\\- x"), ("line\nbreak", "line break"), ("[a](b)", "\\[a\\](b)"), (None, "—"),
])
def test_md_escape(value: Any, expected: str) -> None:
    assert render.md_escape(value) == expected


def test_chart_marks_anomalies_and_leak_and_escapes_titles() -> None:
    hourly = [{"hour": f"2024-05-20T{h:02d}:00:00Z", "requests": 10 * h, "input_tokens": 5, "output_tokens": 5,
               "anomalous": h >= 20} for h in range(24)]
    out = svg.usage_chart(hourly, leak_time="2024-05-20T19:30:00Z", title="<usage> & co")
    assert out.count('class="bar anomalous"') == 4 and out.count('class="bar"') == 20
    assert 'class="leak"' in out and "leak 2024-05-20 19:30:00 UTC" in out
    assert "<title>&lt;usage&gt; &amp; co</title>" in out
    assert "no hourly usage data" in svg.usage_chart([])
    assert 'class="leak"' not in svg.usage_chart(hourly, leak_time="2023-01-01T00:00:00Z")


def test_anomalous_hours_are_grouped_into_runs_and_estimate_the_leak_time() -> None:
    records = sample.records()
    records[0]["inputs"].pop("leaked_at")
    for r in records:
        if r["event"] == "step.finished" and r["step"] == "audit":
            r["outputs"]["leak_time"] = None
            r["outputs"]["anomalies"].append({"hour": "2024-05-19T10:00:00Z", "requests": 5, "tokens": 9, "score": 99})
    m = report_model.build(records)
    runs = m["audit"]["anomaly_runs"]
    assert [(r["start"], r["end"], r["hours"]) for r in runs] == [
        ("2024-05-19T10:00:00Z", "2024-05-19T10:00:00Z", 1), ("2024-05-20T03:00:00Z", "2024-05-20T08:00:00Z", 6)]
    assert runs[1]["requests"] == 1800 + 1837 + 1874 + 1911 + 1948 + 1800 and runs[0]["peak_score"] == 99
    assert m["summary"]["leaked_at"] == "2024-05-20T03:00:00Z"  # the first anomalous hour the audit reported
    assert m["summary"]["leaked_at_source"] == "first anomalous hour"
    md = render.render(m, "md")
    assert "(estimated: first anomalous hour)" in md and "| 2024-05-20 03:00:00 UTC | 2024-05-20 08:00:00 UTC | 6 |" in md
    assert_tables_well_formed(md)


def test_time_helpers() -> None:
    assert times.duration(4.25) == "4.2s" and times.duration(185) == "3m 05s" and times.duration(7620) == "2h 07m"
    assert times.duration(3 * 86400 + 7200) == "3d 2h" and times.duration(None) == "—"
    assert times.iso(1716195600) == "2024-05-20T09:00:00Z" and times.iso("2024-05-20T09:00:00+00:00") == "2024-05-20T09:00:00Z"
    assert times.parse("nonsense") is None and times.parse(True) is None
