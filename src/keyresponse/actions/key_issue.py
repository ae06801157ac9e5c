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

from dataclasses import dataclass
from typing import Any, Literal

from keyresponse.action import Check, NoArgs, Plan, StepContext, With
from keyresponse.actions.key import _failed, provider_for, resolve
from keyresponse.errors import ConfigError, KeyresponseError, ProviderError, ServiceError, StepError
from keyresponse.faults import crashpoint
from keyresponse.providers.base import iso

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
                          args.keep_deployed)
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
            change = f"POST .../service_accounts/{work.service_account_id or '?'}/api_keys in {where} (a new key)"
        else:
            change = f"POST .../service_accounts in {where}: new service account {work.prefix}-{ctx.incident.id}-N"
        # minting creates a live credential: confirm it like a revoke (nobody may hold it otherwise)
        return Plan(summary=f"issue a replacement key in {where}", changes=[change], data=work, destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: _IssueWork = plan.data
        if work.skip:
            return []
        nowhere = _no_targets(ctx)
        if nowhere:
            return [Check("somewhere to deploy the replacement", False, nowhere,
                          f"list where the key is used under keys.{ctx.key_name or 'NAME'}.targets in the inventory")]
        what = "the admin key can create the replacement"
        try:
            provider, _ = provider_for(ctx)
            work.project = work.project or resolve(ctx, provider=provider).project_id
            if work.mode == "service_account_key":
                if not work.service_account_id:
                    raise ConfigError("issue.mode service_account_key needs issue.service_account_id in the inventory")
                if not provider.service_account_exists(work.project, work.service_account_id):
                    return [Check(what, False, f"no service account {work.service_account_id} in {work.project}",
                                  "fix issue.service_account_id, or use issue.mode: service_account")]
            else:
                provider.get(f"organization/projects/{work.project}/service_accounts", {"limit": 1}, what=what)
        except KeyresponseError as exc:
            return _failed(what, exc)
        earlier = ctx.notes("key.issue.intent")
        if earlier:
            plan.changes.insert(0, f"first deal with {len(earlier)} earlier mint(s) of this incident: revoke those "
                                   "no target holds, keep the others for key.retire")
        return [Check(what, True, f"project {work.project}")]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http
        from keyresponse.providers.base import IssueSpec

        work: _IssueWork = plan.data
        if work.skip:
            replaced: list[Any] = []
            earlier: list[Any] = []
            intents = ctx.notes("key.issue.intent")
            if intents:
                with http.retry_budget(ctx.remaining()):
                    provider, _ = provider_for(ctx)
                    replaced, earlier = self._revoke_earlier(ctx, provider, work, intents)
            reason = _no_targets(ctx)
            ctx.warn(f"no replacement issued: {reason}")
            return {"issued": False, "reason": reason, "replaced": replaced, "earlier": earlier}
        with http.retry_budget(ctx.remaining()):
            provider, _ = provider_for(ctx)
            project = work.project or resolve(ctx, provider=provider).project_id
            intents = ctx.notes("key.issue.intent")
            replaced, earlier = self._revoke_earlier(ctx, provider, work, intents)
            spec_sa = work.service_account_id if work.mode == "service_account_key" else None
            for attempt in range(len(intents) + 1, len(intents) + 1 + MINT_TRIES):
                name = f"{work.prefix}-{ctx.incident.id}-{attempt}"
                # journaled before the POST: if we die before hearing the answer, a resume finds it by name
                ctx.record("key.issue.intent", name=name, project_id=project, mode=work.mode,
                           service_account_id=spec_sa)
                try:
                    issued = provider.issue(IssueSpec(project, name, spec_sa))
                    break
                except ServiceError as exc:
                    if exc.status is not None and 400 <= exc.status < 500:
                        raise  # refused outright: nothing was made
                    # no answer, or a 5xx: it may have taken effect; look before minting again
                    left = provider.find_minted(project, [name], keys=work.mode == "service_account_key")
                    for found in left:
                        _revoke_one(provider, work, project, found.get("service_account_id"), found.get("key_id"))
                    replaced += [f.get("service_account_id") or f.get("key_id") for f in left]
                    ctx.record("key.issue.failed", name=name, error=exc.message, left_behind=len(left))
                    if attempt == len(intents) + MINT_TRIES:
                        raise ProviderError(f"could not mint the replacement: {exc.message}", service="openai",
                                            hint="nothing was left live; `keyresponse resume` tries again") from None
                    ctx.warn(f"minting {name} failed ({exc.message}); "
                             f"{'removed what it left' if left else 'it left nothing'}; minting once more")
            ctx.record("key.issue.minted", name=issued.name, project_id=project, key_id=issued.key_id,
                       service_account_id=issued.service_account_id, redacted_value=issued.redacted_value,
                       masked=issued.secret.masked)  # targets.deploy journals the same mask per target
        crashpoint("key.issue:after-mint")
        return {"issued": True, "secret": issued.secret, "key_id": issued.key_id, "service_account_id": issued.service_account_id,
                "name": issued.name, "redacted_value": issued.redacted_value, "project_id": project,
                "created_at": iso(issued.created_at), "replaced": replaced, "earlier": earlier}

    def _revoke_earlier(self, ctx: StepContext, provider: Any, work: _IssueWork,
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
                if (f.get("service_account_id") if not by_key else f.get("key_id")) not in keep_ids:
                    targets[(project, f.get("service_account_id"), f.get("key_id"))] = None
        revoked = [sa or key or "" for project, sa, key in targets if _revoke_one(provider, work, project, sa, key)]
        ctx.record("key.issue.orphans_revoked", ids=revoked, kept=[k["service_account_id"] or k["key_id"] for k in kept])
        ctx.record("key.issue.kept", replacements=kept)  # what key.retire revokes later
        if revoked:
            ctx.warn(f"revoked {len(revoked)} earlier replacement(s) whose value was lost: {', '.join(revoked)}")
        if kept:
            ctx.warn(f"kept {len(kept)} earlier replacement(s) that targets hold until the new key is live: "
                     + ", ".join(k["service_account_id"] or k["key_id"] for k in kept))
        return revoked, kept



def _revoke_one(provider: Any, work: _IssueWork, project: str, sa: str | None, key: str | None) -> bool:
    try:
        return bool(provider.revoke_minted(project, sa, key))
    except ProviderError as exc:
        if work.mode == "service_account_key" and exc.status == 400:
            raise StepError(
                f"an earlier replacement {key} on {work.service_account_id} cannot be revoked alone "
                "(OpenAI deletes a service account's keys only with the account); not minting another",
                hint=f"delete {key} in the OpenAI dashboard, then `keyresponse resume`; "
                     "issue.mode: service_account avoids this") from None
        raise


def written_masks(ctx: StepContext) -> set[str]:
    """Masks of every secret a target of this incident was, or may have been, written with
    (a `target.writing` note is journaled before each write, so a kill mid-write counts)."""
    return {r["secret"] for r in ctx.incident.journal.records()
            if r.get("event") == "step.note" and r.get("note") in ("target", "target.writing") and r.get("secret")}


def held_masks(ctx: StepContext) -> dict[str, set[str]]:
    """Per target, the masks it may hold now: its last confirmed write, plus any write
    that was started and never reported (the process died during it)."""
    confirmed: dict[str, str] = {}
    pending: dict[str, str] = {}
    for r in ctx.incident.journal.records():
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


class Retire:
    name = "key.retire"
    summary = ("Revoke the earlier replacements key.issue kept because targets held them (a run that died "
               "after deploying), once no target holds them any more.")
    With = NoArgs

    def plan(self, args: NoArgs, ctx: StepContext) -> Plan:
        kept = _kept(ctx)
        changes = [f"revoke {k.get('service_account_id') or k.get('key_id')} ({k.get('masked')})" for k in kept]
        return Plan(summary=f"revoke {len(kept)} earlier replacement(s)" if kept else "no earlier replacement to revoke",
                    changes=changes, data=kept, destructive=bool(kept))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        revoked: list[str] = []
        still_held: list[str] = []
        if not plan.data:
            return {"revoked": revoked, "still_held": still_held}
        held = held_masks(ctx)
        work = _IssueWork("service_account", None, "", None)
        with http.retry_budget(ctx.remaining()):
            provider, _ = provider_for(ctx)
            for item in plan.data:
                ident = item.get("service_account_id") or item.get("key_id") or ""
                holders = sorted(t for t, masks in held.items() if item.get("masked") in masks)
                if holders:  # revoking it now would cut these targets off
                    still_held.append(ident)
                    ctx.warn(f"earlier replacement {ident} is still held by {', '.join(holders)}: left live")
                    continue
                _revoke_one(provider, work, item["project_id"], item.get("service_account_id"), item.get("key_id"))
                ctx.record("key.retire.revoked", id=ident)
                revoked.append(ident)
                ctx.progress(f"revoked earlier replacement {ident}")
        outputs: dict[str, object] = {"revoked": revoked, "still_held": still_held}
        if still_held:
            err = StepError(f"{len(still_held)} earlier replacement(s) are still held by targets: {', '.join(still_held)}",
                            hint="get the new key onto those targets (fix, then `keyresponse resume`); "
                                 "this step then revokes them")
            err.outputs = outputs
            raise err
        return outputs


def _kept(ctx: StepContext) -> list[dict[str, Any]]:
    """The replacements key.issue last kept, less those already retired."""
    kept: list[dict[str, Any]] = []
    retired: set[str] = set()
    for r in ctx.incident.journal.records():
        if r.get("event") != "step.note":
            continue
        if r.get("note") == "key.issue.kept":
            kept = [k for k in r.get("replacements") or [] if isinstance(k, dict)]
        elif r.get("note") == "key.retire.revoked":
            retired.add(str(r.get("id")))
    return [k for k in kept if (k.get("service_account_id") or k.get("key_id")) not in retired]
