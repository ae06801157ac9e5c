"""The `admin_key.*` actions: replace a leaked organization admin key (playbook
leaked-admin-key), the one keyresponse itself authenticates with or another one.

The order is a rotation's (mint, deploy, prove, switch, revoke), because the admin key
is also what keyresponse needs to finish: revoking it first would leave the run with
no credential. Crash safety follows key.issue's: each mint is journaled by name
before the POST, so a resumed run finds what an unheard mint left (its value is
gone) and deletes it before minting again. A resumed run that finds an earlier mint
in keyresponse's own source target (`keys.NAME.admin.source`, an env file) takes it
back from there instead of minting anew; that is also how a run resumed after the
revoke gets a working credential while the environment still holds the dead key.
No value is ever journaled: only names, ids and masks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from keyresponse.action import Check, NoArgs, Plan, StepContext, With
from keyresponse.actions.key_common import held_masks, journal_notes
from keyresponse.errors import ConfigError, KeyresponseError, ServiceError, StepError, UsageError
from keyresponse.faults import crashpoint
from keyresponse.secret import Secret

if TYPE_CHECKING:
    from keyresponse.inventory import KeyEntry
    from keyresponse.providers.openai_admin import AdminKey, AdminKeys
    from keyresponse.providers.settings import ProviderSettings

MINT_TRIES = 2  # the second only after a lookup by name showed what the first one left
PATH = "/organization/admin_api_keys"


# --- what every admin_key step shares


def _entry(ctx: StepContext) -> KeyEntry:
    entry = ctx.require_key()
    if entry.kind != "admin":
        raise UsageError(f"keys.{ctx.key_name} is a project key; step {ctx.step_id!r} replaces an admin key",
                         hint="run `leaked-key` for a project key, or mark the entry `kind: admin`")
    return entry


def _settings(ctx: StepContext) -> ProviderSettings:
    from keyresponse.actions.key_common import provider_settings

    return provider_settings(ctx.inventory, _entry(ctx).provider)[1]


def _env(ctx: StepContext) -> str:
    """The env var holding the admin key's value: its `secret_env`, else the provider's own."""
    return _entry(ctx).secret_env or _settings(ctx).admin_key_env


def _own(ctx: StepContext) -> bool:
    """Whether the leaked key is the one keyresponse authenticates with: as journaled when it
    was found (its redacted form fits the provider's admin credential), else a guess for plans."""
    notes = journal_notes(ctx, "admin_key.resolved")
    if notes:
        return bool(notes[-1].get("own"))
    return _env(ctx) == _settings(ctx).admin_key_env


def admin_keys(ctx: StepContext) -> AdminKeys:
    """The organization's admin keys, on the credential keyresponse uses now (the new key
    once admin_key.use has switched to it)."""
    from keyresponse.providers import openai_admin

    cfg = _settings(ctx)
    _after_revoke(ctx, cfg.admin_key_env)
    token = ctx.inventory.credential(cfg.admin_key_env, f"provider {cfg.kind}: admin credential")
    return openai_admin.connect(cfg, token, ctx.http)


def _after_revoke(ctx: StepContext, env: str) -> None:
    """A run resumed after this incident revoked keyresponse's own key may hold it still in
    `env`, whatever step comes first (a failed deploy's redeploy re-runs the mint before
    admin_key.use): take the new key back from the source target before any call."""
    minted = _minted(ctx)
    if not (minted and _own(ctx) and journal_notes(ctx, "admin_key.revoking")):
        return
    try:
        current: str | None = ctx.inventory.credential(env, "admin credential")
    except ConfigError:
        current = None  # unset: the source target is all there is
    if current and Secret(current).masked == minted[-1].get("masked"):
        return  # already the new key (switched in this process, or exported by hand)
    value = read_source(ctx)
    if value is not None and value.masked == minted[-1].get("masked"):
        ctx.inventory.use_credential(env, value.reveal())


def _leaked(ctx: StepContext, keys: AdminKeys | None = None) -> AdminKey:
    """The leaked admin key: as this incident journaled it, else by the inventory's
    key_id, else by the value its env var holds; journaled the first time."""
    from keyresponse.providers.openai_admin import AdminKey

    notes = journal_notes(ctx, "admin_key.resolved")
    if notes:
        return AdminKey(**notes[-1]["key"])
    entry = _entry(ctx)
    keys = keys or admin_keys(ctx)
    if entry.key_id:
        found = keys.find(key_id=entry.key_id)
    else:
        from keyresponse.secret import secret_from_env

        value = secret_from_env(_env(ctx))
        if value is None:
            raise UsageError(f"nothing identifies the admin key keys.{ctx.key_name}",
                             hint=f"set its key_id in the inventory, or export {_env(ctx)}")
        found = keys.find(value=value)
    own = found.matches(os.environ.get(_settings(ctx).admin_key_env, "").strip())
    ctx.record("admin_key.resolved", key={f: getattr(found, f) for f in found.__dataclass_fields__}, own=own)
    return found


def _minted(ctx: StepContext) -> list[dict[str, Any]]:
    return journal_notes(ctx, "admin_key.minted")


def _intent_names(ctx: StepContext) -> set[str]:
    return {str(i["name"]) for i in journal_notes(ctx, "admin_key.intent")}


def read_source(ctx: StepContext) -> Secret | None:
    """The value keyresponse's own source target (`admin.source`, an env file) holds, or None."""
    from keyresponse.targets import dotenv, envfile

    entry = _entry(ctx)
    if entry.admin.source is None:
        return None
    cfg = entry.targets[entry.admin.source - 1]
    assert isinstance(cfg, envfile.EnvFileTarget)
    try:
        real = envfile.place(cfg.path, ctx.inventory.root, cfg.allow_outside)
        text = real.read_text(encoding="utf-8").removeprefix("\ufeff")
        values = {b.name: b.value for b in dotenv.parse(text)}
    except (OSError, ValueError, envfile.PathProblem):
        return None
    value = values.get(cfg.variables[0]) if cfg.variables else None
    return Secret(value) if value else None


def orphans(records: list[dict[str, Any]], keys: AdminKeys, *, in_use: set[str]) -> list[AdminKey]:
    """Read-only, for the drill: live admin keys an incident's journal says it tried to mint
    (by `admin_key.intent` name) that no target was written with and that are not `in_use`
    (ids the inventory names): what admin_key.use deletes on the next resume."""
    from keyresponse.actions.key_common import held_in

    notes = [r for r in records if r.get("event") == "step.note"]
    names = {str(r["name"]) for r in notes if r.get("note") == "admin_key.intent" and r.get("name")}
    if not names:
        return []
    masks = {str(m.get("key_id")): m.get("masked") for m in notes if m.get("note") == "admin_key.minted"}
    held = {mask for found in held_in(records).values() for mask in found}
    return [k for k in keys.named(names) if k.key_id not in in_use and masks.get(k.key_id) not in held]


def _outputs(key: AdminKey, secret: Secret, **extra: Any) -> dict[str, Any]:
    return {"secret": secret, "masked": secret.masked, **key.outputs(), **extra}


# --- admin_key.find


class Find:
    name = "admin_key.find"
    summary = "Identify the leaked admin key (by the inventory's key_id, or by its value) and journal it."
    With = NoArgs

    def plan(self, args: NoArgs, ctx: StepContext) -> Plan:
        entry = _entry(ctx)
        how = f"by id {entry.key_id}" if entry.key_id else f"by the value of ${_env(ctx)}"
        return Plan(summary=f"find admin key keys.{ctx.key_name} {how}")

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        try:
            found = _leaked_read_only(ctx)
        except KeyresponseError as exc:
            return [Check("the leaked admin key is listed", False, exc.message, exc.hint)]
        return [Check("the leaked admin key is listed", True, found.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        found = _leaked(ctx)
        ctx.progress(f"leaked: {found.describe()}" + (" (the key keyresponse itself uses)" if _own(ctx) else ""))
        return {**found.outputs(), "own": _own(ctx)}


def _leaked_read_only(ctx: StepContext) -> AdminKey:
    """`_leaked` without journaling (for preflights)."""
    from keyresponse.providers.openai_admin import AdminKey
    from keyresponse.secret import secret_from_env

    notes = journal_notes(ctx, "admin_key.resolved")
    if notes:
        return AdminKey(**notes[-1]["key"])
    entry, keys = _entry(ctx), admin_keys(ctx)
    if entry.key_id:
        return keys.find(key_id=entry.key_id)
    return keys.find(value=secret_from_env(_env(ctx)))


# --- admin_key.issue


class IssueArgs(With):
    name_prefix: str | None = None
    expires_in_seconds: int | None = None


@dataclass
class _IssueWork:
    prefix: str
    expires_in_seconds: int | None


class Issue:
    name = "admin_key.issue"
    summary = ("Mint a new admin key named after the incident; a re-run first takes back an earlier mint from "
               "keyresponse's own source target, or deletes the mints nobody holds.")
    With = IssueArgs

    def plan(self, args: IssueArgs, ctx: StepContext) -> Plan:
        policy = _entry(ctx).admin
        work = _IssueWork(args.name_prefix or policy.name_prefix, args.expires_in_seconds or policy.expires_in_seconds)
        changes = [f"POST {PATH}: a new admin key {work.prefix}-{ctx.incident.id}-N"
                   + (f", expiring in {work.expires_in_seconds}s" if work.expires_in_seconds else "")]
        if _intent_names(ctx):
            changes.insert(0, "first take back the earlier mint keyresponse's source target holds, "
                              "or delete the earlier mints of this incident")
        # a live credential nobody may hold otherwise: confirmed like a revoke
        return Plan(summary="mint a new organization admin key", changes=changes, data=work, destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        what = "the admin credential can read and mint admin keys"
        if not _entry(ctx).targets:
            return [Check("somewhere to deploy the new admin key", False, f"keys.{ctx.key_name} has no targets",
                          f"list where the admin key lives under keys.{ctx.key_name}.targets", settled=True)]
        try:
            listed = admin_keys(ctx).listed()
        except KeyresponseError as exc:
            return [Check(what, False, exc.message, exc.hint)]
        return [Check(what, True, f"{len(listed)} admin key(s) listed")]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: _IssueWork = plan.data
        with http.retry_budget(ctx.remaining()):
            keys = admin_keys(ctx)
            taken = self._take_back(ctx, keys)
            revoked = [k.key_id for k in keys.named(_intent_names(ctx))
                       if (taken is None or k.key_id != taken[0].key_id) and keys.delete(k.key_id)]
            if revoked:
                ctx.record("admin_key.orphans_revoked", ids=revoked)
                ctx.warn(f"deleted {len(revoked)} earlier mint(s) of this incident whose value was lost: "
                         + ", ".join(revoked))
            if taken is not None:
                key, secret = taken
                ctx.progress(f"took back {key.describe()} from keyresponse's source target")
                return _outputs(key, secret, taken_back=True, replaced=revoked)
            key, secret = self._mint(ctx, keys, work)
        return _outputs(key, secret, taken_back=False, replaced=revoked)

    def _take_back(self, ctx: StepContext, keys: AdminKeys) -> tuple[AdminKey, Secret] | None:
        """The last mint of this incident, if keyresponse's source target holds it and it is live."""
        minted = _minted(ctx)
        value = read_source(ctx) if minted else None
        if value is None or value.masked != minted[-1].get("masked"):
            return None
        key = keys.get(str(minted[-1]["key_id"]))
        return (key, value) if key is not None and key.matches(value.reveal()) else None

    def _mint(self, ctx: StepContext, keys: AdminKeys, work: _IssueWork) -> tuple[AdminKey, Secret]:
        before = len(journal_notes(ctx, "admin_key.intent"))
        for attempt in range(before + 1, before + 1 + MINT_TRIES):
            name = f"{work.prefix}-{ctx.incident.id}-{attempt}"
            # journaled before the POST: if we die before hearing the answer, a resume finds it by name
            ctx.record("admin_key.intent", name=name)
            try:
                key, secret = keys.create(name, work.expires_in_seconds)
            except ServiceError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    raise  # refused outright: nothing was made
                left = [k.key_id for k in keys.named([name]) if keys.delete(k.key_id)]
                ctx.record("admin_key.failed", name=name, error=exc.message, left_behind=left)
                if attempt == before + MINT_TRIES:
                    raise StepError(f"could not mint the new admin key: {exc.message}",
                                    hint="nothing it left is live; `keyresponse resume` tries again") from None
                ctx.warn(f"minting {name} failed ({exc.message}); minting once more")
                continue
            crashpoint("admin_key.issue:after-mint")
            ctx.record("admin_key.minted", name=name, key_id=key.key_id, redacted_value=key.redacted_value,
                       masked=secret.masked)  # targets.deploy journals the same mask per target
            ctx.progress(f"minted {key.describe()}")
            return key, secret
        raise AssertionError("unreachable")  # the loop returns or raises


# --- admin_key.probe


class ProbeArgs(With):
    secret: Any = None  # the new key (`${{ steps.issue.outputs.secret }}`); none: the leaked key
    expect: Literal["live", "dead"]


class Probe:
    name = "admin_key.probe"
    summary = ("Prove an admin key live (an authenticated read with it) or the leaked one dead (no longer "
               "listed, and refused when its value is at hand).")
    With = ProbeArgs

    def plan(self, args: ProbeArgs, ctx: StepContext) -> Plan:
        _entry(ctx)
        what = f"GET {PATH} with {getattr(args.secret, 'masked', 'the new key')}" if args.secret is not None \
            else "check the leaked admin key is no longer listed, and refused"
        return Plan(summary=f"{what}, expecting {args.expect}", data=args)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []  # the probe is itself a read

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse.journal import LostSecret
        from keyresponse.providers.base import iso
        from keyresponse.providers.openai_admin import connect

        args: ProbeArgs = plan.data
        if isinstance(args.secret, LostSecret):
            raise StepError(f"the new admin key ({args.secret.masked}) was lost with an earlier process",
                            hint="`keyresponse resume` mints or takes it back first")
        if isinstance(args.secret, Secret):
            # no admin credential needed to try a key: only its own
            answer = connect(_settings(ctx), "unused", ctx.http).probe(args.secret)
            result, method, detail = answer.result, f"GET {PATH}", answer.detail
        else:
            keys = admin_keys(ctx)
            leaked = _leaked(ctx, keys)
            listed = keys.get(leaked.key_id)
            result, method = ("live" if listed else "dead"), f"GET {PATH}/{leaked.key_id}"
            detail = f"{leaked.key_id} is {'still' if listed else 'no longer'} listed"
            value = _leaked_value(ctx, leaked)
            if value is not None and result == "dead":
                answer = keys.probe(value)
                detail += f"; its value gets {answer.status or answer.result}"
                result = "dead" if answer.result == "dead" else answer.result
        out = {"result": result, "method": method, "detail": detail, "expect": args.expect,
               "checked_at": iso(int(time.time()))}
        if result != args.expect:
            ctx.record("key.probe.result", **out)
            raise StepError(f"expected the key {args.expect}, but it is {result}: {detail}",
                            hint="check the organization's admin keys by hand, then `keyresponse resume`")
        return out


def _leaked_value(ctx: StepContext, leaked: AdminKey) -> Secret | None:
    """The leaked value, when the environment still holds it (the key keyresponse used)."""
    value = os.environ.get(_env(ctx), "").strip()
    return Secret(value) if value and leaked.matches(value) else None


# --- admin_key.use


class UseArgs(With):
    issue_step: str = "issue"  # the admin_key.issue step whose key to use (read directly: no re-run on resume)


class Use:
    name = "admin_key.use"
    # every resume: a new process starts on the environment's credential, which may be the revoked key
    every_resume = True
    summary = ("Switch keyresponse's own admin credential to the new key for the rest of the run (a resumed run "
               "reads it back from the source target), and delete earlier mints of this incident nobody holds.")
    With = UseArgs

    def plan(self, args: UseArgs, ctx: StepContext) -> Plan:
        env = _settings(ctx).admin_key_env
        if journal_notes(ctx, "admin_key.resolved"):
            what = f"instead of ${env}" if _own(ctx) else "(keyresponse does not use the leaked one: prove it only)"
        else:
            what = f"if the leaked key is the one ${env} holds"
        return Plan(summary=f"authenticate with the new admin key from now on, {what}", data=args)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        args: UseArgs = plan.data
        issued = ctx.outputs.get(args.issue_step) or {}
        minted = _minted(ctx)
        if not minted:
            raise StepError("no new admin key was minted in this incident", hint=f"step {args.issue_step!r} mints it")
        current = minted[-1]
        secret, via = issued.get("secret"), "this run's mint"
        if not isinstance(secret, Secret) or secret.masked != current.get("masked"):
            secret, via = self._found(ctx, str(current.get("masked")))
        with http.retry_budget(ctx.remaining()):
            from keyresponse.providers.openai_admin import connect

            answer = connect(_settings(ctx), "unused", ctx.http).probe(secret)
            if answer.result != "live":
                raise StepError(f"the new admin key ({secret.masked}, from {via}) is {answer.result}: {answer.detail}")
            if _own(ctx):
                ctx.inventory.use_credential(_settings(ctx).admin_key_env, secret.reveal())
            swept = self._sweep(ctx, str(current["key_id"]))
        ctx.progress(f"keyresponse now authenticates with {secret.masked} ({via})" if _own(ctx)
                     else f"the new admin key {secret.masked} is live")
        return {"switched": _own(ctx), "masked": secret.masked, "key_id": current["key_id"], "via": via,
                "deleted_earlier": swept}

    @staticmethod
    def _found(ctx: StepContext, masked: str) -> tuple[Secret, str]:
        """The new key's value after a restart: the source target's, else the environment's."""
        for value, via in ((read_source(ctx), "keyresponse's source target"),
                           (os.environ.get(_env(ctx), "").strip() or None, f"${_env(ctx)}")):
            if value is not None:
                found = value if isinstance(value, Secret) else Secret(value)
                if found.masked == masked:
                    return found, via
        where = f"target #{_entry(ctx).admin.source}" if _entry(ctx).admin.source else "any target"
        raise StepError(f"the new admin key ({masked}) was lost with the earlier process and {where} does not hold it",
                        hint=f"export {_settings(ctx).admin_key_env} with the value the targets hold, then "
                             f"`keyresponse resume`; set keys.{ctx.key_name}.admin.source to read it back yourself")

    @staticmethod
    def _sweep(ctx: StepContext, current: str) -> list[str]:
        """Earlier mints of this incident that landed unheard, or that a redeploy replaced:
        deleted unless a target may still hold them."""
        held = {m for masks in held_masks(ctx).values() for m in masks}
        masks = {str(m.get("key_id")): m.get("masked") for m in _minted(ctx)}
        keys = admin_keys(ctx)
        gone = [k.key_id for k in keys.named(_intent_names(ctx))
                if k.key_id != current and masks.get(k.key_id) not in held and keys.delete(k.key_id)]
        if gone:
            ctx.record("admin_key.orphans_revoked", ids=gone)
            ctx.warn(f"deleted {len(gone)} earlier mint(s) of this incident: {', '.join(gone)}")
        return gone


# --- admin_key.revoke


class Revoke:
    name = "admin_key.revoke"
    summary = "Delete the leaked admin key (DELETE /organization/admin_api_keys/{id}); already gone counts as done."
    With = NoArgs

    def plan(self, args: NoArgs, ctx: StepContext) -> Plan:
        entry = _entry(ctx)
        which = entry.key_id or f"the admin key ${_env(ctx)} holds"
        return Plan(summary=f"revoke the leaked admin key {which}", changes=[f"DELETE {PATH}/{which}"],
                    destructive=True)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        try:
            found = _leaked_read_only(ctx)
        except KeyresponseError as exc:
            return [Check("the leaked admin key is found", False, exc.message, exc.hint)]
        plan.changes[:] = [f"DELETE {PATH}/{found.key_id} ({found.describe()})"]
        return [Check("the leaked admin key is found", True, found.describe())]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http
        from keyresponse.providers.base import iso

        with http.retry_budget(ctx.remaining()):
            keys = admin_keys(ctx)
            leaked = _leaked(ctx, keys)
            if leaked.key_id in {str(m.get("key_id")) for m in _minted(ctx)}:
                raise StepError(f"{leaked.key_id} is this incident's new admin key, not the leaked one")
            if _own(ctx) and leaked.matches(ctx.inventory.credential(_settings(ctx).admin_key_env, "admin key")):
                raise StepError("keyresponse still authenticates with the leaked admin key: revoking it now "
                                "would leave the run with no credential",
                                hint="put an admin_key.use step before the revoke")
            sent_before = bool(ctx.notes("admin_key.revoking"))
            ctx.record("admin_key.revoking", key_id=leaked.key_id)
            deleted = keys.delete(leaked.key_id, what=f"revoke the leaked admin key {leaked.key_id}")
        ctx.progress(f"revoked {leaked.describe()}" if deleted else f"{leaked.key_id} was already gone")
        return {**leaked.outputs(), "method": f"DELETE {PATH}/{{key_id}}",
                "already_gone": not deleted and not sent_before, "revoked_at": iso(int(time.time()))}
