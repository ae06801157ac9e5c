"""The `key.*` actions that name the leaked key and act on it: find it and revoke it;
and the resolution every `key.*` action shares.

All of them name the key the same way (`resolve`), so a resumed incident needs no
leaked value: the first step that finds the key journals it (`key.resolved`).
key.probe lives in key_probe.py, key.issue in key_issue.py, key.audit in key_audit.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from keyresponse.action import Check, EarlyContext, Plan, StepContext, With
from keyresponse.errors import ConfigError, KeyresponseError, ProviderError, ServiceError, UsageError
from keyresponse.providers.base import KeyRecord
from keyresponse.secret import Secret


@dataclass
class _Work:
    """A plan's data: the arguments, and the key once preflight has found it."""

    args: Any
    record: KeyRecord | None = None
    gone: bool = False  # the key is no longer listed; revoking it counts as done


def provider_for(ctx: EarlyContext) -> tuple[Any, Any]:
    """(OpenAIProvider, its inventory settings) for the step's key, on the admin client."""
    from keyresponse.providers.openai import OpenAIProvider

    providers = ctx.inventory.model.providers
    entry = ctx.key
    name = entry.provider if entry else (next(iter(providers)) if len(providers) == 1 else "openai")
    cfg = providers.get(name)
    if cfg is None:
        raise ConfigError(f"no provider {name!r} under `providers:` in the inventory",
                          hint="add `providers: {openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}}`")
    token = ctx.inventory.credential(cfg.admin_key_env, "OpenAI admin key")
    client = ctx.http("openai", cfg.base_url, {"Authorization": f"Bearer {token}"})
    return OpenAIProvider(client, prices=cfg.prices), cfg


def resolve(ctx: StepContext, key_id: str | None = None, project: str | None = None,
            provider: Any = None) -> KeyRecord:
    """The leaked key: from this step's earlier attempts, an earlier key.find/key.revoke,
    `with: key_id`, the `leaked` input, or the inventory entry (key_id, then secret_env)."""
    from keyresponse.providers.openai import KeyNotFound

    known = known_record(ctx, key_id)
    if known is not None:
        record, journaled = known
        return record if journaled else _resolved(ctx, record, "an earlier step")
    provider = provider or provider_for(ctx)[0]
    entry = ctx.key
    project = project or (entry.project if entry else None)
    leaked = ctx.inputs.get("leaked")
    wanted = key_id or (entry.key_id if entry is not None and not isinstance(leaked, Secret) else None)
    if wanted:
        try:
            found = _find_by_id(ctx, provider, wanted, project)
        except KeyNotFound:
            if not project:
                raise
            found = provider.find(key_id=wanted)  # the inventory's project may be stale
        return _resolved(ctx, found, "its id")
    if isinstance(leaked, Secret):
        if entry is not None and entry.key_id:
            # one call instead of listing the organization, when the inventory already names it
            try:
                named = _find_by_id(ctx, provider, entry.key_id, project)
            except KeyNotFound:
                named = None
            if named is not None and named.matches(leaked.reveal()):
                return _resolved(ctx, named, "the inventory, matching the leaked value")
            why = "is not listed" if named is None else "does not match the leaked value"
            ctx.warn(f"{entry.key_id}, named in the inventory, {why}; searching every project for the value")
        return _resolved(ctx, provider.find(value=leaked), "the leaked value")
    if entry is not None and entry.secret_env:
        from keyresponse.secret import secret_from_env

        value = secret_from_env(entry.secret_env)
        if value is not None:
            return _resolved(ctx, provider.find(value=value, project_id=project), f"${entry.secret_env}")
    lost = " (the leaked value given at the start is not kept across a resume)" if leaked is not None else ""
    raise UsageError(
        f"step {ctx.step_id!r}: nothing identifies the key{lost}",
        hint="give `key_id:` in the inventory or `with: {key_id: ...}`, or the leaked value with "
             "--leaked-stdin / --leaked-env VAR",
    )


