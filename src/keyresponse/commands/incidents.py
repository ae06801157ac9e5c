"""`keyresponse incidents` and `report`: looking back at incidents."""

from __future__ import annotations

import json
from pathlib import Path

from keyresponse.commands.common import load_config
from keyresponse.errors import UsageError


def incidents(config: Path, json_output: bool) -> int:
    from keyresponse.journal import Incident

    inventory = load_config(config, required=False)
    rows = [i.summary() for i in Incident.all(inventory.root / ".keyresponse")]
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no incidents yet")
        return 0
    for r in rows:
        failed = [s for s, st in r["steps"].items() if st == "failed"]
        extra = f"  failed: {', '.join(failed)}" if failed else ""
        print(f"{r['id']}  {r['status']:<11} {r['mode'] or '':<5} {r['playbook'] or '':<12} "
              f"key={r['key'] or '-'}{extra}")
    return 0


def report(config: Path, incident_id: str, formats: list[str], open_report: bool) -> int:
    from keyresponse.journal import Incident
    from keyresponse.report.render import render_incident

    inventory = load_config(config, required=False)
    incident = Incident.open(inventory.root / ".keyresponse", incident_id)
    bad = [f for f in formats if f not in ("md", "html", "json")]
    if bad:
        raise UsageError(f"--format {bad[0]}: choose md, html or json")
    paths = render_incident(incident, inventory, formats=tuple(formats or ("md", "html", "json")))
    for fmt, path in paths.items():
        print(f"{fmt:<5} {path}")
    if open_report and "html" in paths:
        import webbrowser

        webbrowser.open(Path(paths["html"]).resolve().as_uri())
    return 0
