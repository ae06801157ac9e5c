"""The `key.*` actions that name the leaked key and act on it: find it and revoke it;
and finding which inventory key a leaked value belongs to.

What every `key.*` action shares (the provider, `resolve`) is in key_common.py.
key.probe lives in key_probe.py, key.issue and key.retire in key_issue.py, key.audit in key_audit.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keyresponse.action import Check, EarlyContext, Plan, StepContext, With
from keyresponse.actions.key_common import (
    Early,
    Work,
    connect,
    early_listing,
    failed,
    gone_note,
    prefetch_key,
    provider_for,
    resolve,
)
from keyresponse.errors import KeyresponseError, ProviderError, ServiceError, StepError
from keyresponse.providers.base import KeyRecord, RevokePlan, SiblingsWouldDie

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
            clients.append(http.build_client(service, base_url, headers, read_only=True))  # noqa: B023
            return clients[-1]  # noqa: B023 - called only within this iteration (closed below)

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
        rec = work.record
        plan.outputs.update({**rec.outputs(), **gone_note(ctx, rec.key_id)})  # a dry run's later steps read it
        detail = f"{rec.key_id} in {rec.project_id or '?'} is already gone (counts as revoked)" if rec.gone \
            else rec.describe()
        return [Check("find the key", True, detail)]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        work: Work[FindArgs] = plan.data
        args = work.args
        rec = work.record or resolve(ctx, args.key_id, args.project)
        return {**rec.outputs(), **gone_note(ctx, rec.key_id)}


def _inventory_names(ctx: StepContext) -> dict[str, str]:
    return {e.key_id: name for name, e in ctx.inventory.model.keys.items() if e.key_id}


def _key_label(rec: KeyRecord, names: dict[str, str]) -> str:
    where = f"inventory: {names[rec.key_id]}" if rec.key_id in names else "not in the inventory"
    return f"{rec.key_id} {rec.name!r} ({rec.redacted_value or '?'}, {where})"


def _revoke_changes(rp: RevokePlan, policy: str, names: dict[str, str]) -> tuple[list[str], str | None]:
    """The plan's lines, naming every key that dies, and the account that may be deleted."""
    rec = rp.key
    lines = [f"{rp.calls[0]}: {_key_label(rec, names)} dies"]
    if not rp.account_may_go:
        return lines, None
    if not rp.siblings:
        lines.append(f"only if OpenAI refuses to delete it alone: {rp.calls[1]} (it holds no other live key)")
        return lines, rp.account
    sibs = "; ".join(_key_label(k, names) for k in rp.siblings)
    if policy == "revoke":
        lines.append(f"only if the provider refuses to delete it alone: {rp.calls[1]}, and with it "
                     f"{len(rp.siblings)} sibling key(s) die too (revoke.sibling_keys: revoke): {sibs}")
        return lines, rp.account
    lines.append(f"if the provider refuses to delete it alone, stop without deleting service account {rp.account}, "
                 f"which also holds {len(rp.siblings)} live sibling key(s) (revoke.sibling_keys: {policy}): {sibs}")
    return lines, None


# --- key.revoke -----------------------------------------------------------------------


class RevokeArgs(With):
    key_id: str | None = None
    project: str | None = None


