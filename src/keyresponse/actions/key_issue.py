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

from keyresponse.action import Check, Plan, StepContext, With
from keyresponse.actions.key import _failed, _journal_notes, provider_for, resolve
from keyresponse.errors import ConfigError, KeyresponseError, ProviderError, ServiceError, StepError
from keyresponse.faults import crashpoint
from keyresponse.providers.base import iso

MINT_TRIES = 2  # the second only after listing proved what the first one left behind


class IssueArgs(With):
    project: str | None = None
    mode: Literal["service_account", "service_account_key"] | None = None
    service_account_id: str | None = None
    name_prefix: str | None = None
    keep_deployed: bool = False  # keep earlier replacements targets hold, for key.retire


@dataclass
class _IssueWork:
    mode: str
    service_account_id: str | None
    prefix: str
    project: str | None
    keep_deployed: bool = False


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
        where = work.project or "the leaked key's project"
        if work.mode == "service_account_key":
            change = f"POST .../service_accounts/{work.service_account_id or '?'}/api_keys in {where} (a new key)"
        else:
            change = f"POST .../service_accounts in {where}: new service account {work.prefix}-{ctx.incident.id}-N"
        # minting creates a live credential: confirm it like a revoke (nobody may hold it otherwise)
        return Plan(summary=f"issue a replacement key in {where}", changes=[change], data=work, destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        work: _IssueWork = plan.data
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
        earlier = _journal_notes(ctx, "key.issue.intent")
        if earlier:
            plan.changes.insert(0, f"revoke {len(earlier)} earlier replacement(s) of this incident first")
        return [Check(what, True, f"project {work.project}")]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http
        from keyresponse.providers.base import IssueSpec

        work: _IssueWork = plan.data
        with http.retry_budget(ctx.remaining()):
            provider, _ = provider_for(ctx)
            project = work.project or resolve(ctx, provider=provider).project_id
            intents = _journal_notes(ctx, "key.issue.intent")
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
                       service_account_id=issued.service_account_id, redacted_value=issued.redacted_value)
        crashpoint("key.issue:after-mint")
        return {"secret": issued.secret, "key_id": issued.key_id, "service_account_id": issued.service_account_id,
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
        deployed = _deployed_mints(ctx) if work.keep_deployed else set()
        for m in _journal_notes(ctx, "key.issue.minted"):
            ident = (m["project_id"], None if by_key else m.get("service_account_id"), m.get("key_id") if by_key else None)
            if m.get("key_id") in deployed:
                kept.append({"project_id": m["project_id"], "service_account_id": ident[1], "key_id": ident[2],
                             "name": m.get("name"), "redacted_value": m.get("redacted_value")})
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


def _deployed_mints(ctx: StepContext) -> set[str]:
    """Key ids of this step's earlier mints that some target was written with: in journal
    order, a target applied after a mint (and before the next one) holds that mint."""
    deployed: set[str] = set()
    current: str | None = None
    for r in ctx.incident.journal.records():
        if r.get("event") != "step.note":
            continue
        if r.get("step") == ctx.step_id and r.get("note") == "key.issue.intent":
            current = None
        elif r.get("step") == ctx.step_id and r.get("note") == "key.issue.minted":
            current = r.get("key_id")
        elif r.get("note") == "target" and r.get("status") == "applied" and current:
            deployed.add(current)
    return deployed


class RetireArgs(With):
    replacements: Any = None  # `${{ steps.issue.outputs.earlier }}`


class Retire:
    name = "key.retire"
    summary = ("Revoke the earlier replacements key.issue kept because targets held them (a run that died "
               "after deploying), once their successor is deployed and live.")
    With = RetireArgs

    def plan(self, args: RetireArgs, ctx: StepContext) -> Plan:
        items = args.replacements if isinstance(args.replacements, list) else None
        if items is None and args.replacements is not None:  # planned: known after key.issue runs
            return Plan(summary="revoke any replacement an earlier run deployed (known after apply)", data=[])
        items = [i for i in items or [] if isinstance(i, dict)]
        changes = [f"revoke {i.get('service_account_id') or i.get('key_id')} ({i.get('redacted_value')})" for i in items]
        return Plan(summary=f"revoke {len(items)} earlier replacement(s)" if items else "no earlier replacement to revoke",
                    changes=changes, data=items, destructive=bool(items))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        revoked: list[str] = []
        if not plan.data:
            return {"revoked": revoked}
        work = _IssueWork("service_account" if plan.data[0].get("service_account_id") else "service_account_key",
                          None, "", None)
        with http.retry_budget(ctx.remaining()):
            provider, _ = provider_for(ctx)
            for item in plan.data:
                ident = item.get("service_account_id") or item.get("key_id") or ""
                gone = _revoke_one(provider, work, item["project_id"], item.get("service_account_id"),
                                   item.get("key_id"))
                revoked.append(ident)
                ctx.progress(f"earlier replacement {ident}: {'revoked' if gone else 'already gone'}")
        return {"revoked": revoked}
