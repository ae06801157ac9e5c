"""The `key.issue` action: mint the replacement key as a new service account named
after the incident (or a new key on an existing one).

Each mint is journaled by name before the POST, so a re-run finds and revokes any
replacement an earlier attempt made but nobody holds before minting another. One
that targets already hold (the run died after deploying it) is, with
`keep_deployed: true`, kept live until `key.retire` revokes it once its successor is
deployed and proven: revoking it first would cut those targets off if the redeploy
then failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from keyresponse.action import Check, NoArgs, Plan, StepContext, With
from keyresponse.actions.key_common import (
    failed,
    held_in,
    held_masks,
    journal_notes,
    provider_for,
    resolve,
    written_masks,
)
from keyresponse.errors import KeyresponseError, ProviderError, ServiceError, StepError
from keyresponse.faults import crashpoint
from keyresponse.providers.base import CannotRevoke, IssueSpec, Minted, iso

if TYPE_CHECKING:
    from keyresponse.providers.base import IssuedKey, KeyRecord, Provider

MINT_TRIES = 2  # the second only after listing proved what the first one left behind


def _no_targets(ctx: StepContext) -> str | None:
    """Why a replacement would go nowhere, or None when the key has targets."""
    if ctx.key and ctx.key.targets:
        return None
    who = f"keys.{ctx.key_name}" if ctx.key else "the key (it is not in the inventory)"
    return (f"{who} has no targets, so a replacement would go nowhere: its value is shown only at "
            "creation, and keyresponse hands it only to targets")


class IssueArgs(With):
    project: str | None = None
    mode: Literal["service_account", "service_account_key"] | None = None
    service_account_id: str | None = None
    name_prefix: str | None = None
    expires_in_seconds: int | None = None  # the replacement's lifetime (else the inventory's issue policy)
    keep_deployed: bool = False  # keep earlier replacements targets hold, for key.retire
    # a key with no targets: a replacement would go nowhere (its value is shown once, at creation,
    # and keyresponse hands it only to targets), so none is minted; `skip` says so, `fail` stops
    without_targets: Literal["skip", "fail"] = "fail"


@dataclass
class _IssueWork:
    mode: str
    service_account_id: str | None
    prefix: str
    project: str | None
    keep_deployed: bool = False
    skip: bool = False  # no targets: mint nothing (only deal with an earlier attempt's mints)
    expires_in_seconds: int | None = None
    copy_scopes: bool = True
    scopes: tuple[str, ...] | None = None  # the old key's, found by preflight
    scopes_missed: str | None = None  # why they could not be read (the replacement is minted without them)


class Issue:
    name = "key.issue"
    summary = ("Mint the replacement key as a new project service account named after the incident "
               "(or a new key on an existing one); a re-run first revokes any replacement nobody holds.")
    With = IssueArgs

    def plan(self, args: IssueArgs, ctx: StepContext) -> Plan:
        from keyresponse.inventory import IssuePolicy

        policy = ctx.key.issue if ctx.key else IssuePolicy()
        work = _IssueWork(args.mode or policy.mode, args.service_account_id or policy.service_account_id,
                          args.name_prefix or policy.name_prefix, args.project or (ctx.key.project if ctx.key else None),
                          args.keep_deployed, expires_in_seconds=args.expires_in_seconds or policy.expires_in_seconds,
                          copy_scopes=policy.copy_scopes)
        nowhere = _no_targets(ctx)
        if nowhere and args.without_targets == "skip":
            work.skip = True
            earlier = ctx.notes("key.issue.intent")  # a resumed run whose targets have since gone
            held = " that no target holds" if work.keep_deployed else ""
            # only keyresponse's own mints of this incident: no confirmation needed to clean those up
            return Plan(summary=f"nothing: {nowhere}", outputs={"issued": False}, data=work,
                        changes=[f"revoke what earlier attempts of this incident minted{held}"] if earlier else [])
        where = work.project or "the leaked key's project"
        if work.mode == "service_account_key":
            change = f"mint a new key on service account {work.service_account_id or '?'} in {where}"
        else:
            change = f"mint a new service account {work.prefix}-{ctx.incident.id}-N with its key in {where}"
        # minting creates a live credential: confirm it like a revoke (nobody may hold it otherwise)
        return Plan(summary=f"issue a replacement key in {where}", changes=[change], data=work, destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: _IssueWork = plan.data
        if work.skip:
            return []
        nowhere = _no_targets(ctx)
        if nowhere:
            return [Check("somewhere to deploy the replacement", False, nowhere,
                          f"list where the key is used under keys.{ctx.key_name or 'NAME'}.targets in the inventory",
                          settled=True)]
        what = "the admin key can create the replacement"
        if work.mode == "service_account_key" and not work.service_account_id:
            return [Check(what, False, "issue.mode service_account_key needs issue.service_account_id in the inventory",
                          settled=True)]
        # settled by the plan (what earlier steps delete), before any read
        doomed = _deleted_earlier(ctx, self._account(work))
        if doomed:
            return [Check("the replacement's service account outlives the revoke", False, doomed,
                          f"use `issue: {{mode: service_account}}` under keys.{ctx.key_name or 'NAME'} (a new "
                          "account per incident), or set issue.service_account_id to another account", settled=True)]
        try:
            provider = provider_for(ctx)
            old = resolve(ctx, provider=provider)
            work.project = work.project or old.project_id
            detail = provider.preflight_issue(work.project, self._account(work))
            if work.copy_scopes:
                work.scopes, work.scopes_missed = self._scopes(provider, old)
        except KeyresponseError as exc:
            return failed(what, exc)
        plan.changes[:] = [provider.issue_call(self._spec(work, work.project, f"{work.prefix}-{ctx.incident.id}-N"))]
        if work.scopes_missed:
            plan.changes.append(work.scopes_missed)
        earlier = ctx.notes("key.issue.intent")
        if earlier:
            plan.changes.insert(0, f"first deal with {len(earlier)} earlier mint(s) of this incident: revoke those "
                                   "no target holds, keep the others for key.retire")
        return [Check(what, True, detail)]

    @staticmethod
    def _scopes(provider: Provider, old: KeyRecord) -> tuple[tuple[str, ...] | None, str | None]:
        """The old key's scopes, best effort: they come from the audit log, which is opt-in
        on an organization (and may be refused or down). Without them the replacement is
        still minted, unrestricted: a response that stops here leaves production on a
        dead key. Returns (scopes, why they are missing)."""
        try:
            return provider.key_scopes(old), None
        except KeyresponseError as exc:
            return None, (f"scopes not copied: {exc.message} (the replacement is minted without "
                          "the old key's restrictions; restrict it by hand)")

    @staticmethod
    def _account(work: _IssueWork) -> str | None:
        return work.service_account_id if work.mode == "service_account_key" else None

    @classmethod
    def _spec(cls, work: _IssueWork, project: str, name: str) -> IssueSpec:
        """The key is named after the incident, with the old key's scopes and the policy's lifetime."""
        return IssueSpec(project, name, cls._account(work), scopes=work.scopes,
                         expires_in_seconds=work.expires_in_seconds)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: _IssueWork = plan.data
        if work.skip:
            replaced: list[str] = []
            earlier: list[dict[str, Any]] = []
            intents = ctx.notes("key.issue.intent")
            if intents:
                with http.retry_budget(ctx.remaining()):
                    replaced, earlier = self._revoke_earlier(ctx, provider_for(ctx), work, intents)
            reason = _no_targets(ctx)
            ctx.warn(f"no replacement issued: {reason}")
            return {"issued": False, "reason": reason, "replaced": replaced, "earlier": earlier}
        if work.scopes_missed:
            ctx.warn(work.scopes_missed)
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            project = work.project or resolve(ctx, provider=provider).project_id
            intents = ctx.notes("key.issue.intent")
            replaced, earlier = self._revoke_earlier(ctx, provider, work, intents)
            issued = self._mint(ctx, provider, work, project, len(intents), replaced)
            ctx.record("key.issue.minted", name=issued.name, project_id=project, key_id=issued.key_id,
                       service_account_id=issued.service_account_id, mode=work.mode, redacted_value=issued.redacted_value,
                       masked=issued.secret.masked)  # targets.deploy journals the same mask per target
            replaced += self._swept(ctx, provider, work, project, issued, earlier)
        crashpoint("key.issue:after-mint")
        return {"issued": True, "secret": issued.secret, "key_id": issued.key_id, "service_account_id": issued.service_account_id,
                "name": issued.name, "redacted_value": issued.redacted_value, "project_id": project,
                "created_at": iso(issued.created_at), "expires_at": iso(issued.expires_at),
                "scopes": list(issued.scopes) if issued.scopes else None, "scopes_copied": not work.scopes_missed,
                "replaced": replaced, "earlier": earlier}

    def _mint(self, ctx: StepContext, provider: Provider, work: _IssueWork, project: str, before: int,
              replaced: list[str]) -> IssuedKey:
        """Mint under a fresh journaled name, once more only after a lookup showed what the
        first try left; an unanswered try is journaled with how long it may still land."""
        by_key = work.mode == "service_account_key"
        for attempt in range(before + 1, before + 1 + MINT_TRIES):
            name = f"{work.prefix}-{ctx.incident.id}-{attempt}"
            # journaled before the POST: if we die before hearing the answer, a resume finds it by name
            ctx.record("key.issue.intent", name=name, project_id=project, mode=work.mode,
                       service_account_id=self._account(work))
            started = time.time()
            try:
                return provider.issue(self._spec(work, project, name))
            except ServiceError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    raise  # refused outright: nothing was made
                # no answer, or a 5xx: it may have taken effect; look before minting again
                left = provider.find_minted(project, [name], keys=by_key)
                for found in left:
                    _revoke_one(provider, work, project, found)
                replaced += [f.ident for f in left]
                # found nothing: it may still land later (key.retire looks again until then)
                settle = None if left else started + provider.mint_settle
                ctx.record("key.issue.failed", name=name, project_id=project, error=exc.message,
                           left_behind=len(left), mode=work.mode, settle_until=settle)
                if attempt == before + MINT_TRIES:
                    pending = _pending_settle(ctx)
                    hint = ("nothing was left live; `keyresponse resume` tries again" if not pending else
                            f"an attempt that got no answer may still take effect until {iso(max(pending.values()))}: "
                            "key.retire and every `keyresponse resume` look it up by name and revoke it; "
                            "`keyresponse resume` also tries the mint again")
                    raise ProviderError(f"could not mint the replacement: {exc.message}", service=provider.service,
                                        hint=hint) from None
                ctx.warn(f"minting {name} failed ({exc.message}); "
                         f"{'removed what it left' if left else 'it left nothing yet'}; minting once more")
        raise AssertionError("unreachable")  # the loop returns or raises

    def _swept(self, ctx: StepContext, provider: Provider, work: _IssueWork, project: str, issued: IssuedKey,
               kept: list[dict[str, Any]]) -> list[str]:
        """`_sweep`, which never costs the replacement just minted: its value exists only
        here, so a failed lookup or revoke is journaled as pending (key.retire and every
        resume look the names up again) and the step goes on with the new key."""
        try:
            return self._sweep(ctx, provider, work, project, issued, kept)
        except KeyresponseError as exc:
            names = sorted({i["name"] for i in journal_notes(ctx, "key.issue.intent")} - {issued.name})
            ctx.record("key.issue.sweep_pending", names=names, project_id=project, error=exc.message)
            ctx.warn(f"the replacement is minted, but looking up the earlier attempts {', '.join(names)} failed "
                     f"({exc.message}); key.retire and `keyresponse resume` look for them again")
            return []

    def _sweep(self, ctx: StepContext, provider: Provider, work: _IssueWork, project: str, issued: IssuedKey,
               kept: list[dict[str, Any]]) -> list[str]:
        """After a mint: every earlier attempt of this incident looked up again by name (one
        that got no answer may have landed meanwhile) and revoked, unless targets hold it."""
        names = {i["name"] for i in journal_notes(ctx, "key.issue.intent")} - {issued.name}
        if not names:
            return []
        keep = {k.get("service_account_id") or k.get("key_id") for k in kept}
        keep |= {issued.service_account_id, issued.key_id} - {""}
        found = [f for f in provider.find_minted(project, names, keys=work.mode == "service_account_key")
                 if f.ident not in keep]
        revoked = [f.ident for f in found if _revoke_one(provider, work, project, f)]
        if revoked:
            ctx.record("key.issue.orphans_revoked", ids=revoked, kept=[])
            ctx.warn(f"revoked {len(revoked)} earlier attempt(s) that took effect unheard: {', '.join(revoked)}")
        return revoked

    def _revoke_earlier(self, ctx: StepContext, provider: Provider, work: _IssueWork,
                        intents: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
        """Revoke every replacement an earlier attempt made (its value died with that
        attempt): by the ids journaled after a mint, and by name for those never heard of.
        With `keep_deployed`, one that targets already hold is kept and returned instead."""
        if not intents:
            return [], []
        by_key = work.mode == "service_account_key"
        targets: dict[tuple[str, str | None, str | None], None] = {}
        kept: list[dict[str, Any]] = []
        # A key on a service account cannot be revoked alone later, so only whole service
        # accounts are kept for key.retire.
        reached = written_masks(ctx) if work.keep_deployed and not by_key else set()
        for m in ctx.notes("key.issue.minted"):
            ident = (m["project_id"], None if by_key else m.get("service_account_id"), m.get("key_id") if by_key else None)
            if m.get("masked") in reached:
                kept.append({"project_id": m["project_id"], "service_account_id": ident[1], "key_id": ident[2],
                             "name": m.get("name"), "redacted_value": m.get("redacted_value"),
                             "masked": m.get("masked")})
                continue
            targets[ident] = None
        projects: dict[str, set[str]] = {}
        for i in intents:
            projects.setdefault(i["project_id"], set()).add(i["name"])
        keep_ids = {k["service_account_id"] or k["key_id"] for k in kept}
        for project, names in projects.items():
            for f in provider.find_minted(project, names, keys=by_key):
                if f.ident not in keep_ids:
                    targets[(project, f.service_account_id, f.key_id)] = None
        revoked = [sa or key or "" for project, sa, key in targets
                   if _revoke_one(provider, work, project, Minted("", sa, key))]
        ctx.record("key.issue.orphans_revoked", ids=revoked, kept=[k["service_account_id"] or k["key_id"] for k in kept])
        ctx.record("key.issue.kept", replacements=kept)  # what key.retire revokes later
        if revoked:
            ctx.warn(f"revoked {len(revoked)} earlier replacement(s) whose value was lost: {', '.join(revoked)}")
        if kept:
            ctx.warn(f"kept {len(kept)} earlier replacement(s) that targets hold until the new key is live: "
                     + ", ".join(k["service_account_id"] or k["key_id"] for k in kept))
        return revoked, kept



def _deleted_earlier(ctx: StepContext, account: str | None) -> str | None:
    """Why `account` will not exist when this step mints on it: an earlier step of this
    run deleted it, or plans to (a dry run models what earlier steps change)."""
    if not account:
        return None
    for step_id, out in ctx.outputs.items():
        if not isinstance(out, dict):
            continue
        if out.get("deleted_service_account") == account:
            return f"step {step_id!r} deleted service account {account} (with the leaked key), so no key can be minted on it"
        if dict.get(out, "may_delete_service_account") == account:
            return (f"step {step_id!r} may delete service account {account} (the leaked key's own account: the "
                    "provider deletes a service account's key with its account where it refuses to delete it "
                    "alone), and this step would then mint on a deleted account, leaving no replacement")
    return None


def _revoke_one(provider: Provider, work: _IssueWork, project: str, found: Minted) -> bool:
    try:
        return provider.revoke_minted(project, found.service_account_id, found.key_id)
    except CannotRevoke as exc:
        raise StepError(f"an earlier replacement {found.ident} cannot be revoked: {exc.message}; "
                        "not minting another", hint=exc.hint) from None


def _pending_settle(ctx: StepContext) -> dict[str, float]:
    """Mint attempts of this incident that got no answer and may still land: name -> until when."""
    return {f["name"]: float(f["settle_until"]) for f in journal_notes(ctx, "key.issue.failed")
            if f.get("settle_until") and f.get("name")}


def orphans(records: list[dict[str, Any]], provider: Provider, *,
            in_use: set[str] | None = None) -> list[tuple[str, Minted]]:
    """Read-only: every replacement this incident's journal says it tried to mint that is
    live at the provider and that nobody holds (no target was written with it, it is not
    the incident's replacement in use, nor `in_use`, ids the inventory names): what
    key.retire revokes on the next resume, as (project, what was found)."""
    notes = [r for r in records if r.get("event") == "step.note"]
    intents = [r for r in notes if r.get("note") == "key.issue.intent" and r.get("name") and r.get("project_id")]
    made = [m for m in notes if m.get("note") == "key.issue.minted"]
    minted = _by_ident(made, intents)
    held = {mask for masks in held_in(records).values() for mask in masks}
    in_use = set(in_use or ()) | ({_minted_ident(made[-1], intents)} if made else set())
    found: list[tuple[str, Minted]] = []
    for project, by_key in {(str(i["project_id"]), i.get("mode") == "service_account_key") for i in intents}:
        names = {str(i["name"]) for i in intents if i["project_id"] == project}
        for f in provider.find_minted(project, names, keys=by_key):
            note = minted.get(f.ident) or {}
            if note.get("masked") in held or ({f.ident, note.get("key_id")} & in_use):
                continue
            found.append((project, f))
    return found


class Retire:
    name = "key.retire"
    # runs on every resume of the incident: a mint that landed after the last look is still caught
    every_resume = True
    summary = ("Revoke the earlier replacements key.issue kept because targets held them (a run that died "
               "after deploying), once no target holds them any more; and any earlier mint of this incident "
               "that took effect unheard.")
    With = NoArgs

    def plan(self, args: NoArgs, ctx: StepContext) -> Plan:
        kept = _kept(ctx)
        changes = [f"revoke {k.get('service_account_id') or k.get('key_id')} ({k.get('masked')})" for k in kept]
        tries = _earlier_tries(ctx)
        if tries:
            changes.append(f"look up {len(tries)} earlier mint attempt(s) of this incident by name; "
                           "revoke any that took effect and no target holds")
        return Plan(summary=f"revoke {len(kept)} earlier replacement(s)" if kept else "no earlier replacement to revoke",
                    changes=changes, data=kept, destructive=bool(changes))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        revoked: list[str] = []
        still_held: list[str] = []
        held = held_masks(ctx)
        work = _IssueWork("service_account", None, "", None)
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx) if plan.data or _earlier_tries(ctx) else None
            for item in plan.data or []:
                ident = item.get("service_account_id") or item.get("key_id") or ""
                holders = sorted(t for t, masks in held.items() if item.get("masked") in masks)
                if holders:  # revoking it now would cut these targets off
                    still_held.append(ident)
                    ctx.warn(f"earlier replacement {ident} is still held by {', '.join(holders)}: left live")
                    continue
                assert provider is not None
                _revoke_one(provider, work, item["project_id"], Minted("", item.get("service_account_id"),
                                                                       item.get("key_id")))
                ctx.record("key.retire.revoked", id=ident)
                revoked.append(ident)
                ctx.progress(f"revoked earlier replacement {ident}")
            if provider is not None:
                revoked += self._unheard(ctx, provider, work, held, set(still_held) | set(revoked))
        outputs: dict[str, object] = {"revoked": revoked, "still_held": still_held}
        if still_held:
            err = StepError(f"{len(still_held)} earlier replacement(s) are still held by targets: {', '.join(still_held)}",
                            hint="get the new key onto those targets (fix, then `keyresponse resume`); "
                                 "this step then revokes them")
            err.outputs = outputs
            raise err
        return outputs

    def _unheard(self, ctx: StepContext, provider: Provider, work: _IssueWork, held: dict[str, set[str]],
                 done: set[str]) -> list[str]:
        """Every earlier mint attempt of this incident, looked up by name: one that took
        effect and no target holds is revoked. A try that got no answer may still land
        until its `settle_until`: it is looked for again until then (or it shows up)."""
        tries = _earlier_tries(ctx)
        minted = _by_ident(journal_notes(ctx, "key.issue.minted"), journal_notes(ctx, "key.issue.intent"))
        current = _current(ctx)
        waiting = {n: t for n, t in _pending_settle(ctx).items() if n in {t["name"] for t in tries}}
        revoked: list[str] = []
        while True:
            seen: set[str] = set()
            for project, by_key in {(t["project_id"], t.get("mode") == "service_account_key") for t in tries}:
                names = {t["name"] for t in tries if t["project_id"] == project}
                for found in provider.find_minted(project, names, keys=by_key):
                    seen.add(found.name)
                    if found.ident in done or found.ident == current:
                        continue
                    mask = (minted.get(found.ident) or {}).get("masked")
                    holders = sorted(t for t, masks in held.items() if mask and mask in masks)
                    if holders:
                        ctx.warn(f"earlier mint {found.ident} is held by {', '.join(holders)}: left live")
                        continue
                    done.add(found.ident)
                    if _revoke_one(provider, work, project, found):
                        ctx.record("key.retire.revoked", id=found.ident)
                        revoked.append(found.ident)
                        ctx.warn(f"revoked {found.ident}, an earlier mint that took effect unheard")
            now = time.time()
            left = {n: t for n, t in waiting.items() if n not in seen and t > now}
            budget = ctx.remaining()
            if not left:
                return revoked
            if budget is not None and budget < 2.0:
                raise StepError(f"earlier mint attempt(s) {', '.join(sorted(left))} got no answer and may still take "
                                f"effect until {iso(max(left.values()))}; this step ran out of time looking for them",
                                hint="`keyresponse resume` looks them up again (and revokes any that landed); "
                                     "`keyresponse drill` reports any that stay live")
            ctx.progress(f"an earlier mint got no answer and may still take effect; looking again "
                         f"(until {iso(max(left.values()))})")
            time.sleep(min(1.0, max(0.05, min(left.values()) - now)))


def _earlier_tries(ctx: StepContext) -> list[dict[str, Any]]:
    """The mint intents of this incident other than the replacement now in use."""
    minted = journal_notes(ctx, "key.issue.minted")
    last = minted[-1].get("name") if minted else None
    return [i for i in journal_notes(ctx, "key.issue.intent") if i.get("name") != last]


def _current(ctx: StepContext) -> str | None:
    minted = journal_notes(ctx, "key.issue.minted")
    if not minted:
        return None
    return _minted_ident(minted[-1], journal_notes(ctx, "key.issue.intent")) or None


def _minted_ident(note: dict[str, Any], intents: list[dict[str, Any]]) -> str:
    """What `find_minted` calls a journaled mint (`Minted.ident`): the new service account,
    or in service_account_key mode the key (its account existed before and is not ours)."""
    mode = note.get("mode") or next((i.get("mode") for i in intents if i.get("name") == note.get("name")), None)
    if mode == "service_account_key":
        return str(note.get("key_id") or "")
    return str(note.get("service_account_id") or note.get("key_id") or "")


def _by_ident(made: list[dict[str, Any]], intents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {_minted_ident(m, intents): m for m in made}


def _kept(ctx: StepContext) -> list[dict[str, Any]]:
    """The replacements key.issue last kept, less those already retired."""
    kept: list[dict[str, Any]] = []
    retired: set[str] = set()
    for r in journal_notes(ctx, "key.issue.kept", "key.retire.revoked"):
        if r.get("note") == "key.issue.kept":
            kept = [k for k in r.get("replacements") or [] if isinstance(k, dict)]
        else:
            retired.add(str(r.get("id")))
    return [k for k in kept if (k.get("service_account_id") or k.get("key_id")) not in retired]
