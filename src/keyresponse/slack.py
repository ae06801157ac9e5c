"""Slack messages for an incident thread, and the client that posts them.

Every builder returns `{"text": ..., "blocks": [...]}`: Block Kit laid out for a
phone (short fields, two columns) and a plain `text` fallback for notifications
and old clients. Text that comes from config or a service passes `escape()`, so
a key named `<!channel>` shows as that text and pings nobody.
https://api.slack.com/reference/surfaces/formatting#escaping
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_sdk import WebClient

# slack-sdk logs an undecodable answer at ERROR; the action reports it once, as a warning.
QUIET = logging.getLogger("keyresponse.slack")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False

# Seconds between retries of a failed connection or a 5xx: None is slack-sdk's backoff
# with jitter (about 1 s, then 2 s). Tests set a small fixed value.
RETRY_INTERVAL: float | None = None

SECTION_LIMIT = 2900  # Slack refuses section text over 3000 characters
STATUS_ICON = {"in progress": ":hourglass_flowing_sand:", "resolved": ":white_check_mark:",
               "needs attention": ":warning:"}
STEP_ICON = {"applied": ":white_check_mark:", "failed": ":x:", "skipped": ":fast_forward:",
             "planned": ":memo:", "unfinished": ":hourglass_flowing_sand:"}


def escape(value: Any) -> str:
    """Slack's three control characters as entities; nothing else needs it."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(value: Any) -> str:
    """An inline code span that a backtick in the value cannot close early."""
    return "`" + escape(value).replace("`", "'") + "`" if value not in (None, "") else "—"


_CLIENT_CLASS: Any = None


def _redacting_client_class() -> Any:
    """WebClient whose every request body passes the redactor: whatever a message was
    built from (config, service answers, playbook text), no known secret reaches Slack."""
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        from slack_sdk import WebClient

        from keyresponse.secret import REDACTOR

        class RedactingWebClient(WebClient):
            def api_call(self, api_method: str, **kwargs: Any) -> Any:
                for field in ("json", "params", "data"):
                    if isinstance(kwargs.get(field), dict):
                        kwargs[field] = REDACTOR.redact_obj(kwargs[field])
                return super().api_call(api_method, **kwargs)

        _CLIENT_CLASS = RedactingWebClient
    return _CLIENT_CLASS


RATE_LIMIT_CAP = 10  # seconds


def client(token: str, base_url: str, *, timeout: int = 10, resend: bool = True) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries dropped connections.

    `resend=False` for a write that must not happen twice (the incident's root message):
    a dropped connection or a 5xx may come after Slack kept the message, so that client
    only waits out 429s (which Slack answers before doing anything) and leaves the
    rest to the caller, who looks before posting again."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )
    from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
    from slack_sdk.http_retry.handler import default_interval_calculator

    interval = (default_interval_calculator if RETRY_INTERVAL is None
                else FixedValueRetryIntervalCalculator(RETRY_INTERVAL))

    class CappedRateLimitHandler(RateLimitErrorRetryHandler):
        """slack-sdk sleeps whatever Retry-After says; an incident waits at most RATE_LIMIT_CAP."""

        def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            told = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
            try:
                wait = int(str(told[0] if isinstance(told, list) else told))
            except (TypeError, ValueError, IndexError):
                wait = 1
            return wait <= RATE_LIMIT_CAP
    made: WebClient = _redacting_client_class()(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",  # slack-sdk joins by concatenation
        timeout=timeout,
        logger=QUIET,
        retry_handlers=[
            CappedRateLimitHandler(max_retry_count=2),
            *([ConnectionErrorRetryHandler(max_retry_count=2, interval_calculator=interval),
               ServerErrorRetryHandler(max_retry_count=1, interval_calculator=interval)] if resend else []),
        ],
    )
    return made


def root_message(facts: dict[str, Any]) -> dict[str, Any]:
    """The thread's opening message; re-built and `chat.update`d as the incident moves."""
    status = facts["status"]
    severity = str(facts.get("severity") or "high").upper()
    key_label = facts.get("key_name") or "unknown key"
    fields = [
        ("Key", code(key_label) + (f" ({escape(facts['provider_name'])})"
                                   if facts.get("provider_name") and facts["provider_name"] != key_label else "")),
        ("Value", code(facts.get("redacted_value"))),
        ("Project", "organization admin key" if facts.get("admin_key") else code(facts.get("project"))),
        ("Severity", severity),
        ("Run by", f"{escape(facts.get('user') or 'unknown')} on {escape(facts.get('host') or 'unknown')}"),
        ("Playbook", escape(facts.get("playbook") or "—")),
    ]
    status_line = f"{STATUS_ICON.get(status, '')} *Status: {escape(status)}*"
    if facts.get("highlights"):
        status_line += "\n" + " · ".join(escape(h) for h in facts["highlights"])
    what = "Leaked admin key" if facts.get("admin_key") else "API key rotation" if facts.get("rotation") \
        else "Leaked API key"
    where = "an organization admin key" if facts.get("admin_key") \
        else f"in {escape(facts.get('project') or 'unknown project')}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{what} · {severity}", "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cap(status_line)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Incident {code(facts.get('incident_id'))} · "
                                          f"keyresponse · replies in the thread"}]},
    ]
    text = (f"[{severity}] {what} {escape(key_label)} ({escape(facts.get('redacted_value') or '—')}) "
            f"{where}: {escape(status)}")
    return {"text": text, "blocks": blocks}


