"""OpenAI audit-log event objects, shaped like components/schemas/AuditLog."""

from __future__ import annotations

import time
from typing import Any


def session_actor(user: dict[str, Any], ip: str) -> dict[str, Any]:
    return {
        "type": "session",
        "session": {"user": {"id": user["id"], "email": user["email"]}, "ip_address": ip},
    }


def admin_key_actor(admin_key: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "api_key",
        "api_key": {
            "id": admin_key["id"],
            "type": "user",
            "user": {"id": owner["id"], "email": owner["email"]},
        },
    }


def event(
    event_id: str,
    event_type: str,
    effective_at: int,
    actor: dict[str, Any],
    details: dict[str, Any],
    project: dict[str, Any] | None = None,
) -> dict[str, Any]:
    day = time.strftime("%Y%m%d", time.gmtime(effective_at))
    out: dict[str, Any] = {
        "id": f"audit_log-{event_id}_{day}",
        "type": event_type,
        "effective_at": effective_at,
        "actor": actor,
        event_type: details,
    }
    if project is not None:
        out["project"] = {"id": project["id"], "name": project["name"]}
    return out
