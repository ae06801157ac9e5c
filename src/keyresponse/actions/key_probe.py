"""The `key.probe` action: is a key live, dead, restricted? Tried with its value when the
run has one (the leaked input, the replacement, or the inventory's `secret_env`), else
proven dead by the key no longer being listed."""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from keyresponse.action import Check, Plan, StepContext, With
from keyresponse.actions.key_common import Work, known_record, provider_for, resolve
from keyresponse.errors import StepError, UsageError
from keyresponse.providers.base import KeyNotFound, KeyRecord, iso
from keyresponse.secret import Secret

# --- key.probe ------------------------------------------------------------------------


class ProbeArgs(With):
    secret: Any = None
    expect: Literal["live", "dead", "restricted"] | None = None
    within: float = 20.0  # seconds to keep re-checking while the answer differs from `expect`
    key_id: str | None = None


def _as_secret(value: Any, what: str) -> Secret | None:
    from keyresponse.journal import LostSecret

    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, LostSecret):
        raise StepError(f"{what} ({value.masked}) was lost with an earlier process; the step that made it must run again",
                        hint="`keyresponse resume` re-runs it")
    if isinstance(value, str) and value:
        return Secret(value)
    raise UsageError(f"{what} must be a secret, got {type(value).__name__}")


class Probe:
    name = "key.probe"
    summary = "Call GET /models with a key: live, dead (invalid_api_key), restricted or unknown; `expect:` enforces one."
    With = ProbeArgs

    def plan(self, args: ProbeArgs, ctx: StepContext) -> Plan:
        known = known_record(ctx, args.key_id)
        secret = args.secret if args.secret is not None else _known_value(ctx, known[0] if known else None)
        how = f"GET /models with {getattr(secret, 'masked', '…')}" if secret is not None \
            else "check the key is no longer listed"
        return Plan(summary=how + (f", expecting {args.expect}" if args.expect else ""), data=Work(args))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []  # the probe is itself a read; there is nothing to prove before it

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse import http

        work: Work[ProbeArgs] = plan.data
        args = work.args
        secret = _as_secret(args.secret, "with.secret")
        deadline = time.monotonic() + (args.within if args.expect else 0)
        with http.retry_budget(ctx.remaining()):
            provider = provider_for(ctx)
            record: KeyRecord | None = None
            unlisted = None  # why the key cannot be found: it is no longer listed
            unchecked = False
            if secret is None:
                try:
                    record = resolve(ctx, args.key_id, provider=provider)
                    secret = _known_value(ctx, record, warn=True)
                    # a key no longer listed has no redacted form to check $secret_env against
                    unchecked = record.gone and secret is not None and not isinstance(ctx.inputs.get("leaked"), Secret)
                except KeyNotFound as exc:
                    leaked = ctx.inputs.get("leaked")
                    # the leaked value is the key by definition; $secret_env may hold another one
                    secret, unlisted = (leaked, None) if isinstance(leaked, Secret) else (None, exc.message)
            while True:
                if secret is not None:
                    answer = provider.probe(secret)
                    result, method, detail = answer.result, "models", answer.detail
                    if unchecked and result != "dead":
                        # a deleted key answers 401: a value that works belongs to another key
                        ctx.warn(f"${ctx.key.secret_env if ctx.key else 'secret_env'} holds another key than "
                                 f"{record.key_id if record else 'the leaked one'} (it is {result}); "
                                 "checking its listing instead")
                        secret, unchecked = None, False
                        continue
                elif unlisted is not None or record is None:
                    result, method, detail = "dead", "listing", f"not listed: {unlisted}"
                else:
                    listed = provider.probe_listing(record)
                    result, method, detail = listed.result, "listing", listed.detail
                if args.expect is None or result == args.expect or time.monotonic() >= deadline:
                    break
                time.sleep(1.0)
        out = {"result": result, "method": method, "expect": args.expect, "detail": detail,
               "key_id": record.key_id if record else None, "checked_at": iso(time.time())}
        ctx.record("key.probe.result", **out)
        if args.expect is not None and result != args.expect:
            still = " — the key is STILL LIVE" if args.expect == "dead" and result == "live" else ""
            raise StepError(f"expected the key to be {args.expect}, it is {result}{still}: {detail}",
                            hint=f"revoke it by hand in the {provider.title} dashboard" if still else None)
        return out


def _known_value(ctx: StepContext, record: KeyRecord | None, *, warn: bool = False) -> Secret | None:
    """The key's own value, when this run has it: the leaked input, else the inventory
    entry's `secret_env`. Trying the value is the strongest proof of death — but only
    of the key it belongs to: a value that does not fit the key's redacted form (say,
    `secret_env` still holding the key a rotation replaced) proves nothing, and the
    key is checked by its listing instead."""
    leaked = ctx.inputs.get("leaked")
    value, source = (leaked, "the leaked value") if isinstance(leaked, Secret) else (None, "")
    entry = ctx.key
    if value is None and entry is not None and entry.secret_env:
        raw = os.environ.get(entry.secret_env, "").strip()
        value, source = (Secret(raw), f"${entry.secret_env}") if raw else (None, "")
    if value is not None and record is not None and record.redacted_value and not record.matches(value.reveal()):
        if warn:
            ctx.warn(f"{source} ({value.masked}) is another key than {record.key_id} ({record.redacted_value}); "
                     "checking its listing instead")
        return None
    return value
