"""`keyresponse verify ID`: check an incident's closure again, from the usage data now.

Reads only (the client refuses anything but GET). The verdict is journaled as the
incident's latest `closure` record and the report is rendered again with it.
Exit code 0 when closed, 1 when it needs attention.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.commands.common import load_config, open_incident
from keyresponse.errors import UsageError

if TYPE_CHECKING:
    import httpx


def verify(config: Path, incident_id: str, json_output: bool) -> int:
    from keyresponse import http
    from keyresponse.actions import key_closure
    from keyresponse.actions.key_common import connect, provider_settings
    from keyresponse.report.render import render_incident

    inventory = load_config(config, required=False)
    incident = open_incident(inventory, incident_id)
    if incident.is_locked():
        raise UsageError(f"incident {incident.id} is running", hint="verify it once the run has ended")
    records = list(incident.journal.records())
    opened: dict[str, Any] = next((r for r in records if r["event"] == "incident.opened"), {})
    if inventory.path is None and opened.get("inventory"):
        inventory = load_config(Path(opened["inventory"]))
    entry = inventory.model.keys.get(opened.get("key")) if opened.get("key") else None
    _, cfg = provider_settings(inventory, entry.provider if entry else None)
    clients: list[httpx.Client] = []

    def client(service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
        clients.append(http.build_client(service, base_url, headers, read_only=True))
        return clients[-1]

    try:
        result = key_closure.check(connect(inventory, cfg, client), key_closure.gather(records), via="verify")
    finally:
        for c in clients:
            c.close()
    incident.journal.append("closure", **result)
    render_incident(incident, inventory)
    if json_output:
        print(json.dumps(result, indent=2))
    else:
        print(f"incident {incident.id}: {key_closure.line(result)}")
    return 0 if result["status"] == key_closure.CLOSED else 1
