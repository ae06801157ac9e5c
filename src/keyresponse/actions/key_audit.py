"""The `key.audit` action: the leaked key's usage by hour and model, audit-log
events and costs, analysed (keyresponse.audit) for a baseline, anomalous hours,
the first abuse, new models and an estimated cost.

The window is bounded: it reaches back to the suspected leak, but never further than
`max_days`, the provider's usage retention (`usage_retention_days`) or the key's
creation (no key is used before it exists), and the report says when it was clamped.
Usage is read newest week first, and reading stops while the step still has time to
answer: a short step budget gives a shorter window, never an incident held open.

The blast radius, where the provider offers it (`providers.base.Hunting`): the key's use
of every usage category (images, audio, moderations, vector stores, web search...), the
cost per category, and — read with the replacement key, which belongs to the same
project — what the project stores that was made or changed in the window, listed as
what the attacker may have created or read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from keyresponse.action import Check, Plan, StepContext, With
from keyresponse.actions.key_common import Work, failed, provider_for, provider_settings, resolve
from keyresponse.errors import KeyresponseError, ServiceError
from keyresponse.providers.base import Hunting, epoch, iso
from keyresponse.secret import Secret

if TYPE_CHECKING:
    from keyresponse.providers.base import KeyRecord, Provider, UsagePoint

MAX_DAYS = 90  # the default furthest reach back: a report of months of hourly rows helps nobody
CHUNK = 7 * 86400  # usage is read a week at a time, newest first
RESERVE = 0.25  # of the step's time left when the audit starts: kept for events, costs and the answer
RADIUS_TIME = 4.0  # seconds the blast radius needs at least (a few rounds of reads at once)


class AuditArgs(With):
    days: int = 30
    # the furthest back the audit reads, whatever `leaked_at` says
    max_days: int = Field(MAX_DAYS, ge=1, le=3650)
    leaked_at: str | int | None = None  # ISO 8601 or Unix seconds; default: the `leaked_at` input
    threshold: float = 5.0  # robust z-score (MAD units, on log usage) for an anomalous hour
    costs: bool = True
    key_id: str | None = None
    # every usage category and the costs per line item (the blast radius), where the provider reports them
    categories: bool = True
    # a key of the same project to list its stored resources with; default: this incident's replacement
    replacement: Any = None


class Audit:
    name = "key.audit"
    summary = ("Audit the key's usage by hour and model, audit-log events and costs: baseline, anomalous "
               "hours, first abuse, new models, estimated cost.")
    With = AuditArgs

    def plan(self, args: AuditArgs, ctx: StepContext) -> Plan:
        days = min(args.days, args.max_days)
        return Plan(summary=f"audit {days} days of the key's usage, events and costs (since the leak, at most "
                            f"{args.max_days} days)", data=Work(args))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        try:
            return [Check("the admin key can read usage", True, provider_for(ctx).preflight())]
        except KeyresponseError as exc:
            return failed("the admin key can read usage", exc)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import audit, http

        work: Work[AuditArgs] = plan.data
        args = work.args
        now = int(time.time())
        raw = args.leaked_at if args.leaked_at not in (None, "") else ctx.inputs.get("leaked_at")
        leak = epoch(raw)
        end = (now // audit.HOUR + 1) * audit.HOUR  # through the current, partial hour
        _, cfg = provider_settings(ctx.inventory, ctx.key.provider if ctx.key else None)
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            rec = resolve(ctx, args.key_id, provider=provider)
            start, clamp = _window(args, now, leak, raw, rec, cfg.usage_retention_days)
            if clamp:
                ctx.warn(clamp)
            ctx.progress(f"reading {-(-(end - start) // 86400)} days of usage of {rec.key_id}")
            points, start, short = _read_usage(ctx, provider, rec, start, end)
            if short:
                ctx.warn(short)
            events = provider.events(rec, start, end)
            costs = None
            if args.costs and _time_left(ctx):
                try:
                    costs = provider.costs(rec, start, end)
                except ServiceError as exc:
                    ctx.warn(f"the Costs API did not answer; the estimate stands alone: {exc.message}")
            fresh = provider.get_key(rec.project_id, rec.key_id)
            result = audit.analyze(points, window_start=start, window_end=end, leak_time=leak,
                                   prices=provider.prices, k=args.threshold)
            # stored objects since the leak: when it is not known, since the abuse began (an hour's margin)
            began = leak or epoch(result.get("first_anomalous_hour"))
            since = max(start, began - audit.HOUR) if began and not leak else (began or start)
            radius = _blast_radius(ctx, provider, args, rec, start, end, since) if args.categories else {}
        about = {rec.key_id, rec.owner_id} - {""}
        result.update({
            "key_id": rec.key_id,
            "costs_api_usd": costs,
            "events": [{"type": e.type, "effective_at": iso(e.effective_at), "actor": e.actor,
                        "resource_id": e.resource_id, "about_key": e.resource_id in about} for e in events],
            "last_used_at": iso((fresh or rec).last_used_at),
            "window_note": " ".join(n for n in (clamp, short) if n) or None,
            "window_clamped": bool(clamp or short),
            **radius,
        })
        if result["first_anomalous_hour"]:
            ctx.progress(f"abuse likely began {result['first_anomalous_hour']}; new models: "
                         f"{', '.join(result['new_models']) or 'none'}")
        return result


def _window(args: AuditArgs, now: int, leak: int | None, raw: Any, rec: KeyRecord,
            retention_days: int | None) -> tuple[int, str | None]:
    """The window's start, and why it reaches less far back than the leak (or None)."""
    start = now - min(args.days, args.max_days) * 86400
    if leak is None or leak >= start:
        return (start if leak is None else leak), None
    floors = [(now - args.max_days * 86400, f"the audit's maximum of {args.max_days} days (`max_days`)")]
    if retention_days:
        floors.append((now - retention_days * 86400, f"the {retention_days} days the provider keeps usage for"))
    if rec.created_at:
        floors.append((int(rec.created_at), f"the key's creation ({iso(rec.created_at)})"))
    floor, why = max(floors, key=lambda f: f[0])
    if leak >= floor:
        return leak, None
    return floor, f"audit window clamped: the leak is dated {raw}, so the audit reads from {iso(floor)}, {why}."


