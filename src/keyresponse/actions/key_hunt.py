"""The `key.hunt` action: what the attacker left to get back in.

It reads the organization's audit log over the exposure window — from the reported
leak time, else the earliest estimate the incident has (an exposure finding's first
sighting, the audit's first anomalous hour), else `days` back — to now, for every
event that could be a way back in: keys and service accounts created, keys updated
(un-restricted), invites sent and accepted, users added or their role changed,
projects created, rate limits and certificates changed. Each gets a verdict:

    made by this incident   our own mints, from the journal: never flagged
    trusted                 its actor is in the inventory's `hunt.trusted_actors`
    review                  anything else (`by_leaked_key` when the leaked key did it)

`scope: project` reads the leaked key's project, plus whatever the leaked key did
anywhere; `scope: organization` the whole organization (the admin-key playbook).
`revoke: ask|never|auto` (default: the inventory's, else never) revokes the flagged
keys and service accounts: `ask` with the run's approval (the one prompt, or --yes),
`auto` without asking. Without any leak time (reported or estimated) the window is a
guess, and only what the leaked key itself made is revoked; the rest is listed. Each revoke is journaled before and after; a resumed run
revokes again what was not confirmed, and an object already gone counts as done.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from keyresponse.action import Check, Plan, StepContext, With
from keyresponse.actions.key_common import known_record, provider_for, resolve
from keyresponse.errors import KeyresponseError
from keyresponse.providers.base import AuditEvent, Hunting, KeyRecord, epoch, iso

HOUR = 3600
MARGIN = HOUR  # an estimate of the leak (an anomalous hour, a first sighting) is read from an hour before it

# event type -> what it makes or changes
ADMIN_KEY_CREATED = "tenant.admin_api_key.created"  # the audit log's event for a new organization admin key
HUNT_TYPES: dict[str, str] = {
    "api_key.created": "API key created",
    "api_key.updated": "API key changed (restrictions)",
    "service_account.created": "service account created",
    "service_account.updated": "service account changed (role)",
    "invite.sent": "invite sent",
    "invite.accepted": "invite accepted",
    "user.added": "user added",
    "user.updated": "user's role changed",
    "project.created": "project created",
    "rate_limit.updated": "rate limit changed",
    "certificate.created": "certificate added",
    "certificate.updated": "certificate changed",
    "certificates.activated": "certificates activated",
    "certificates.deactivated": "certificates deactivated",
    ADMIN_KEY_CREATED: "admin API key created",
}
REVOCABLE = ("api_key.created", "service_account.created")  # and admin keys, in an organization-wide hunt
OURS, TRUSTED, REVIEW = "made by this incident", "trusted", "review"
# journal notes that name what this incident minted (or found it had minted)
OWN_NOTES = ("key.issue.minted", "key.issue.orphans_revoked", "key.issue.kept", "key.retire.revoked",
             "admin_key.orphans_revoked")


class HuntArgs(With):
    scope: Literal["project", "organization"] = "project"
    revoke: Literal["ask", "never", "auto"] | None = None  # default: the inventory's `hunt.revoke`, else never
    leaked_at: str | int | None = None  # default: the `leaked_at` input, else the incident's estimates
    days: int = Field(30, ge=1, le=365)  # how far back without any estimate
    # whose actions are the attacker's: default the leaked key; may be an earlier step's output
    # (`${{ steps.find.outputs.key_id }}`), a placeholder until that step has run
    actor_key_id: Any = None
    actors: list[str] = Field(default_factory=list)  # more actor ids (a leaked key's user, an admin key)
    trusted_actors: list[str] = Field(default_factory=list)  # besides the inventory's
    key_id: str | None = None


@dataclass
class _HuntWork:
    args: HuntArgs
    mode: str
    trusted: set[str] = field(default_factory=set)


class Hunt:
    name = "key.hunt"
    summary = ("Read the audit log over the exposure window for ways back in (keys, service accounts, invites, "
               "role changes, projects, rate limits, certificates); flag what this incident and trusted actors "
               "did not do, and optionally revoke the flagged keys and service accounts.")
    With = HuntArgs

    def plan(self, args: HuntArgs, ctx: StepContext) -> Plan:
        settings = [ctx.inventory.model.hunt, *([ctx.key.hunt] if ctx.key and ctx.key.hunt else [])]
        mode = args.revoke or next((s.revoke for s in reversed(settings) if s.revoke), None) or "never"
        trusted = {a for s in settings for a in s.trusted_actors} | set(args.trusted_actors)
        what = "the organization" if args.scope == "organization" else "the key's project and the key's own actions"
        then = {"never": "list them for review", "ask": "revoke the flagged keys and service accounts (approved once "
                "for the run)", "auto": "revoke the flagged keys and service accounts"}[mode]
        return Plan(summary=f"hunt the audit log of {what} over the exposure window for ways back in; {then}",
                    data=_HuntWork(args, mode, trusted), destructive=mode == "ask")

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        """Read-only: when the hunt may revoke, the hunt itself (the key known without a
        lookup), so that a dry run and the prompt show what would be revoked."""
        work: _HuntWork = plan.data
        try:
            provider = provider_for(ctx)
        except KeyresponseError as exc:
            return [Check("the admin key can read the audit log", False, exc.message, exc.hint)]
        if not isinstance(provider, Hunting):
            return [Check("the provider can hunt", False, f"{provider.title} offers no audit-log hunt",
                          blocking=False)]
        rec = _known(ctx, work.args)
        if rec is None or work.mode == "never":
            # listing only: nothing to show the prompt, and no read before the revoke that contains the leak
            return [Check("the provider can hunt", True, "the audit log is read when the step runs")]
        try:
            found = _hunt(ctx, provider, work, rec)
        except KeyresponseError as exc:
            return [Check("the admin key can read the audit log", False, exc.message, exc.hint)]
        flagged = [f for f in found["findings"] if f["verdict"] == REVIEW]
        checks = [Check("the audit log is readable", True,
                        f"{len(found['findings'])} event(s) since {found['window_start']}, {len(flagged)} to review")]
        for f in flagged:
            line = f"{f['type']} {f['object']} by {f['actor']} at {f['at']}"
            if f["revocable"] and work.mode != "never":
                plan.changes.append(f"revoke {f['object_kind']} {f['object']} ({f['type']} by {f['actor']})")
                line += ": would be revoked"
            checks.append(Check(f"review: {line}", True))
        return checks

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: _HuntWork = plan.data
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            if not isinstance(provider, Hunting):  # nothing to hunt with: said, not a failed response
                ctx.warn(f"{provider.title} offers no audit-log hunt: check its audit log by hand for keys, "
                         "accounts and invites made since the leak")
                return {"hunted": False, "findings": [], "to_review": None, "revoked": [], "revoke_failed": []}
            rec = _named(work.args) or resolve(ctx, work.args.key_id, provider=provider)
            out = _hunt(ctx, provider, work, rec)
            flagged = [f for f in out["findings"] if f["verdict"] == REVIEW]
            ctx.progress(f"{len(out['findings'])} event(s) since {out['window_start']} ({out['window_from']}); "
                         f"{len(flagged)} to review")
            out["hunted"], out["revoked"], out["revoke_failed"] = True, [], []
            if work.mode != "never":
                _revoke_flagged(ctx, provider, flagged, out)
        return out


def _actor_id(args: HuntArgs) -> str | None:
    """`actor_key_id` once known (not a plan's placeholder)."""
    return args.actor_key_id if isinstance(args.actor_key_id, str) and args.actor_key_id else None


def _named(args: HuntArgs) -> KeyRecord | None:
    """An organization-wide hunt for a named actor (a leaked admin key) needs no project key."""
    if args.scope == "organization" and (actor := _actor_id(args)) and not args.key_id:
        return KeyRecord(key_id=actor, project_id="")
    return None


def _known(ctx: StepContext, args: HuntArgs) -> KeyRecord | None:
    """The leaked key without a call and without journaling (for the read-only preflight)."""
    if (named := _named(args)) is not None:
        return named
    known = known_record(ctx, args.key_id)
    if known is not None:
        return known[0]
    entry = ctx.key
    key_id = args.key_id or (entry.key_id if entry else None)
    return KeyRecord(key_id=key_id, project_id=(entry.project if entry else None) or "") if key_id else None


def _start(ctx: StepContext, args: HuntArgs, now: int) -> tuple[int, str]:
    """Where the window starts, and why there."""
    raw = args.leaked_at if args.leaked_at not in (None, "") else ctx.inputs.get("leaked_at")
    reported = epoch(raw) if not isinstance(raw, dict) else None
    if reported is not None:
        return reported, "the reported leak time"
    estimates: list[tuple[int, str]] = []
    for out in ctx.outputs.values():
        if not isinstance(out, dict):
            continue
        for f in out.get("findings") or [] if isinstance(out.get("findings"), list) else []:
            seen = epoch(f.get("first_seen")) if isinstance(f, dict) else None
            if seen is not None:
                estimates.append((seen - MARGIN, "an hour before the exposure's first sighting"))
        for name, why in (("leak_time", "the audit's leak time"),
                          ("first_anomalous_hour", "an hour before the audit's first anomalous hour")):
            value = out.get(name)
            when = epoch(value) if isinstance(value, (str, int)) else None
            if when is not None:
                estimates.append((when - (MARGIN if name == "first_anomalous_hour" else 0), why))
    if estimates:
        return min(estimates)
    return now - args.days * 86400, f"{args.days} days back (no estimate of the leak time)"


def own_ids(ctx: StepContext) -> set[str]:
    """Every key and account id this incident minted, by its journal."""
    return minted_in(ctx.incident.journal.records())


def own_names(ctx: StepContext) -> set[str]:
    """The names this incident journaled before minting (`*.intent` notes): a mint whose
    answer was lost has no id in the journal, but carries one of these names."""
    return {str(r["name"]) for r in ctx.incident.journal.records()
            if r.get("event") == "step.note" and str(r.get("note")).endswith(".intent") and r.get("name")}


def earlier_ids(ctx: StepContext) -> dict[str, str]:
    """Key and account ids earlier incidents in the same state folder minted -> incident id:
    a replacement an earlier response deployed is the team's, not the attacker's."""
    import json

    found: dict[str, str] = {}
    here = ctx.incident.dir
    for path in sorted(here.parent.glob("*/journal.jsonl")):
        if path.parent == here:
            continue
        try:  # read only (another run may be writing it): a torn or odd line is skipped
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        found.update(dict.fromkeys(minted_in(records), path.parent.name))
    return found


def minted_in(records: Iterable[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for r in records:
        if r.get("event") != "step.note" or not (r.get("note") in OWN_NOTES or str(r.get("note")).endswith(".minted")):
            continue
        for name in ("key_id", "service_account_id", "id"):
            if r.get(name):
                found.add(str(r[name]))
        for item in r.get("ids") or []:
            found.add(str(item))
        for item in r.get("replacements") or []:
            if isinstance(item, dict):
                found |= {str(item[k]) for k in ("key_id", "service_account_id") if item.get(k)}
    return found


def _hunt(ctx: StepContext, provider: Hunting, work: _HuntWork, rec: KeyRecord) -> dict[str, Any]:
    args = work.args
    now = int(time.time())
    start, why = _start(ctx, args, now)
    end = now + 60  # through this minute: what the attacker did while we responded counts too
    actors = [a for a in (_actor_id(args) or rec.key_id, *args.actors) if a]
    types = list(HUNT_TYPES)
    events: dict[str, AuditEvent] = {}
    if args.scope == "organization":
        batches = [provider.audit_log(start, end, types)]
    else:
        batches = [provider.audit_log(start, end, types, actor_ids=actors)]
        if rec.project_id:
            batches.append(provider.audit_log(start, end, types, project_id=rec.project_id))
    for batch in batches:
        for e in batch:
            events.setdefault(e.event_id or f"{e.type}:{e.effective_at}:{e.resource_id}", e)
    ours, earlier, attacker = own_ids(ctx), earlier_ids(ctx), set(actors)
    known = not why.startswith(f"{args.days} days back")  # a leak time was reported or estimated
    findings = [_finding(e, ours, earlier, work.trusted, attacker, known, names=own_names(ctx), scope=args.scope)
                for e in sorted(events.values(), key=lambda e: e.effective_at)]
    return {"scope": args.scope, "window_start": iso(start), "window_end": iso(now), "window_from": why,
            "actor_ids": actors, "revoke": work.mode, "findings": findings,
            "to_review": sum(1 for f in findings if f["verdict"] == REVIEW),
            "by_leaked_key": sum(1 for f in findings if f["by_leaked_key"] and f["verdict"] == REVIEW)}


def _finding(e: AuditEvent, ours: set[str], earlier: dict[str, str], trusted: set[str], attacker: set[str],
             known: bool, *, names: set[str] | frozenset[str] = frozenset(), scope: str = "project") -> dict[str, Any]:
    ids = set(e.actor_ids)
    data = e.details.get("data") or e.details.get("changes_requested") or {}
    named = isinstance(data, dict) and e.type in (ADMIN_KEY_CREATED, "service_account.created") \
        and str(data.get("name")) in names
    verdict = OURS if e.resource_id in ours or named else \
        TRUSTED if ids & trusted or e.resource_id in earlier else REVIEW
    detail = ", ".join(f"{k} {v if v != [] else 'none (unrestricted)'}" for k, v in data.items()) \
        if isinstance(data, dict) else ""
    kind = {"api_key.created": "key", "service_account.created": "service account",
            ADMIN_KEY_CREATED: "admin key"}.get(e.type, e.type.split(".")[0])
    # an admin key belongs to no project: revoked by id, and only by an organization-wide hunt
    where = scope == "organization" if e.type == ADMIN_KEY_CREATED else e.type in REVOCABLE and bool(e.project_id)
    if e.resource_id in earlier:
        detail = f"made by keyresponse incident {earlier[e.resource_id]}" + (f"; {detail}" if detail else "")
    return {"type": e.type, "what": HUNT_TYPES.get(e.type, e.type), "at": iso(e.effective_at), "actor": e.actor,
            "object": e.resource_id, "object_kind": kind, "project_id": e.project_id, "detail": detail,
            "verdict": verdict, "by_leaked_key": bool(ids & attacker),
            "revocable": verdict == REVIEW and where and (known or bool(ids & attacker)),
            "revoked": False}


def _revoke_flagged(ctx: StepContext, provider: Hunting, flagged: list[dict[str, Any]], out: dict[str, Any]) -> None:
    """Keys first, then accounts (deleting an account takes its keys along: a key found
    gone afterwards is already done)."""
    todo = sorted((f for f in flagged if f["revocable"]), key=lambda f: f["type"] != "api_key.created")
    mine = own_ids(ctx)
    for f in todo:
        ident, project = f["object"], f["project_id"]
        if ident in mine:  # never this incident's own (a mint journaled since the audit log was read)
            continue
        ctx.record("key.hunt.revoking", id=ident, kind=f["object_kind"], project_id=project)
        try:
            if f["type"] == ADMIN_KEY_CREATED:
                now_gone = _delete_admin_key(ctx, ident)
            elif f["type"] == "api_key.created":
                now_gone = provider.revoke_key_id(project, ident)
            else:
                now_gone = provider.delete_service_account(project, ident, what=f"revoke {ident}")
        except KeyresponseError as exc:
            ctx.record("key.hunt.revoke_failed", id=ident, error=exc.message)
            ctx.warn(f"could not revoke {f['object_kind']} {ident}: {exc.message}")
            out["revoke_failed"].append({"id": ident, "kind": f["object_kind"], "error": exc.message})
            continue
        ctx.record("key.hunt.revoked", id=ident, kind=f["object_kind"], already_gone=not now_gone)
        ctx.progress(f"revoked {f['object_kind']} {ident}" + ("" if now_gone else " (it was already gone)"))
        f["revoked"] = True
        out["revoked"].append({"id": ident, "kind": f["object_kind"], "already_gone": not now_gone})



def _delete_admin_key(ctx: StepContext, key_id: str) -> bool:
    """DELETE /organization/admin_api_keys/{id} on the credential keyresponse uses now;
    True if deleted now, False if it was already gone."""
    from keyresponse.actions.key_common import provider_settings
    from keyresponse.providers import openai_admin

    cfg = provider_settings(ctx.inventory, ctx.key.provider if ctx.key else None)[1]
    token = ctx.inventory.credential(cfg.admin_key_env, f"provider {cfg.kind}: admin credential")
    return openai_admin.connect(cfg, token, ctx.http).delete(key_id, what=f"revoke admin key {key_id}")
