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
    """The hunt, plus the blast radius key.audit measured (usage by category, cost per
    category, the project's stored resources), each checked for shape."""
    radius = _radius(steps)
    hunt = steps.last("key.hunt")
    if hunt is None:
        return {"ran": False, "status": None, "error": None, "findings": [], "flagged": [], "revoked": [],
                "revoke_failed": [], "to_review": None, **radius}
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
               hunted=hunt["outputs"].get("hunted") is not False,
               flagged=[f for f in findings if f.get("verdict") == "review"], revoked=revoked,
               revoke_failed=[r for r in _list(hunt["outputs"].get("revoke_failed")) if isinstance(r, dict)])
    if out["to_review"] is None:
        out["to_review"] = len(out["flagged"])
    out.update(radius)
    return out


def next_steps(hunt: dict[str, Any]) -> list[str]:
    """What the hunt leaves to a person: a key or account the attacker may have made that
    is still live, and a key re-scoped in the window, which is the one kind of project key
    a leaked (admin) key could have turned to its use without minting it: offered for
    rotation."""
    out: list[str] = []
    for f in hunt.get("flagged") or []:
        obj, kind, at = f.get("object") or "?", f.get("object_kind") or "object", f.get("at") or "?"
        if f.get("type") == "api_key.updated":
            how = "rotate it: keyresponse rotate --key NAME for the inventory entry that names it"
            out.append(f"Key {obj} was changed at {at} by {f.get('actor') or 'an unknown actor'}"
                       f"{' (' + f['detail'] + ')' if f.get('detail') else ''}: its holder may have widened it; {how}.")
        elif f.get("revocable") and not f.get("revoked"):
            out.append(f"The {kind} {obj}, made at {at} in the leak window, is still live: revoke it in the "
                       "provider's dashboard, or set `hunt: {revoke: auto}` and resume.")
    return out


def _radius(steps: Steps) -> dict[str, Any]:
    audit = steps.last("key.audit")
    outputs: dict[str, Any] = audit["outputs"] if audit else {}
    usage = outputs.get("usage_by_category")
    categories = {str(k): v for k, v in usage.items() if isinstance(v, dict)} if isinstance(usage, dict) else {}
    costs = outputs.get("cost_by_category")
    resources = outputs.get("resources")
    return {
        "usage_by_category": {k: v for k, v in categories.items() if v.get("used")},
        "unused_categories": sorted(k for k, v in categories.items() if not v.get("used")),
        "cost_by_category": {str(k): v for k, v in costs.items() if isinstance(v, (int, float))}
        if isinstance(costs, dict) else {},
        "resources": [r for r in resources if isinstance(r, dict)] if isinstance(resources, list) else None,
        "resources_since": outputs.get("resources_since") if isinstance(outputs.get("resources_since"), str) else None,
        "radius_notes": [str(n) for n in _list(outputs.get("radius_notes"))],
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