@dataclass(frozen=True)
class _Early:
    """A lookup by id made before the incident opened: the key, or why it is not there."""

    key_id: str
    project: str | None
    record: KeyRecord | None
    missing: KeyresponseError | None = None


def prefetch_key(args: Any, early: EarlyContext) -> Callable[[], _Early] | None:
    """The first call `resolve` makes, made early: find the key by its id (from `with:` or
    the inventory) in its project. With neither, resolve lists keys; nothing is fetched."""
    from keyresponse.providers.openai import KeyNotFound

    entry = early.key
    key_id = args.key_id or (entry.key_id if entry else None)
    if not key_id:
        return None
    project = args.project or (entry.project if entry else None)
    provider, _ = provider_for(early)

    def read() -> _Early:
        try:
            return _Early(key_id, project, provider.find(key_id=key_id, project_id=project))
        except KeyNotFound as exc:
            return _Early(key_id, project, None, exc)

    return read


def _find_by_id(ctx: StepContext, provider: Any, key_id: str, project: str | None) -> KeyRecord:
    early = ctx.prefetched()
    if isinstance(early, _Early) and (early.key_id, early.project) == (key_id, project):
        if early.missing is not None:
            raise early.missing
        if early.record is not None:
            return early.record
    found: KeyRecord = provider.find(key_id=key_id, project_id=project)
    return found


def known_record(ctx: StepContext, key_id: str | None = None) -> tuple[KeyRecord, bool] | None:
    """The leaked key as this incident already knows it, without a call: (record, whether
    this step journaled it), from this step's earlier attempts or an earlier key.find/key.revoke."""
    notes = [n for n in ctx.notes("key.resolved") if not key_id or n["key"]["key_id"] == key_id]
    if notes:
        return KeyRecord.from_outputs(notes[-1]["key"]), True
    if not key_id:
        for out in reversed(list(ctx.outputs.values())):
            # key.find/key.revoke outputs; key.issue's (a *new* key) carry `secret` and no owner
            if isinstance(out, dict) and out.get("key_id") and out.get("owner_type") and "secret" not in out:
                return KeyRecord.from_outputs(out), False
    return None


def locate_in_inventory(inventory: Any, leaked: Secret) -> str | None:
    """The inventory name of the key a leaked value belongs to, asking each OpenAI provider
    (read-only); None when no provider lists it or none can be asked."""
    from keyresponse import http
    from keyresponse.providers.openai import OpenAIProvider

    by_id = {(e.provider, e.key_id): name for name, e in inventory.model.keys.items() if e.key_id}
    for pname, cfg in inventory.model.providers.items():
        if not any(p == pname for p, _ in by_id):
            continue
        try:
            token = inventory.credential(cfg.admin_key_env, "OpenAI admin key")
            with http.build_client("openai", cfg.base_url, {"Authorization": f"Bearer {token}"},
                                   read_only=True) as client:
                record = OpenAIProvider(client).find(value=leaked)
        except KeyresponseError:
            continue  # the run's key.find step reports why, with the whole context
        if (pname, record.key_id) in by_id:
            return str(by_id[(pname, record.key_id)])
    return None


def _resolved(ctx: StepContext, record: KeyRecord, via: str) -> KeyRecord:
    ctx.record("key.resolved", key=record.outputs(), via=via)
    return record


def _failed(what: str, exc: KeyresponseError) -> list[Check]:
    return [Check(what, False, exc.message, exc.hint)]


# --- key.find -------------------------------------------------------------------------


class FindArgs(With):
    key_id: str | None = None
    project: str | None = None


