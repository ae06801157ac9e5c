"""The report's "What else the attacker touched": key.hunt's findings and revokes.

Like the rest of the model it reads the journal alone. A hunt cut short still shows
what it revoked: each revoke is journaled as a note before the step finishes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyresponse.report.model import Steps

_SCALARS = ("scope", "window_start", "window_end", "window_from", "revoke", "to_review", "by_leaked_key")


def section(steps: Steps) -> dict[str, Any]:
    hunt = steps.last("key.hunt")
    if hunt is None:
        return {"ran": False, "status": None, "error": None, "findings": [], "flagged": [], "revoked": [],
                "revoke_failed": [], "to_review": None}
    out: dict[str, Any] = {k: hunt["outputs"].get(k) for k in _SCALARS}
    findings = [f for f in _list(hunt["outputs"].get("findings")) if isinstance(f, dict)]
    revoked = [r for r in _list(hunt["outputs"].get("revoked")) if isinstance(r, dict)]
    if not revoked:  # the step did not finish: its notes say what it revoked before it stopped
        revoked = [{"id": n.get("id"), "kind": n.get("kind"), "already_gone": n.get("already_gone")}
                   for n in hunt["notes"] if n.get("note") == "key.hunt.revoked"]
    done = {str(r.get("id")) for r in revoked}
    for f in findings:
        f["revoked"] = bool(f.get("revoked")) or str(f.get("object")) in done
    out.update(ran=True, status=hunt["status"], error=hunt["error"], findings=findings,
               flagged=[f for f in findings if f.get("verdict") == "review"], revoked=revoked,
               revoke_failed=[r for r in _list(hunt["outputs"].get("revoke_failed")) if isinstance(r, dict)])
    if out["to_review"] is None:
        out["to_review"] = len(out["flagged"])
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
