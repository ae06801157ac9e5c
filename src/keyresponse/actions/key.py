"""The `key.*` actions that name the leaked key and act on it: find it and revoke it;
and finding which inventory key a leaked value belongs to.

What every `key.*` action shares (the provider, `resolve`) is in key_common.py.
key.probe lives in key_probe.py, key.issue and key.retire in key_issue.py, key.audit in key_audit.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from keyresponse.action import Check, EarlyContext, Plan, StepContext, With
from keyresponse.actions.key_common import Early, Work, connect, failed, prefetch_key, provider_for, resolve
from keyresponse.errors import KeyresponseError, ProviderError, ServiceError
from keyresponse.providers.base import KeyNotFound, KeyRecord

if TYPE_CHECKING:
    import httpx

    from keyresponse.inventory import LoadedInventory
    from keyresponse.secret import Secret


def locate_in_inventory(inventory: LoadedInventory, leaked: Secret) -> str | None:
    """The inventory name of the key a leaked value belongs to, asking each provider
    (read-only); None when no provider lists it or none can be asked."""
    from keyresponse import http

    by_id = {(e.provider, e.key_id): name for name, e in inventory.model.keys.items() if e.key_id}
    for pname, cfg in inventory.model.providers.items():
        if not any(p == pname for p, _ in by_id):
            continue
        clients: list[httpx.Client] = []

        def client(service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
            clients.append(http.build_client(service, base_url, headers, read_only=True))
            return clients[-1]

        try:
            record = connect(inventory, cfg, client).find(value=leaked)
        except KeyresponseError:
            continue  # the run's key.find step reports why, with the whole context
        finally:
            for c in clients:
                c.close()
        if (pname, record.key_id) in by_id:
            return str(by_id[(pname, record.key_id)])
    return None


# --- key.find -------------------------------------------------------------------------


class FindArgs(With):
    key_id: str | None = None
    project: str | None = None


class Find:
    name = "key.find"
    summary = "Find the leaked key (by inventory entry, key id or leaked value) and record its project and owner."
    With = FindArgs

    def prefetch(self, args: FindArgs, early: EarlyContext) -> Callable[[], Early] | None:
        return prefetch_key(args.key_id, args.project, early)

    def plan(self, args: FindArgs, ctx: StepContext) -> Plan:
        target = args.key_id or (ctx.key.key_id if ctx.key else None) or "the key matching the leaked value"
        return Plan(summary=f"find {target} at the provider", data=Work(args))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: Work[FindArgs] = plan.data
        args = work.args
        try:
            work.record = resolve(ctx, args.key_id, args.project)
        except KeyresponseError as exc:
            return failed("find the key", exc)
        plan.outputs.update(work.record.outputs())  # a dry run's later steps read it
        return [Check("find the key", True, work.record.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        work: Work[FindArgs] = plan.data
        args = work.args
        return (work.record or resolve(ctx, args.key_id, args.project)).outputs()


# --- key.revoke -----------------------------------------------------------------------


class RevokeArgs(With):
    key_id: str | None = None
    project: str | None = None


class Revoke:
    name = "key.revoke"
    summary = "Revoke the leaked key (a service account's key: delete the account); already gone counts as done."
    With = RevokeArgs

    def prefetch(self, args: RevokeArgs, early: EarlyContext) -> Callable[[], Early] | None:
        return prefetch_key(args.key_id, args.project, early)

    def plan(self, args: RevokeArgs, ctx: StepContext) -> Plan:
        target = args.key_id or (ctx.key.key_id if ctx.key else None) or "the leaked key"
        return Plan(summary=f"revoke {target}", changes=[f"revoke {target}"], data=Work(args), destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: Work[RevokeArgs] = plan.data
        args = work.args
        try:
            provider = provider_for(ctx)
            work.record = resolve(ctx, args.key_id, args.project, provider)
        except KeyNotFound as exc:
            known = args.key_id or (ctx.key.key_id if ctx.key else None)
            project = args.project or (ctx.key.project if ctx.key else None)
            if known and project:  # we know exactly where it lived: not listed = already revoked
                work.record, work.gone = KeyRecord(key_id=known, project_id=project), True
                plan.changes[:] = [f"nothing: {known} is no longer listed in {project} (already revoked)"]
                return [Check("the key is visible to the admin key", True, f"{known} already gone: {exc.message}")]
            return failed("the key is visible to the admin key", exc)
        except KeyresponseError as exc:
            return failed("the key is visible to the admin key", exc)
        rec = work.record
        plan.summary = f"revoke {rec.key_id} ({rec.redacted_value}) in {rec.project_id}"
        plan.changes[:] = [provider.revoke_call(rec)]
        plan.outputs.update(rec.outputs())
        return [Check("the key is visible to the admin key", True, rec.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: Work[RevokeArgs] = plan.data
        args = work.args
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            rec = work.record or resolve(ctx, args.key_id, args.project, provider)
            if work.gone:
                return {**rec.outputs(), "method": provider.revoke_call(rec), "revoked_at": None, "already_gone": True}
            try:
                result = provider.revoke(rec)
            except ServiceError as exc:
                ctx.record("key.revoke.failed", key_id=rec.key_id, still_live=True, error=exc.message)
                ctx.warn(f"{rec.key_id} is STILL LIVE: revocation failed")
                raise ProviderError(
                    f"{rec.key_id} ({rec.redacted_value}) is STILL LIVE: revocation failed: {exc.message}",
                    service=provider.service, status=exc.status, code=exc.code, request_id=exc.request_id,
                    hint=f"revoke it by hand in the {provider.title} dashboard now, then `keyresponse resume` the incident",
                ) from None
        ctx.record("key.revoked", key_id=rec.key_id, method=result.method, already_gone=result.already_gone)
        if result.already_gone:
            ctx.progress(f"{rec.key_id} was already gone (counts as revoked)")
        return {**rec.outputs(), "method": result.method, "revoked_at": result.revoked_at,
                "already_gone": result.already_gone}
