"""The `key.closure` action, and `keyresponse verify ID` later: proof from the usage
data that the leak is closed.

Three facts, each with its figures and time window:

- the leaked key's accepted requests since the first whole minute after the revoke
  (must be zero: anything else means the revoke did not take);
- the replacement's requests since it was deployed (it is in use: the consumers moved);
- the leaked key's `last_used_at` as the issuer lists it (while it still lists it).

The incident is `closed` only when they hold; otherwise `needs attention`, with the
reasons. Every check is a read; the verdict is journaled as a `closure` record, the
latest of which `keyresponse incidents` and the report's closure section show.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keyresponse.action import Check, NoArgs, Plan, StepContext
from keyresponse.actions.key_common import failed, held_in, provider_for
from keyresponse.errors import KeyresponseError, ProviderError
from keyresponse.providers.base import KeyRecord, epoch, iso

if TYPE_CHECKING:
    from keyresponse.providers.base import Provider

MINUTE = 60
CLOSED, ATTENTION = "closed", "needs attention"


@dataclass
class Facts:
    """What the journal says the closure is about."""

    leaked: KeyRecord | None = None
    revoked_at: int | None = None
    replacement: KeyRecord | None = None
    deployed_at: int | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)


def gather(records: Iterable[dict[str, Any]]) -> Facts:
    """The leaked key, its revoke time, the replacement and its deploy, from an incident's journal."""
    records = list(records)
    facts = Facts()
    uses: dict[str, str] = {}
    for r in records:
        if r.get("event") == "step.started":
            uses[str(r.get("step"))] = str(r.get("uses") or "")
        if r.get("event") != "step.finished" or r.get("status") != "applied":
            continue
        raw = r.get("outputs")
        out: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = uses.get(str(r.get("step")), str(r.get("uses") or ""))
        if kind in ("key.find", "key.revoke") and out.get("key_id"):
            facts.leaked = KeyRecord.from_outputs(out)
            if kind == "key.revoke":
                facts.revoked_at = epoch(out.get("revoked_at")) or epoch(out.get("revoked_first_at")) \
                    or epoch(r.get("t"))
        elif kind == "key.issue" and out.get("issued") and out.get("key_id"):
            facts.replacement = KeyRecord(key_id=str(out["key_id"]), project_id=str(out.get("project_id") or ""),
                                          name=str(out.get("name") or ""))
        elif kind == "targets.deploy":
            facts.deployed_at = epoch(r.get("t"))
    held = held_in(records)
    names = {str(n.get("target_id") or n.get("target")): str(n.get("target")) for n in records
             if n.get("event") == "step.note" and n.get("note") == "target"}
    facts.targets = [{"target": names.get(t, t), "holds": sorted(m)} for t, m in sorted(held.items())]
    return facts