class Revoke:
    name = "key.revoke"
    summary = ("Revoke the leaked key alone (its service account only where the provider refuses that, and then "
               "not while sibling keys live unless `revoke.sibling_keys: revoke`); already gone counts as done.")
    With = RevokeArgs

    def prefetch(self, args: RevokeArgs, early: EarlyContext) -> Callable[[], Early] | None:
        # the plan names the keys that would die with the key's account: that listing is
        # made early too, so the preflight adds no round trip before the revoke
        return prefetch_key(args.key_id, args.project, early, listing=True)

    def plan(self, args: RevokeArgs, ctx: StepContext) -> Plan:
        target = args.key_id or (ctx.key.key_id if ctx.key else None) or "the leaked key"
        return Plan(summary=f"revoke {target}", changes=[f"revoke {target}"], data=Work(args), destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: Work[RevokeArgs] = plan.data
        args = work.args
        try:
            provider = provider_for(ctx)
            work.record = resolve(ctx, args.key_id, args.project, provider)
            rec = work.record
            if rec.gone:
                work.gone = True
                by = gone_note(ctx, rec.key_id)
                first = f" by {by['revoked_by']} at {by['revoked_first_at']}" if by.get("revoked_by") else ""
                plan.summary = f"nothing to revoke: {rec.key_id} is already gone{first}"
                plan.changes[:] = [f"nothing: {rec.key_id} is no longer listed in {rec.project_id or 'any project'} "
                                   f"(already revoked{first})"]
                plan.destructive = False
                plan.outputs.update({**rec.outputs(), **by, "already_gone": True})
                return [Check("the key is visible to the admin key", True, f"{rec.key_id} already gone{first}")]
            listed = early_listing(ctx, rec.project_id) if rec.owner_type == "service_account" else None
            rp = provider.revoke_plan(rec, listed=listed) if listed is not None else provider.revoke_plan(rec)
        except KeyresponseError as exc:
            return failed("the key is visible to the admin key", exc)
        policy = ctx.key.revoke.sibling_keys if ctx.key else "ask"
        names = _inventory_names(ctx)
        plan.changes[:], account = _revoke_changes(rp, policy, names)
        dies = [rec] + (rp.siblings if account and rp.siblings else [])
        plan.summary = (f"revoke {rec.key_id} ({rec.redacted_value}) in {rec.project_id}; keys that die: "
                        + ", ".join(_key_label(k, names) for k in dies)
                        + (f" (with service account {account} if the provider refuses to delete the key alone)"
                           if account else ""))
        # what later steps must plan around (key.issue onto that account would find it gone)
        plan.outputs.update({**rec.outputs(), "may_delete_service_account": account,
                             "siblings": [k.key_id for k in rp.siblings]})
        return [Check("the key is visible to the admin key", True, rec.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: Work[RevokeArgs] = plan.data
        args = work.args
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            rec = work.record or resolve(ctx, args.key_id, args.project, provider)
            if work.gone or rec.gone:
                ctx.progress(f"{rec.key_id} was already gone (counts as revoked)")
                return {**rec.outputs(), **gone_note(ctx, rec.key_id), "method": "none: the key was already gone",
                        "revoked_at": None, "already_gone": True}
            policy = ctx.key.revoke.sibling_keys if ctx.key else "ask"
            try:
                result = provider.revoke(rec, siblings=policy)
            except SiblingsWouldDie as exc:
                names = _inventory_names(ctx)
                ctx.record("key.revoke.failed", key_id=rec.key_id, still_live=True, error=exc.message,
                           siblings=[k.key_id for k in exc.siblings])
                ctx.warn(f"{rec.key_id} is STILL LIVE: revoking it would delete service account {exc.account} "
                         f"and its other keys")
                raise StepError(
                    f"{rec.key_id} ({rec.redacted_value}) is STILL LIVE: the provider deletes it only with service "
                    f"account {exc.account}, which also holds: "
                    + "; ".join(_key_label(k, names) for k in exc.siblings),
                    hint=f"to take those down too, set `revoke: {{sibling_keys: revoke}}` under keys.{ctx.key_name or 'NAME'} "
                         f"and `keyresponse resume` (then rotate them); or delete the key by hand in the "
                         f"{provider.title} dashboard now",
                ) from None
            except ServiceError as exc:
                ctx.record("key.revoke.failed", key_id=rec.key_id, still_live=True, error=exc.message)
                ctx.warn(f"{rec.key_id} is STILL LIVE: revocation failed")
                raise ProviderError(
                    f"{rec.key_id} ({rec.redacted_value}) is STILL LIVE: revocation failed: {exc.message}",
                    service=provider.service, status=exc.status, code=exc.code, request_id=exc.request_id,
                    hint=f"revoke it by hand in the {provider.title} dashboard now, then `keyresponse resume` the incident",
                ) from None
        ctx.record("key.revoked", key_id=rec.key_id, method=result.method, already_gone=result.already_gone,
                   deleted_account=result.deleted_account, also_revoked=result.also_revoked)
        if result.already_gone:
            ctx.progress(f"{rec.key_id} was already gone (counts as revoked)")
        if result.also_revoked:
            ctx.warn(f"service account {result.deleted_account} was deleted with {rec.key_id}, and with it "
                     f"{len(result.also_revoked)} sibling key(s): {', '.join(result.also_revoked)}")
        return {**rec.outputs(), "method": result.method, "revoked_at": result.revoked_at,
                "already_gone": result.already_gone, "deleted_service_account": result.deleted_account,
                "also_revoked": result.also_revoked}
