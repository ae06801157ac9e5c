"""`keyresponse incidents` and `report`: looking back at incidents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from keyresponse.commands.common import load_config, open_incident
from keyresponse.errors import UsageError

if TYPE_CHECKING:
    from keyresponse.journal import Incident


def incidents(config: Path, json_output: bool, *, status: str | None = None, playbook: str | None = None,
              since: str | None = None, show_all: bool = False) -> int:
    from keyresponse.journal import Incident

    inventory = load_config(config, required=False)
    after = _since(since) if since is not None else None
    rows = []
    for incident in Incident.all(inventory.root / ".keyresponse"):
        r = incident.summary()
        if not show_all and (r["mode"] == "plan" or r["playbook"] == "drill"):
            continue  # plans and drills change nothing: listed with --all
        if status is not None and r["status"] != status:
            continue
        if playbook is not None and r["playbook"] != playbook:
            continue
        if after is not None and (r["started"] or "") < after:
            continue
        r["closure"] = _closure(incident)
        rows.append(r)
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no incidents" + ("" if show_all else " (plans and drills are listed with --all)"))
        return 0
    for r in rows:
        failed = [s for s, st in r["steps"].items() if st == "failed"]
        extra = f"  failed: {', '.join(failed)}" if failed else ""
        extra += f"  [{r['closure']}]" if r.get("closure") else ""
        print(f"{r['id']}  {r['status']:<11} {r['mode'] or '':<5} {r['playbook'] or '':<12} "
              f"key={r['key'] or '-'}{extra}")
    return 0


def _closure(incident: Incident) -> str | None:
    """The latest closure verdict (key.closure or `keyresponse verify`): closed / needs attention."""
    from keyresponse.actions.key_closure import latest

    found = latest(incident.journal.records())
    return str(found["status"]) if found else None


def _since(when: str) -> str:
    """`--since` as an ISO 8601 UTC timestamp to compare with the journal's: a date, a time, or an age."""
    import datetime as dt
    import re

    age = re.fullmatch(r"(\d+)([dhm])", when.strip())
    if age:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[age.group(2)]
        moment = dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(age.group(1))})
    else:
        try:
            moment = dt.datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--since {when!r}: not a date or an age",
                             hint="e.g. --since 2026-11-30, --since 2026-11-30T08:00Z, --since 7d or --since 12h") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def report(config: Path, incident_id: str, formats: list[str], open_report: bool) -> int:
    from keyresponse.report.render import render_incident

    inventory = load_config(config, required=False)
    incident = open_incident(inventory, incident_id)
    bad = [f for f in formats if f not in ("md", "html", "json")]
    if bad:
        raise UsageError(f"--format {bad[0]}: choose md, html or json")
    paths = render_incident(incident, inventory, formats=tuple(formats or ("md", "html", "json")))
    for fmt, path in paths.items():
        print(f"{fmt:<5} {path}")
    if open_report and "html" in paths:
        open_in_browser(Path(paths["html"]))
    return 0


def open_in_browser(path: Path) -> None:
    """Open `path` in a browser; where none can (a server, CI, a container), say where it is."""
    import sys
    import webbrowser

    try:
        opened = webbrowser.open(path.resolve().as_uri())
    except Exception:  # noqa: BLE001 - a browser that fails to start is only a missed convenience
        opened = False
    if not opened:
        sys.stderr.write(f"could not open a browser; the report is at {path.resolve()}\n")