def _time_left(ctx: StepContext, share: float = 0.0) -> bool:
    left = ctx.remaining()
    return left is None or left > max(2.0, share)


def _read_usage(ctx: StepContext, provider: Provider, rec: KeyRecord, start: int,
                end: int) -> tuple[list[UsagePoint], int, str | None]:
    """Usage in [start, end), a week at a time from the newest; reading stops early (and the
    window starts later, said in the note) when the step's time is running out."""
    left = ctx.remaining()
    reserve = RESERVE * left if left is not None else 0.0
    points: list[UsagePoint] = []
    lo = end
    while lo > start:
        if lo < end and not _time_left(ctx, reserve):
            return points, lo, (f"audit window shortened to start at {iso(lo)}: the step's time was running "
                                "out (raise its `timeout:` to read further back).")
        hi, lo = lo, max(start, lo - CHUNK)
        points += provider.usage(rec, lo, hi)
    return points, start, None


def _blast_radius(ctx: StepContext, provider: Provider, args: AuditArgs, rec: KeyRecord, start: int,
                  end: int, since: int) -> dict[str, Any]:
    """Usage of every category, cost per category and the project's stored resources; what
    cannot be read is said in `radius_notes`, never a failed audit."""
    if not isinstance(provider, Hunting):
        return {"radius_notes": [f"{provider.title} reports no usage categories or project resources"]}
    if not _time_left(ctx, RADIUS_TIME):
        return {"radius_notes": ["no time was left for the blast radius (usage by category, costs per category, "
                                 "the project's stored resources): raise the step's `timeout:` to read it"]}
    notes: list[str] = []
    try:
        categories: dict[str, dict[str, Any]] | None = provider.usage_by_category(rec, start, end)
    except ServiceError as exc:
        categories = None
        notes.append(f"usage by category could not be read: {exc.message}")
    by_item: dict[str, float] | None = None
    if args.costs and _time_left(ctx):
        try:
            by_item = provider.costs_by_line_item(rec, start, end)
        except ServiceError as exc:
            notes.append(f"costs by line item could not be read: {exc.message}")
    per_category: dict[str, float] = {}
    for item, usd in (by_item or {}).items():
        cat = provider.category_of(item)
        per_category[cat] = round(per_category.get(cat, 0.0) + usd, 4)
    secret = _replacement(ctx, args, rec)
    resources: list[dict[str, Any]] | None = None
    if secret is None:
        notes.append("no key of the project in this run (no replacement issued, or a resumed run): its stored "
                     "files, vector stores, batches, fine-tuning jobs and assistants were not listed")
    else:
        try:
            listed, problems = provider.project_resources(secret, since)
            resources = [{"kind": r.kind, "id": r.resource_id, "name": r.name, "created_at": iso(r.created_at),
                          "changed_at": iso(r.changed_at), "bytes": r.bytes, "detail": r.detail} for r in listed]
            notes += [f"could not list {p}" for p in problems]
        except ServiceError as exc:
            notes.append(f"the project's resources could not be listed: {exc.message}")
    used = [k for k, v in (categories or {}).items() if v.get("used")]
    if used:
        ctx.progress(f"used: {', '.join(used)}" + (f"; {len(resources)} stored object(s) made in the window"
                                                   if resources else ""))
    return {"usage_by_category": categories, "costs_by_line_item": by_item, "cost_by_category": per_category or None,
            "categories_used": used, "resources": resources, "resources_since": iso(since), "radius_notes": notes}


def _replacement(ctx: StepContext, args: AuditArgs, rec: KeyRecord) -> Secret | None:
    """`with.replacement`, else the key this incident issued in the leaked key's project."""
    if isinstance(args.replacement, Secret):
        return args.replacement
    for out in ctx.outputs.values():
        if isinstance(out, dict) and out.get("issued") and isinstance(out.get("secret"), Secret) \
                and out.get("project_id") in (rec.project_id, None, ""):
            secret: Secret = out["secret"]
            return secret
    return None