class Find:
    name = "key.find"
    summary = "Find the leaked key (by inventory entry, key id or leaked value) and record its project and owner."
    With = FindArgs

    def prefetch(self, args: FindArgs, early: EarlyContext) -> Callable[[], _Early] | None:
        return prefetch_key(args, early)

    def plan(self, args: FindArgs, ctx: StepContext) -> Plan:
        target = args.key_id or (ctx.key.key_id if ctx.key else None) or "the key matching the leaked value"
        return Plan(summary=f"find {target} at the provider", data=_Work(args))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: _Work = plan.data
        try:
            work.record = resolve(ctx, work.args.key_id, work.args.project)
        except KeyresponseError as exc:
            return _failed("find the key", exc)
        plan.outputs.update(work.record.outputs())  # a dry run's later steps read it
        return [Check("find the key", True, work.record.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        work: _Work = plan.data
        return (work.record or resolve(ctx, work.args.key_id, work.args.project)).outputs()


# --- key.revoke -----------------------------------------------------------------------


class RevokeArgs(With):
    key_id: str | None = None
    project: str | None = None


def revoke_call(record: KeyRecord) -> str:
    base = f"/organization/projects/{record.project_id}"
    if record.owner_type == "service_account":
        return f"DELETE {base}/service_accounts/{record.owner_id or '?'}"
    return f"DELETE {base}/api_keys/{record.key_id}"


class Revoke:
    name = "key.revoke"
    summary = "Revoke the leaked key (a service account's key: delete the account); already gone counts as done."
    With = RevokeArgs

    def prefetch(self, args: RevokeArgs, early: EarlyContext) -> Callable[[], _Early] | None:
        return prefetch_key(args, early)

    def plan(self, args: RevokeArgs, ctx: StepContext) -> Plan:
        target = args.key_id or (ctx.key.key_id if ctx.key else None) or "the leaked key"
        return Plan(summary=f"revoke {target}", changes=[f"revoke {target}"], data=_Work(args), destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        from keyresponse.providers.openai import KeyNotFound

        work: _Work = plan.data
        try:
            work.record = resolve(ctx, work.args.key_id, work.args.project)
        except KeyNotFound as exc:
            known = work.args.key_id or (ctx.key.key_id if ctx.key else None)
            project = work.args.project or (ctx.key.project if ctx.key else None)
            if known and project:  # we know exactly where it lived: not listed = already revoked
                work.record, work.gone = KeyRecord(key_id=known, project_id=project), True
                plan.changes[:] = [f"nothing: {known} is no longer listed in {project} (already revoked)"]
                return [Check("the key is visible to the admin key", True, f"{known} already gone: {exc.message}")]
            return _failed("the key is visible to the admin key", exc)
        except KeyresponseError as exc:
            return _failed("the key is visible to the admin key", exc)
        rec = work.record
        also = " (the account and every key it holds)" if rec.owner_type == "service_account" else ""
        plan.summary = f"revoke {rec.key_id} ({rec.redacted_value}) in {rec.project_id}"
        plan.changes[:] = [revoke_call(rec) + also]
        plan.outputs.update(rec.outputs())
        return [Check("the key is visible to the admin key", True, rec.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: _Work = plan.data
        rec = work.record or resolve(ctx, work.args.key_id, work.args.project)
        if work.gone:
            return {**rec.outputs(), "method": revoke_call(rec), "revoked_at": None, "already_gone": True}
        with http.retry_budget(ctx.remaining()):
            provider, _ = provider_for(ctx)
            try:
                result = provider.revoke(rec)
            except ServiceError as exc:
                ctx.record("key.revoke.failed", key_id=rec.key_id, still_live=True, error=exc.message)
                ctx.warn(f"{rec.key_id} is STILL LIVE: revocation failed")
                raise ProviderError(
                    f"{rec.key_id} ({rec.redacted_value}) is STILL LIVE: revocation failed: {exc.message}",
                    service="openai", status=exc.status, code=exc.code, request_id=exc.request_id,
                    hint="revoke it by hand in the OpenAI dashboard now, then `keyresponse resume` the incident",
                ) from None
        ctx.record("key.revoked", key_id=rec.key_id, method=result.method, already_gone=result.already_gone)
        if result.already_gone:
            ctx.progress(f"{rec.key_id} was already gone (counts as revoked)")
        return {**rec.outputs(), "method": result.method, "revoked_at": result.revoked_at,
                "already_gone": result.already_gone}
