"""`targets.deploy` and `targets.restart`: the fan-out over every place a key lives.

Every target is written and verified concurrently (at most `inventory.concurrency`
at once, the same bound per host), its outcome journaled as it ends (note
`target`, keyed by the target's identity), one progress line each. A failed target does not stop the others; the
step fails at the end naming every failed target and the service's answer.
A retry of the step in the same process skips the targets that already hold this
exact secret; a resume has lost the secret, re-issues it, and redeploys them all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

from keyresponse.action import BaseAction, Check, NoArgs, Plan, StepContext, With
from keyresponse.errors import KeyresponseError, StepError, TargetError
from keyresponse.secret import REDACTOR, Secret
from keyresponse.targets.base import Shared, Target, build_targets, fan_out, select

# (incident, step, target identity) -> the Secret it received from this process. Kept in
# memory only: a mask alone can collide (1 in 62**4), and after a restart of the
# process the secret is gone anyway, so a resume must redeploy everything.
_APPLIED: dict[tuple[str, str, str], Secret] = {}
_APPLIED_LOCK = threading.Lock()


class DeployArgs(With):
    secret: object = None  # a Secret from an earlier step (a placeholder while planning)
    only: list[str | int] | None = None  # identities, descriptions or indexes
    restart: bool = False


@dataclass
class _Work:
    targets: list[Target]
    secret: object  # checked to be a Secret before anything is written
    restart: bool


def _work(plan: Plan) -> _Work:
    assert isinstance(plan.data, _Work)
    return plan.data


class Deploy(BaseAction):
    name = "targets.deploy"
    summary = "Write the new secret to every target of the key at once, verify each, optionally restart."
    With = DeployArgs

    def plan(self, args: DeployArgs, ctx: StepContext) -> Plan:
        _refuse_lost(args.secret)
        key = ctx.require_key()
        targets = select(build_targets(ctx, key, Shared(ctx.inventory.model.concurrency)), args.only)
        shown = args.secret.masked if isinstance(args.secret, Secret) else "the new secret"
        changes = [f"write {shown} to {t.describe()}" + (f", then {t.restart_what}" if args.restart and t.restart_what
                                                          else "") for t in targets]
        summary = (f"deploy {shown} to {len(targets)} target{'s' if len(targets) != 1 else ''}"
                   if targets else f"key {ctx.key_name!r} lists no targets: nothing to deploy")
        return Plan(summary=summary, changes=changes, data=_Work(targets, args.secret, args.restart),
                    destructive=bool(targets))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return _preflight(_work(plan).targets, ctx)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        work = _work(plan)
        secret = work.secret
        _refuse_lost(secret)
        if not isinstance(secret, Secret):
            raise _final(StepError("with.secret is not a secret", hint="pass a secret output whole, e.g. "
                                   "`secret: ${{ steps.issue.outputs.secret }}`"))
        total = len(work.targets)
        finished = [0]
        lock = threading.Lock()

        def one(target: Target) -> dict[str, Any]:
            me, ident = target.describe(), target.identity
            mark = (ctx.incident.id, ctx.step_id, ident)
            with _APPLIED_LOCK:
                done = _APPLIED.get(mark) == secret
            if done:
                row = _row(target, "applied", note="already holds this secret (applied in an earlier attempt)")
                row["verified"] = True
            else:
                # journaled before the write: if the process dies during it, a resume knows this
                # target may hold this secret (key.issue keeps it, key.retire leaves it live)
                ctx.record("target.writing", target=me, target_id=ident, secret=secret.masked)
                row = _deploy_one(target, secret, work.restart)
                ctx.record("target", target=me, target_id=ident, kind=row["kind"], status=row["status"],
                           error=row["error"], verified=row["verified"], restarted=row["restarted"],
                           detail=row["note"], secret=secret.masked)
                if row["status"] == "applied":
                    with _APPLIED_LOCK:
                        _APPLIED[mark] = secret
            with lock:
                finished[0] += 1
                ctx.progress(_progress_line(finished[0], total, row))
            return row

        rows = fan_out(work.targets, one, ctx.inventory.model.concurrency)
        failed = [r for r in rows if r["status"] == "failed"]
        outputs = {"targets": rows, "failed": len(failed), "applied": total - len(failed)}
        if failed:
            err = TargetError(
                f"{len(failed)} of {total} target{'s' if total != 1 else ''}",
                "failed:\n" + "\n".join(f"  - {r['target']}: {r['error']}" for r in failed),
                hint="fix each cause above; a retry of this step (`retries:`) touches only the failed "
                     "targets, while `keyresponse resume` re-issues the key and redeploys every target")
            err.outputs = outputs  # the per-target table survives the failure (journal, report)
            raise err
        return outputs


class Restart(BaseAction):
    name = "targets.restart"
    summary = "Make every target of the key pick up the new secret (workflow dispatch, pipeline, restart command)."
    With = NoArgs

    def plan(self, args: NoArgs, ctx: StepContext) -> Plan:
        targets = [t for t in build_targets(ctx, ctx.require_key(), Shared(ctx.inventory.model.concurrency))
                   if t.restart_what]
        return Plan(summary=f"restart {len(targets)} target{'s' if len(targets) != 1 else ''}",
                    changes=[f"{t.describe()}: {t.restart_what}" for t in targets], data=targets,
                    destructive=False)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return _preflight(cast("list[Target]", plan.data), ctx)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        runs: dict[str, str] = {}

        def one(target: Target) -> tuple[Target, str | None]:
            try:
                started = target.restart()
                if isinstance(started, str):  # what it started, e.g. a workflow run's page
                    runs[target.describe()] = started
                error = None
            except Exception as exc:  # noqa: BLE001 - one target's failure is reported, not raised
                error = _error_text(exc)
            ctx.record("restart", target=target.describe(), target_id=target.identity,
                       status="failed" if error else "applied", error=error)
            ctx.progress(f"{'✘' if error else '✔'} restart {target.describe()}" + (f": {error}" if error else ""))
            return target, error

        results = fan_out(cast("list[Target]", plan.data), one, ctx.inventory.model.concurrency)
        failed = [(t, e) for t, e in results if e]
        if failed:
            raise TargetError(f"{len(failed)} restart{'s' if len(failed) != 1 else ''}",
                              "failed:\n" + "\n".join(f"  - {t.describe()}: {e}" for t, e in failed))
        return {"restarted": [t.describe() for t, _ in results], "ids": [t.identity for t, _ in results], "failed": 0,
                **({"runs": runs} if runs else {})}


def _deploy_one(target: Target, secret: Secret, restart: bool) -> dict[str, Any]:
    row = _row(target, "failed")
    stage = "write"
    try:
        row["note"] = target.write(secret)
        stage = "verify"
        row["verified"] = bool(target.verify(secret))
        if restart:
            stage = "restart"
            started = target.restart()
            row["restarted"] = True if isinstance(started, str) else started
            if isinstance(started, str):  # what it started, e.g. a workflow run's page (the report links it)
                row["run_url"] = started
        row["status"] = "applied"
    except Exception as exc:  # noqa: BLE001 - one target's failure is reported, not raised
        row["error"] = ("" if stage == "write" else f"written, but {stage} failed: ") + _error_text(exc)
    return row


def _row(target: Target, status: str, note: str | None = None) -> dict[str, Any]:
    return {"target": target.describe(), "id": target.identity, "kind": target.kind, "status": status, "verified": False,
            "restarted": None, "error": None, "note": note}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TargetError):
        text = exc.message.removeprefix(exc.target + ": ")
    elif isinstance(exc, KeyresponseError):
        text = exc.message
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or type(exc).__name__}" + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    hint = getattr(exc, "hint", None)
    return REDACTOR.redact(text + (f" (hint: {hint})" if hint else ""))


def _progress_line(n: int, total: int, row: dict[str, Any]) -> str:
    if row["status"] == "failed":
        return f"[{n}/{total}] ✘ {row['target']}: {row['error']}"
    extra = ["verified" if row["verified"] else "written (cannot verify)"]
    if row["restarted"]:
        extra.append("restarted")
    return f"[{n}/{total}] ✔ {row['target']} ({', '.join(extra)})"


def _preflight(targets: list[Target], ctx: StepContext) -> list[Check]:
    def one(target: Target) -> list[Check]:
        try:
            return list(target.preflight())
        except Exception as exc:  # noqa: BLE001 - a crash in one preflight is that target's finding
            return [Check(target.describe(), False, _error_text(exc), "see the error; fix, then plan again")]

    checks = [c for checks in fan_out(targets, one, ctx.inventory.model.concurrency) for c in checks]
    for c in checks:
        # one unreachable target must not keep the new key from the others in a real run
        c.blocking = False
    return checks


def _refuse_lost(secret: object) -> None:
    from keyresponse.journal import LostSecret

    if isinstance(secret, LostSecret):
        raise _final(StepError(
            f"the replacement key ({secret.masked}) was lost when the earlier run stopped; "
            "it must be re-issued before it can be deployed",
            hint="resume runs the key.issue step again first; if it did not, re-run the issue step"))


def _final(err: StepError) -> StepError:
    err.retryable = False
    return err
