"""`keyresponse drill`: prove, changing nothing, that a response would work today.

Each drill runs the `drill` playbook (plan + preflight only) for one key, turns
every failed check into one line that says how to fix it, and keeps the result
in `.keyresponse/drills/` so `--history` can show pass/fail over time and flag
keys whose drill has not passed recently.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from keyresponse.engine import Engine, Mode, Reporter, RunResult
from keyresponse.journal import utcnow, write_private


def problems_of(result: RunResult) -> list[str]:
    """One line per problem: the step, what failed, and the fix."""
    lines: list[str] = []
    for step in result.steps:
        if step.status != "failed":
            continue
        failed = [c for c in step.checks if not c.ok]
        if failed:
            for c in failed:
                line = f"{step.id}: {c.what}" + (f": {c.detail}" if c.detail else "")
                lines.append(line + (f" -> fix: {c.fix}" if c.fix else ""))
        else:
            lines.append(f"{step.id}: {step.error}" + (f" -> fix: {step.hint}" if step.hint else ""))
    return lines


def drill_key(inventory: Any, key_name: str, reporter: Reporter, playbook_name: str = "drill") -> dict[str, Any]:
    from keyresponse import playbook as pbmod

    book = pbmod.load_playbook(pbmod.find(playbook_name, inventory.root))
    inputs = pbmod.coerce_inputs(book, {"key": key_name} if "key" in book.model.inputs else {})
    result = Engine(inventory, mode=Mode.PLAN, reporter=reporter).start(book, inputs, key_name)
    record = {
        "key": key_name,
        "at": utcnow(),
        "ok": result.ok,
        "incident": result.incident.id,
        "problems": problems_of(result),
        "steps": {s.id: s.status for s in result.steps},
    }
    _save(inventory.root / ".keyresponse" / "drills", record)
    return record


def _save(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{record['at'].replace(':', '').replace('.', '')}-{record['key']}.json"
    write_private(folder / name, json.dumps(record, indent=2).encode("utf-8"))


def history(root: Path) -> list[dict[str, Any]]:
    folder = root / ".keyresponse" / "drills"
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda r: r["at"])


def stale_keys(inventory: Any, records: list[dict[str, Any]], days: int,
               now: dt.datetime | None = None) -> dict[str, str | None]:
    """Keys whose drill has not passed within `days` days -> the last pass (or None)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    last_pass: dict[str, str] = {}
    for r in records:
        if r.get("ok"):
            last_pass[r["key"]] = max(last_pass.get(r["key"], ""), r["at"])
    stale: dict[str, str | None] = {}
    for name in inventory.model.keys:
        when = last_pass.get(name)
        if when is None:
            stale[name] = None
            continue
        passed = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        if now - passed > dt.timedelta(days=days):
            stale[name] = when
    return stale


def post_summary(inventory: Any, records: list[dict[str, Any]]) -> str | None:
    """Post the pass/fail summary to the drill channel, if one is set; a warning on failure."""
    slack = inventory.model.notify.slack
    if slack is None or not slack.drill_channel:
        return None
    try:
        from keyresponse.slack import post_drill_summary
    except ImportError:
        return "Slack drill summary is not available in this build"
    try:
        post_drill_summary(inventory, slack, records)
    except Exception as exc:  # noqa: BLE001 - a drill summary must never fail the drill
        from keyresponse.secret import redact

        return redact(f"could not post the drill summary to Slack: {exc}")
    return None
