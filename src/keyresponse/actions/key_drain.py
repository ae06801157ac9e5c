"""The `key.drain` action: before a rotation revokes the old key, watch its traffic
stop.

It reads the old key's requests by minute (and the new key's, for the progress line)
until the old one has been unused for `quiet`; then revoke may go. If the old key is
still in use after `max_wait`, it stops the run before the revoke, naming what is
still on the old key: targets whose deploy or restart did not happen, or, when every
target holds the new key, a consumer the inventory does not list.

Time is the issuer's: the usage API's buckets say what "now" is, so the quiet period
and `max_wait` run on the issuer's clock (a sandbox whose minutes are seconds drains in
seconds), never shorter than they would on this machine's clock. Reads are read-only:
the action plans and preflights like any other, and a resumed run simply watches again.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from keyresponse.action import Check, Plan, StepContext, With
from keyresponse.actions.key_common import Work, failed, journal_notes, provider_for, resolve
from keyresponse.errors import KeyresponseError, StepError
from keyresponse.providers.base import KeyRecord, iso

if TYPE_CHECKING:
    from keyresponse.providers.base import MinuteUsage

MINUTE = 60
_UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(value: Any) -> int:
    """`90`, `"90s"`, `"10m"`, `"1h"` -> seconds."""
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (e.g. 90s, 10m, 1h)")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "s"])


def minutes_text(secs: float) -> str:
    return f"{secs / 60:g}m" if secs % 60 == 0 else f"{int(secs)}s"


class DrainArgs(With):
    quiet: int | str = "10m"  # the old key unused this long: consumers have moved
    max_wait: int | str = "60m"  # still used after this long: stop, do not revoke
    poll: int | str = "30s"  # the longest pause between two reads (shorter when the issuer's clock runs fast)
    key_id: str | None = None  # the old key (default: the incident's key)
    new_key_id: str | None = None  # the replacement, for the progress line

    @field_validator("quiet", "max_wait", "poll")
    @classmethod
    def _duration(cls, value: Any) -> int:
        secs = seconds(value)
        if secs <= 0:
            raise ValueError("must be more than zero")
        return secs


class Drain:
    name = "key.drain"
    summary = ("Before the old key is revoked, watch its usage by minute until it has been unused for `quiet` "
               "(consumers moved to the new key); still used after `max_wait`: stop and name what is on it.")
    With = DrainArgs

    def plan(self, args: DrainArgs, ctx: StepContext) -> Plan:
        return Plan(summary=f"watch the old key's usage until it has been zero for {minutes_text(seconds(args.quiet))} "
                            f"(at most {minutes_text(seconds(args.max_wait))}), then let the revoke go",
                    data=Work(args))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        try:
            return [Check("the admin key can read usage by minute", True, provider_for(ctx).preflight())]
        except KeyresponseError as exc:
            return failed("the admin key can read usage by minute", exc)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        work: Work[DrainArgs] = plan.data
        args = work.args
        quiet, max_wait, poll = seconds(args.quiet), seconds(args.max_wait), seconds(args.poll)
        provider = provider_for(ctx)
        old = resolve(ctx, args.key_id, provider=provider)
        new = KeyRecord(key_id=args.new_key_id, project_id=old.project_id) if args.new_key_id else None
        real_start = time.monotonic()
        first: int | None = None
        start = int(time.time()) - quiet - MINUTE
        pause = min(float(poll), 1.0)
        last_line = ""
        polls = 0
        said_start = False
        while True:
            seen = provider.minute_usage(old, start)
            polls += 1
            if seen is None:
                ctx.warn(f"{provider.title} cannot count one key's use by the minute: the drain cannot tell whether "
                         "anything still uses the old key; revoking without it")
                return {"drained": None, "polls": polls, "reason": "usage by minute not available"}
            now = seen.end
            first = now if first is None else first
            fresh = provider.minute_usage(new, now - 5 * MINUTE) if new is not None else None
            line = _line(seen, fresh)
            if line != last_line:
                ctx.progress(line)
                last_line = line
            if not said_start:
                _say(ctx, f"Draining the old key before the revoke (quiet {minutes_text(quiet)}, at most "
                          f"{minutes_text(max_wait)}): {line}")
                said_start = True
            last = seen.last_used
            quiet_since = (last + MINUTE) if last is not None else seen.start
            if now - quiet_since >= quiet:
                out = _outputs(old, new, seen, fresh, quiet_since, first, now, polls, drained=True)
                ctx.record("key.drain", **{k: v for k, v in out.items() if k != "line"})
                _say(ctx, f"Old key drained: unused since {_hhmm(quiet_since)} ({minutes_text(now - quiet_since)}); "
                          f"the revoke goes ahead. {line}")
                return out
            waited = max(now - first, time.monotonic() - real_start)
            left = ctx.remaining()
            if waited >= max_wait or (left is not None and left <= pause + 1):
                out = _outputs(old, new, seen, fresh, quiet_since, first, now, polls, drained=False)
                why = (f"after {minutes_text(max_wait)} (`max_wait`)" if waited >= max_wait
                       else "before the step's `timeout:` ran out")
                suspects = _suspects(ctx)
                out["still_on_old_key"] = suspects
                ctx.record("key.drain", **{k: v for k, v in out.items() if k != "line"})
                _say(ctx, f"Old key still in use {why}: not revoked. Still on it: {'; '.join(suspects)}. {line}")
                err = StepError(
                    f"the old key {old.key_id} is still in use {why} ({line}); it was not revoked. "
                    f"Still on the old key: {'; '.join(suspects)}",
                    hint="move what still uses it to the new key (add a missing place to the inventory), then "
                         f"`keyresponse resume {ctx.incident.id}`; or rerun with --no-drain to revoke it regardless")
                err.retryable = False
                err.outputs = out
                raise err
            time.sleep(pause)
            pause = _next_pause(float(poll), now - first, time.monotonic() - real_start)
            start = max(seen.start, now - quiet - 2 * MINUTE)


def _next_pause(poll: float, issuer_elapsed: float, real_elapsed: float) -> float:
    """About one of the issuer's minutes, as this machine's clock counts it, at most `poll`."""
    if issuer_elapsed <= 0 or real_elapsed <= 0:
        return min(poll, 1.0)
    rate = issuer_elapsed / real_elapsed
    return max(0.05, min(poll, MINUTE / rate))


def _line(old: MinuteUsage, new: MinuteUsage | None) -> str:
    last = old.last_used
    text = f"old key: {old.rate()} req/min" + (f", last at {_hhmm(last)}" if last is not None else ", unused")
    if new is not None:
        text += f"; new key: {new.rate()} req/min"
    return text


def _hhmm(ts: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


def _outputs(old: KeyRecord, new: KeyRecord | None, seen: MinuteUsage, fresh: MinuteUsage | None,
             quiet_since: int, first: int, now: int, polls: int, *, drained: bool) -> dict[str, Any]:
    return {
        "drained": drained, "key_id": old.key_id, "new_key_id": new.key_id if new else None,
        "old_rate": seen.rate(), "old_last_used": iso(seen.last_used), "quiet_since": iso(quiet_since),
        "new_rate": fresh.rate() if fresh is not None else None, "watched_from": iso(first), "watched_to": iso(now),
        "waited_seconds": now - first, "polls": polls, "line": _line(seen, fresh),
    }


def _suspects(ctx: StepContext) -> list[str]:
    """What may still use the old key: targets whose deploy or restart failed, or else a
    consumer the inventory does not list."""
    deployed: dict[str, dict[str, Any]] = {}
    restarts: dict[str, dict[str, Any]] = {}
    for n in journal_notes(ctx, "target", "restart"):
        ident = str(n.get("target_id") or n.get("target"))
        (deployed if n.get("note") == "target" else restarts)[ident] = n
    out = [f"{n.get('target')} (not deployed: {n.get('error') or 'failed'})" for n in deployed.values()
           if n.get("status") != "applied" and not str(n.get("error") or "").startswith("written")]
    out += [f"{n.get('target')} (restart failed: {n.get('error') or 'failed'})" for n in restarts.values()
            if n.get("status") == "failed"]
    if not out:
        out.append("an unknown consumer: every target of the inventory holds the new key, so something that "
                   "uses the old key is not in the inventory (a place is missing)")
    return out


def _say(ctx: StepContext, text: str) -> None:
    """A line in the incident's Slack thread, when there is one; never stops the drain."""
    settings = ctx.inventory.model.notify.slack
    if settings is None:
        return
    try:
        from keyresponse import slack
        from keyresponse.actions.notify import find_thread

        thread = find_thread(ctx)
        if thread is None:
            return
        token = ctx.inventory.credential(settings.token_env, "Slack notifications")
        slack.client(token, settings.base_url).chat_postMessage(channel=thread[0], thread_ts=thread[1], text=text)
    except Exception as exc:  # noqa: BLE001 - Slack must never stop the response
        ctx.warn(f"drain progress not posted to Slack: {type(exc).__name__}")