def check(provider: Provider, facts: Facts, *, via: str) -> dict[str, Any]:
    """The verdict, read from the issuer now."""
    reasons: list[str] = []
    alarms: list[str] = []  # the ones that say the leak may still be open (not "too soon to tell")
    result: dict[str, Any] = {"checked_at": iso(time.time()), "via": via, "leaked": None, "replacement": None,
                              "last_used_at": None, "targets": facts.targets}
    leaked = facts.leaked
    if leaked is None:
        return {**result, "status": ATTENTION, "reasons": ["the journal names no leaked key"]}
    if facts.revoked_at is None:
        reasons.append("the journal holds no revoke of the leaked key: it may still be live")
    else:
        after = -(-facts.revoked_at // MINUTE) * MINUTE  # the minute of the revoke holds requests from before it
        seen = _minutes(provider, leaked, after)
        if seen is None:
            reasons.append(f"{provider.title} cannot count the leaked key's requests by the minute")
        else:
            accepted, until = seen
            result["leaked"] = {"key_id": leaked.key_id, "revoked_at": iso(facts.revoked_at), "from": iso(after),
                                "to": iso(until), "accepted": accepted}
            if accepted:
                alarms.append(f"{accepted} requests were accepted on the leaked key {leaked.key_id} after the "
                               f"revoke ({iso(after)} to {iso(until)}): the revoke did not take")
            elif until <= after:
                reasons.append("no whole minute has passed since the revoke yet: run `keyresponse verify ID` "
                               "again in a few minutes")
    if facts.replacement is not None:
        since = (facts.deployed_at or facts.revoked_at or int(time.time())) // MINUTE * MINUTE
        seen = _minutes(provider, facts.replacement, since)
        if seen is None:
            reasons.append(f"{provider.title} cannot count the replacement's requests by the minute")
        else:
            used, until = seen
            result["replacement"] = {"key_id": facts.replacement.key_id, "from": iso(since), "to": iso(until),
                                     "requests": used}
            if not used:
                reasons.append(f"nothing has used the replacement {facts.replacement.key_id} since it was deployed "
                               f"({iso(since)} to {iso(until)}): its consumers may not have picked it up")
    else:
        reasons.append("no replacement was issued in this incident")
    try:
        listed = provider.get_key(leaked.project_id, leaked.key_id) if leaked.project_id else None
    except KeyresponseError:
        listed = None
    last = (listed or leaked).last_used_at
    result["last_used_at"] = iso(last)
    result["still_listed"] = listed is not None
    if listed is not None:
        alarms.append(f"{provider.title} still lists the leaked key {leaked.key_id}")
    if last is not None and facts.revoked_at is not None and last >= facts.revoked_at + MINUTE:
        alarms.append(f"the leaked key was last used at {iso(last)}, after the revoke")
    reasons = alarms + reasons
    return {**result, "status": ATTENTION if reasons else CLOSED, "reasons": reasons, "alarms": alarms}


def _minutes(provider: Provider, key: KeyRecord, start: int) -> tuple[int, int] | None:
    """(requests since `start`, end of the window read); None when the issuer cannot count."""
    try:
        seen = provider.minute_usage(key, start)
    except ProviderError as exc:
        if exc.status == 400:  # `start` is the issuer's now or later: an empty window
            return 0, start
        raise
    if seen is None:
        return None
    return seen.since(start), seen.end


def line(result: dict[str, Any]) -> str:
    """One line for the terminal and Slack."""
    parts = [f"closure: {result['status']}"]
    if result.get("leaked"):
        lk = result["leaked"]
        parts.append(f"leaked key: {lk['accepted']} accepted requests after the revoke ({lk['from']} to {lk['to']})")
    if result.get("replacement"):
        rp = result["replacement"]
        parts.append(f"replacement: {rp['requests']} requests since {rp['from']}")
    return "; ".join(parts) + (f" — {'; '.join(result['reasons'])}" if result.get("reasons") else "")


class Closure:
    name = "key.closure"
    summary = ("Prove the leak is closed from the usage data: zero accepted requests on the leaked key after the "
               "revoke, the replacement in use, its last_used_at; marks the incident closed or needs attention.")
    With = NoArgs

    def plan(self, args: NoArgs, ctx: StepContext) -> Plan:
        return Plan(summary="read the leaked key's and the replacement's usage by minute since the revoke")

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        try:
            return [Check("the admin key can read usage by minute", True, provider_for(ctx).preflight())]
        except KeyresponseError as exc:
            return failed("the admin key can read usage by minute", exc)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        result = check(provider_for(ctx), gather(ctx.incident.journal.records()), via=f"step {ctx.step_id}")
        ctx.incident.journal.append("closure", step=ctx.step_id, **result)
        ctx.progress(line(result))
        # a revoke that did not take is a warning; "too soon to tell" is only the verdict
        if result["alarms"]:
            ctx.warn(f"closure: needs attention: {'; '.join(result['alarms'])} "
                     f"(`keyresponse verify {ctx.incident.id}` checks again)")
        return result


def latest(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The incident's latest closure verdict (key.closure or `verify`), or None."""
    found = None
    for r in records:
        if r.get("event") == "closure":
            found = r
    return found
