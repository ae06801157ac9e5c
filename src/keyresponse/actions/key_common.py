"""What the `key.*` actions share: the step's provider, and naming the leaked key.

All of them name the key the same way (`resolve`), so a resumed incident needs no
leaked value: the first step that finds the key journals it (`key.resolved`).
Nothing here knows an issuer's wire format: that is the `Provider`'s (providers/).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from keyresponse.action import Check, EarlyContext, StepContext
from keyresponse.errors import ConfigError, KeyresponseError, UsageError
from keyresponse.providers.base import KeyNotFound, KeyRecord, iso
from keyresponse.secret import Secret

if TYPE_CHECKING:
    from keyresponse.inventory import LoadedInventory
    from keyresponse.providers.base import HttpFactory, Provider
    from keyresponse.providers.settings import ProviderSettings


A = TypeVar("A")
T = TypeVar("T")


@dataclass
class Work(Generic[A]):
    """A plan's data: the arguments, and the key once preflight has found it."""

    args: A
    record: KeyRecord | None = None
    gone: bool = False  # the key is no longer listed; revoking it counts as done


def failed(what: str, exc: KeyresponseError) -> list[Check]:
    return [Check(what, False, exc.message, exc.hint)]


def provider_settings(inventory: LoadedInventory, provider_name: str | None) -> tuple[str, ProviderSettings]:
    """(name, settings) of the provider a key names; the only one when no key is given."""
    providers = inventory.model.providers
    name = provider_name or (next(iter(providers)) if len(providers) == 1 else "openai")
    cfg = providers.get(name)
    if cfg is None:
        raise ConfigError(f"no provider {name!r} under `providers:` in the inventory",
                          hint="add `providers: {openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}}`")
    return name, cfg


def connect(inventory: LoadedInventory, cfg: ProviderSettings, http: HttpFactory) -> Provider:
    """The provider `cfg` describes, on clients from `http`."""
    from keyresponse import providers

    token = inventory.credential(cfg.admin_key_env, f"provider {cfg.kind}: admin credential")
    return providers.module(cfg.kind).connect(cfg, token, http)


def provider_for(ctx: EarlyContext) -> Provider:
    """The provider of the step's key, on the run's shared clients."""
    _, cfg = provider_settings(ctx.inventory, ctx.key.provider if ctx.key else None)
    return connect(ctx.inventory, cfg, ctx.http)


def resolve(ctx: StepContext, key_id: str | None = None, project: str | None = None,
            provider: Provider | None = None) -> KeyRecord:
    """The leaked key: from this step's earlier attempts, an earlier key.find/key.revoke,
    `with: key_id`, the `leaked` input, or the inventory entry (key_id, then secret_env)."""
    known = known_record(ctx, key_id)
    if known is not None:
        record, journaled = known
        return record if journaled else _resolved(ctx, record, "an earlier step")
    entry = ctx.key
    if entry is not None and entry.kind == "admin":
        raise UsageError(f"keys.{ctx.key_name} is an organization admin key, not a project key",
                         hint=f"`keyresponse run leaked-admin-key --key {ctx.key_name}` replaces it")
    provider = provider or provider_for(ctx)
    project = project or (entry.project if entry else None)
    leaked = ctx.inputs.get("leaked")
    wanted = key_id or (entry.key_id if entry is not None and not isinstance(leaked, Secret) else None)
    if wanted:
        try:
            found = _find_by_id(ctx, provider, wanted, project)
        except KeyNotFound as exc:
            try:
                if not project:
                    raise
                found = provider.find(key_id=wanted)  # the inventory's project may be stale
            except KeyNotFound:
                return _gone(ctx, provider, wanted, project, exc)
        return _resolved(ctx, found, "its id")
    if isinstance(leaked, Secret):
        if entry is not None and entry.key_id:
            # one call instead of listing the organization, when the inventory already names it
            try:
                named: KeyRecord | None = _find_by_id(ctx, provider, entry.key_id, project)
            except KeyNotFound:
                named = None
            if named is not None and named.matches(leaked.reveal()):
                return _resolved(ctx, named, "the inventory, matching the leaked value")
            why = "is not listed" if named is None else "does not match the leaked value"
            ctx.warn(f"{entry.key_id}, named in the inventory, {why}; searching every project for the value")
            if named is None:
                try:
                    return _resolved(ctx, provider.find(value=leaked), "the leaked value")
                except KeyNotFound as exc:
                    # neither is listed: the inventory's key is gone, and the value is tried as proof
                    return _gone(ctx, provider, entry.key_id, project, exc)
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
class Early:
    """A lookup by id made before the incident opened: the key, or why it is not there;
    and, when asked for, the keys of its project (`listed`, of project `listed_in`)."""

    key_id: str
    project: str | None
    record: KeyRecord | None
    missing: KeyresponseError | None = None
    listed: list[KeyRecord] | None = None
    listed_in: str | None = None

    def listing(self, project_id: str) -> list[KeyRecord] | None:
        """The early listing of `project_id`'s keys, if that is the project listed."""
        return self.listed if self.listed is not None and self.listed_in == project_id else None