def progress_reply(facts: dict[str, Any], note: str | None = None) -> dict[str, Any]:
    """A thread reply: the steps finished so far, and what they established."""
    lines = [_step_line(s) for s in facts.get("steps", [])] or ["No step has finished yet."]
    blocks: list[dict[str, Any]] = []
    if note:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cap(escape(note))}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cap("*Progress*\n" + "\n".join(lines))}})
    if facts.get("highlights"):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": _cap(" · ".join(escape(h) for h in facts["highlights"]))}]})
    done = sum(1 for s in facts.get("steps", []) if s["status"] in ("applied", "skipped"))
    failed = [s["id"] for s in facts.get("steps", []) if s["status"] == "failed"]
    text = (escape(note) + " — " if note else "") + f"{done} step(s) done"
    if failed:
        text += f", failed: {escape(', '.join(failed))}"
    return {"text": text, "blocks": blocks}


def step_reply(step: dict[str, Any], detail: str | None = None) -> dict[str, Any]:
    """A thread reply for one step that just finished, and what it established."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cap(_step_line(step))}}]
    if detail:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cap(escape(detail))}]})
    text = f"{escape(step['id'])} ({escape(step.get('uses') or '')}): {escape(step['status'])}"
    if step.get("error"):
        text += f": {escape(_short(step['error']))}"
    elif detail:
        text += f" — {escape(detail)}"
    return {"text": text, "blocks": blocks}


def closing_reply(facts: dict[str, Any], note: str | None = None) -> dict[str, Any]:
    """The last reply: outcome, times, what failed, and where the report is."""
    status = facts["status"]
    head = f"{STATUS_ICON.get(status, '')} *Incident {escape(status)}*"
    fields = [
        ("Time to contain", escape(facts.get("time_to_contain") or "—")),
        ("Time to restore", escape(facts.get("time_to_restore") or "—")),
        ("Targets", escape(facts.get("targets") or "—")),
        ("Estimated cost", escape(facts.get("cost") or "—")),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cap(head + (f"\n{escape(note)}" if note else ""))}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{n}*\n{v}"} for n, v in fields]},
    ]
    problems = facts.get("problems") or []
    if problems:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cap(
            "*Needs attention*\n" + "\n".join(f"• {escape(p)}" for p in problems))}})
    report = facts.get("report")
    where = f"Report: {code(report)}" if report else "No report was rendered in this run."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cap(
        f"{where} · re-render with {code('keyresponse report ' + str(facts.get('incident_id')))}")}]})
    text = f"Incident {escape(status)}" + (f": {len(problems)} problem(s)" if problems else "")
    if report:
        text += f". Report: {escape(report)}"
    return {"text": text, "blocks": blocks}


def drill_message(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A short pass/fail drill summary, one line per key drilled, with each problem's fix.

    `records` are drill results: `{key, ok, incident, problems: [str], steps: {id: status}}`."""
    passed = sum(1 for r in records if r.get("ok"))
    ok = bool(records) and passed == len(records)
    icon = ":white_check_mark:" if ok else ":x:"
    title = f"{icon} *Drill {'passed' if ok else 'FAILED'}*: {passed} of {len(records)} key(s) ready"
    lines = []
    for r in records:
        mark = ":white_check_mark:" if r.get("ok") else ":x:"
        steps = r.get("steps") or {}
        line = f"{mark} {code(r.get('key'))}: {sum(1 for v in steps.values() if v != 'failed')}/{len(steps)} steps ok"
        if r.get("incident"):
            line += f" (incident {code(r['incident'])})"
        lines.append(line)
        lines.extend(f"      • {escape(_short(str(p)))}" for p in (r.get("problems") or [])[:5])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": _cap(title)}}]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cap("\n".join(lines))}})
    failed = [str(r.get("key")) for r in records if not r.get("ok")]
    text = f"Drill {'passed' if ok else 'failed'}: {passed}/{len(records)} key(s) ready"
    if failed:
        text += f"; failing: {escape(', '.join(failed))}"
    return {"text": text, "blocks": blocks}


def post_drill_summary(inventory: Any, settings: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Post the drill summary to `settings.drill_channel` (or the incident channel).

    Raises the Slack or config error: `drills.post_summary` turns it into a warning."""
    token = inventory.credential(settings.token_env, "Slack drill summary")
    channel = settings.drill_channel or settings.channel
    resp = client(token, settings.base_url).chat_postMessage(channel=channel, **drill_message(records))
    return {"channel": resp["channel"], "ts": resp["ts"]}


def _step_line(s: dict[str, Any]) -> str:
    line = f"{STEP_ICON.get(s['status'], '•')} {code(s['id'])} {escape(s.get('uses') or '')} — {escape(s['status'])}"
    if s.get("duration_text"):
        line += f" ({escape(s['duration_text'])})"
    if s.get("error"):
        line += f": {escape(_short(s['error']))}"
    return line


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cap(text: str) -> str:
    return text if len(text) <= SECTION_LIMIT else text[: SECTION_LIMIT - 1] + "…"
