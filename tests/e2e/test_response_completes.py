"""A response that can complete must not be stopped by a read it can do without, and
one that cannot complete must be refused before anything changes. Through the CLI,
against the sandbox."""

from __future__ import annotations

import json
from typing import Any

from keyresponse.sandbox import seed
from tests.e2e.conftest import World, assert_restored


def _result(out: Any) -> dict[str, Any]:
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _statuses(result: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in result["steps"]}


def _report(world: World, result: dict[str, Any]) -> str:
    return (world.dir / ".keyresponse" / "incidents" / str(result["incident"]) / "report.md").read_text()


def test_an_unreadable_audit_log_does_not_stop_the_replacement(world: World) -> None:
    """Audit logging is opt-in: without it the old key's scopes cannot be copied, and the
    replacement is still minted and deployed (the plan and the report say so)."""
    world.sandbox.add_fault(service="openai", method="GET", path="/organization/audit_logs", kind="status",
                            status=403, count=None)
    plan = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--dry-run", "--json")
    planned = next(s for s in _result(plan)["steps"] if s["id"] == "issue")
    assert "scopes not copied" in json.dumps(planned), planned
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    result = _result(out)
    statuses = _statuses(result)
    assert {statuses[s] for s in ("revoke", "dead", "issue", "deploy", "live", "record")} == {"applied"}, \
        out.stdout[-3000:] + out.stderr[-3000:]
    assert_restored(world)
    assert "scopes not copied" in _report(world, result)