def prefetch_key(key_id: str | None, project: str | None, early: EarlyContext, *,
                 listing: bool = False) -> Callable[[], Early] | None:
    """The first call `resolve` makes, made early: find the key by its id (from `with:` or
    the inventory) in its project. With neither, resolve lists keys; nothing is fetched.

    `listing`: also list the keys of the key's project (what key.revoke's plan reads to
    name the sibling keys that would die): beside the lookup when the project is known,
    after it for a service account's key otherwise. A failed listing is left out: the
    step then lists for itself."""
    entry = early.key
    key_id = key_id or (entry.key_id if entry else None)
    if not key_id:
        return None
    project = project or (entry.project if entry else None)
    provider = provider_for(early)
    wanted = key_id

    def listed(project_id: str) -> list[KeyRecord] | None:
        try:
            return provider.list_keys(project_id)
        except KeyresponseError:
            return None

    def read() -> Early:
        beside: Future[list[KeyRecord] | None] | None = None
        if listing and project:
            beside = Future()
            # the retry budget is a context variable: the thread runs in a copy of this context
            threading.Thread(target=contextvars.copy_context().run, args=(_into, beside, listed, project),
                             name="prefetch-listing", daemon=True).start()
        try:
            record = provider.find(key_id=wanted, project_id=project)
        except KeyNotFound as exc:
            return Early(wanted, project, None, exc)
        if beside is not None:
            keys, listed_in = beside.result(), project
        elif listing and record.owner_type == "service_account" and record.project_id:
            keys, listed_in = listed(record.project_id), record.project_id
        else:
            keys, listed_in = None, None
        return Early(wanted, project, record, listed=keys, listed_in=listed_in)

    return read


def _into(future: Future[T], fn: Callable[[str], T], arg: str) -> None:
    try:
        future.set_result(fn(arg))
    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
        future.set_exception(exc)


def early_listing(ctx: StepContext, project_id: str) -> list[KeyRecord] | None:
    """The keys of `project_id` as this step's prefetch listed them, or None."""
    early = ctx.prefetched()
    return early.listing(project_id) if isinstance(early, Early) else None


def _find_by_id(ctx: StepContext, provider: Provider, key_id: str, project: str | None) -> KeyRecord:
    early = ctx.prefetched()
    if isinstance(early, Early) and (early.key_id, early.project) == (key_id, project):
        if early.missing is not None:
            raise early.missing
        if early.record is not None:
            return early.record
    return provider.find(key_id=key_id, project_id=project)


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


def _gone(ctx: StepContext, provider: Provider, key_id: str, project: str | None,
          missing: KeyNotFound) -> KeyRecord:
    """A key the inventory names that the provider no longer lists: already revoked,
    deleted or disabled (OpenAI disables keys reported as leaked). That is a normal
    start of an incident, not a dead end: the record says so, with what the audit log
    knows of who removed it first, and the response goes on to replace it."""
    try:
        seen = provider.gone_key(key_id, project)
    except KeyresponseError as exc:
        ctx.warn(f"{key_id} is no longer listed; the audit log could not say who removed it: {exc.message}")
        seen = None
    where = (seen.project_id if seen else "") or project or ""
    record = KeyRecord(key_id=key_id, project_id=where, gone=True)
    by = {"revoked_by": seen.actor, "revoked_first_at": iso(seen.deleted_at), "by_provider": seen.by_provider} \
        if seen and seen.deleted_at else {}
    ctx.record("key.gone", key_id=key_id, project_id=where, detail=missing.message, **by)
    ctx.progress(f"{key_id} is already gone at the provider"
                 + (f" (deleted {by['revoked_first_at']} by {by['revoked_by']})" if by else "")
                 + "; it counts as revoked")
    return _resolved(ctx, record, "the inventory (the key is no longer listed)")


def gone_note(ctx: StepContext, key_id: str) -> dict[str, Any]:
    """What `key.gone` recorded about this key in this incident: who removed it first, and when."""
    notes = [n for n in journal_notes(ctx, "key.gone") if n.get("key_id") == key_id]
    return {k: notes[-1][k] for k in ("revoked_by", "revoked_first_at", "by_provider") if k in notes[-1]} \
        if notes else {}


def _resolved(ctx: StepContext, record: KeyRecord, via: str) -> KeyRecord:
    ctx.record("key.resolved", key=record.outputs(), via=via)
    return record


def written_masks(ctx: StepContext) -> set[str]:
    """Masks of every secret a target of this incident was, or may have been, written with
    (a `target.writing` note is journaled before each write, so a kill mid-write counts)."""
    return {r["secret"] for r in ctx.incident.journal.records()
            if r.get("event") == "step.note" and r.get("note") in ("target", "target.writing") and r.get("secret")}


def held_masks(ctx: StepContext) -> dict[str, set[str]]:
    """Per target, the masks it may hold now: its last confirmed write, plus any write
    that was started and never reported (the process died during it)."""
    return held_in(ctx.incident.journal.records())


def held_in(records: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """`held_masks` from an incident's journal records."""
    confirmed: dict[str, str] = {}
    pending: dict[str, str] = {}
    for r in records:
        if r.get("event") != "step.note" or not r.get("secret"):
            continue
        target = str(r.get("target_id") or r.get("target"))  # identity; journals before it: the description
        if r.get("note") == "target.writing":
            pending[target] = r["secret"]
        elif r.get("note") == "target":
            if r.get("status") == "applied" or str(r.get("error") or "").startswith("written"):
                confirmed[target] = r["secret"]
            pending.pop(target, None)
    return {t: {m for m in (confirmed.get(t), pending.get(t)) if m} for t in set(confirmed) | set(pending)}


def journal_notes(ctx: StepContext, *names: str) -> list[dict[str, Any]]:
    """Every step's notes of these names in this incident, oldest first."""
    return [r for r in ctx.incident.journal.records() if r.get("event") == "step.note" and r.get("note") in names]
