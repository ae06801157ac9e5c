"""The `key.audit` action: the leaked key's usage by hour and model, audit-log
events and costs, analysed (keyresponse.audit) for a baseline, anomalous hours,
the first abuse, new models and an estimated cost.
"""

from __future__ import annotations

import time
from typing import Any

from keyresponse.action import Check, Plan, StepContext, With
from keyresponse.actions.key_common import Work, failed, provider_for, resolve
from keyresponse.errors import KeyresponseError, ServiceError
from keyresponse.providers.base import epoch, iso


class AuditArgs(With):
    days: int = 30
    leaked_at: str | int | None = None  # ISO 8601 or Unix seconds; default: the `leaked_at` input
    threshold: float = 5.0  # robust z-score (MAD units, on log usage) for an anomalous hour
    costs: bool = True
    key_id: str | None = None


class Audit:
    name = "key.audit"
    summary = ("Audit the key's usage by hour and model, audit-log events and costs: baseline, anomalous "
               "hours, first abuse, new models, estimated cost.")
    With = AuditArgs

    def plan(self, args: AuditArgs, ctx: StepContext) -> Plan:
        return Plan(summary=f"audit {args.days} days of the key's usage, events and costs", data=Work(args))

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
        leak = epoch(args.leaked_at if args.leaked_at not in (None, "") else ctx.inputs.get("leaked_at"))
        start = now - args.days * 86400
        if leak is not None:
            start = min(start, leak)  # and everything since the suspected leak, however long ago
        end = (now // audit.HOUR + 1) * audit.HOUR  # through the current, partial hour
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            rec = resolve(ctx, args.key_id, provider=provider)
            ctx.progress(f"reading {args.days} days of usage of {rec.key_id}")
            points = provider.usage(rec, start, end)
            events = provider.events(rec, start, end)
            costs = None
            if args.costs:
                try:
                    costs = provider.costs(rec, start, end)
                except ServiceError as exc:
                    ctx.warn(f"the Costs API did not answer; the estimate stands alone: {exc.message}")
            fresh = provider.get_key(rec.project_id, rec.key_id)
        result = audit.analyze(points, window_start=start, window_end=end, leak_time=leak,
                               prices=provider.prices, k=args.threshold)
        about = {rec.key_id, rec.owner_id} - {""}
        result.update({
            "key_id": rec.key_id,
            "costs_api_usd": costs,
            "events": [{"type": e.type, "effective_at": iso(e.effective_at), "actor": e.actor,
                        "resource_id": e.resource_id, "about_key": e.resource_id in about} for e in events],
            "last_used_at": iso((fresh or rec).last_used_at),
        })
        if result["first_anomalous_hour"]:
            ctx.progress(f"abuse likely began {result['first_anomalous_hour']}; new models: "
                         f"{', '.join(result['new_models']) or 'none'}")
        return result
