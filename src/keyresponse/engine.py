"""The step loop: the only module that knows plan from apply.

For each step: render `with:` and `if:` in the expression sandbox, validate the
arguments, `plan`, `preflight`, journal the plan; in plan mode stop there; in
apply mode confirm (once, before the first destructive step), `apply` with the
step's timeout and retries, and journal the outcome. Outcomes are one of
planned, applied, skipped, failed (and interrupted, for the step Ctrl-C stopped).

A step's `apply` runs in a thread that cannot be stopped. While such a thread lives
(a step that timed out, or the one Ctrl-C interrupted) it may still change things, so
the key's lock is held until it ends, or until the process exits and takes it along.
"""

from __future__ import annotations

import dataclasses
import getpass
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse import __version__
from keyresponse.action import Check, EarlyContext, Plan, Planned, PlannedOutputs, Prefetching, StepContext
from keyresponse.errors import ApprovalRefused, ConfigError, KeyresponseError, StepError, UsageError, interrupt_inside
from keyresponse.faults import crashpoint
from keyresponse.follower import ThreadFollower
from keyresponse.journal import Incident, JournalFull, KeyLock, from_jsonable
from keyresponse.outcome import OK_STATUSES, Mode, Reporter, RunResult, StepResult
from keyresponse.playbook import LoadedPlaybook, Step, load_playbook
from keyresponse.resume import resume_set
from keyresponse.secret import REDACTOR

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import httpx

    from keyresponse.action import Action
    from keyresponse.inventory import LoadedInventory

__all__ = ["Engine", "Mode", "Reporter", "RunDeclined", "RunInterrupted", "RunResult", "RunState", "StepResult"]

# How long the always-steps (report, close) wait for a timed-out step's thread before
# they run beside it: what it still does should be in the report.
ABANDONED_GRACE = 30.0


@dataclass
class RunState:
    """One run of one incident: what it runs with, and what its steps have produced."""

    incident: Incident
    playbook: LoadedPlaybook
    inputs: dict[str, Any]
    key_name: str | None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # step id -> outputs
    statuses: dict[str, str] = field(default_factory=dict)  # step id -> status
    previous_status: str | None = None  # a resumed incident's status before this run


@dataclass
class Forecast:
    """One step as the run expects it to go, planned before the first step runs."""

    step: Step
    plan: Plan
    checks: list[Check] = field(default_factory=list)
    checks_run: bool = False  # its preflight ran to the end (not skipped, not raised)


@dataclass
class _Worker:
    """A step's apply thread. Its end is watched through `done`, not Thread.join: a
    KeyboardInterrupt that lands in join() makes CPython 3.11 mark a live thread as
    stopped (its bpo-45274 fix releases the thread's state lock), and is_alive() lies."""

    step_id: str
    deadline: float | None
    done: threading.Event = field(default_factory=threading.Event)

    def alive(self) -> bool:
        return not self.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: journaled as `interrupted`, resumable; the CLI exits 130."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(incident_id)
        self.incident_id = incident_id


class RunDeclined(KeyresponseError):
    """No (or Ctrl-C) at the prompt: nothing was changed or sent; the CLI exits 130."""

    exit_code = 130

    def __init__(self, incident_id: str, resumed_from: str | None = None) -> None:
        if resumed_from is None:
            super().__init__(f"declined at the prompt: incident {incident_id} changed nothing and sent nothing "
                             f"(it is recorded as declined)")
        else:  # what earlier runs of the incident did stands (the key may already be revoked)
            super().__init__(f"declined at the prompt: this resume did nothing more; incident {incident_id} stays "
                             f"{resumed_from}, and what its earlier runs did (such as a revoke) stands",
                             hint=f"`keyresponse resume {incident_id}` finishes the response")
        self.incident_id = incident_id


class Engine:
    def __init__(
        self,
        inventory: LoadedInventory,
        *,
        mode: Mode,
        reporter: Reporter | None = None,
        assume_yes: bool = False,
        interactive: bool = False,
        state_dir: Path | None = None,
    ) -> None:
        self.inventory = inventory
        self.mode = mode
        self.reporter = reporter or Reporter()
        self.assume_yes = assume_yes
        self.interactive = interactive
        self.state_dir = state_dir or inventory.root / ".keyresponse"
        self._clients: dict[tuple[str, str, tuple[tuple[str, str], ...]], httpx.Client] = {}
        self._abandoned: list[_Worker] = []
        self._clients_lock = threading.Lock()
        self._confirmed = False
        self._early: tuple[str, Future[Any]] | None = None
        # the leading steps as just forecast (up to the first that changes something), for their first attempt
        self._planned: dict[str, Forecast] = {}

    # --- entry points

    def start(self, playbook: LoadedPlaybook, inputs: dict[str, Any], key_name: str | None,
              incident: Incident | None = None) -> RunResult:
        """Run `playbook`; on `incident` if given (opened by `open` with the same arguments,
        as `keyresponse serve` does before it answers a webhook), else on a new one."""
        if playbook.model.plan_only and self.mode is Mode.APPLY:
            self.mode = Mode.PLAN  # e.g. the drill playbook: it proves, it never changes
        if key_name is not None:
            self.inventory.key(key_name)  # a clear error for an unknown name, before anything
        self._early = self._prefetch(playbook, inputs, key_name)
        if incident is None:
            incident = self.open(playbook, inputs, key_name)
        incident.mark_running()
        try:
            lock = self._lock_key(incident, key_name)
        except BaseException as exc:
            # the key is locked by another run, or a signal came while it waited for the lock
            ended = _ended_unstarted(incident, exc)
            incident.mark_stopped()
            if ended is exc:
                raise
            raise ended from exc
        return self._run(RunState(incident, playbook, inputs, key_name), todo=None, lock=lock)

    def open(self, playbook: LoadedPlaybook, inputs: dict[str, Any], key_name: str | None,
             incident: Incident | None = None) -> Incident:
        """An incident's playbook and opening record, nothing run yet: in `incident` (a folder
        `Incident.create` made) or in a new one."""
        if playbook.model.plan_only and self.mode is Mode.APPLY:
            self.mode = Mode.PLAN
        incident = incident or Incident.create(self.state_dir)
        incident.write_file("playbook.yaml", playbook.text)
        incident.journal.append(
            "incident.opened",
            playbook=playbook.name,
            playbook_path=str(playbook.path),
            inventory=str(self.inventory.path) if self.inventory.path else None,
            mode=self.mode.value,
            key=key_name,
            steps=[{"id": s.id, "uses": s.uses} for s in playbook.model.steps],
            inputs=inputs,
            user=_user(),
            host=socket.gethostname(),
            version=__version__,
        )
        return incident

    def report_again(self, incident: Incident) -> bool:
        """A finished incident whose end-of-run work (the reports rendered once more, with
        the end in them) a kill cut short: do it now. False when there was nothing to do."""
        from keyresponse import registry

        records = list(incident.journal.records())
        ends = [i for i, r in enumerate(records) if r["event"] == "incident.finished"]
        if not ends or any(r["event"] == "incident.reported" for r in records[ends[-1]:]):
            return False
        applied: dict[str, StepResult] = {}
        for r in records:
            if r["event"] == "step.finished" and r.get("status") == "applied" and r.get("uses"):
                done = StepResult(r["step"], r["uses"], "applied")
                done.outputs = from_jsonable(r.get("outputs") or {})
                applied[r["step"]] = done
        known = [r for r in applied.values() if r.uses in registry.ACTIONS]
        self._after_run(incident, known)
        incident.journal.append("incident.reported")
        return True

    def resume(self, incident: Incident) -> RunResult:
        records = list(incident.journal.records())
        opened = next((r for r in records if r["event"] == "incident.opened"), None)
        if opened is None:
            raise KeyresponseError(f"incident {incident.id} has no opening record; cannot resume")
        if opened.get("mode") == Mode.PLAN.value:
            raise UsageError(f"incident {incident.id} was a dry run; there is nothing to resume",
                             hint="start a real run with `keyresponse run`")
        playbook = load_playbook(incident.dir / "playbook.yaml")
        inputs = from_jsonable(opened.get("inputs") or {})
        key_name = opened.get("key")
        if key_name is not None:
            self._undo_own_record(key_name, records)
        outputs: dict[str, dict[str, Any]] = {}
        statuses: dict[str, str] = {}
        for r in records:
            if r["event"] == "step.finished":
                statuses[r["step"]] = r["status"]
                outputs[r["step"]] = from_jsonable(r.get("outputs") or {})
        todo = resume_set(playbook, statuses, outputs)
        # none: the last run was killed before it could say how it ended
        previous = next((r.get("status") for r in reversed(records) if r["event"] == "incident.finished"),
                        "interrupted")
        # both locks before writing: a refused resume leaves the incident as it was (say,
        # `interrupted` with the key revoked and no replacement yet), not `refused`
        incident.mark_running()
        try:
            lock = self._lock_key(incident, key_name)
        except BaseException:
            incident.mark_stopped()
            raise
        incident.journal.append("incident.resumed", rerun=[s for s in todo], user=_user(), host=socket.gethostname())
        return self._run(RunState(incident, playbook, inputs, key_name, outputs, statuses, previous), todo, lock)

    def _lock_key(self, incident: Incident, key_name: str | None) -> KeyLock | None:
        """The key's lock, for a real run on a key; LockedError if another run holds it."""
        if key_name is None or self.mode is not Mode.APPLY:
            return None
        lock = KeyLock(self.state_dir, key_name)
        lock.acquire(incident.id)
        return lock

    def _undo_own_record(self, key_name: str, records: list[dict[str, Any]]) -> None:
        """If this incident's inventory.record already pointed the entry at the replacement,
        the resumed run must still know the key it started from (a revoke still to come is
        about that one): in memory only, the entry names it again. Any other change to the
        inventory since (a fix the user made to resume) stands."""
        edits = [r for r in records if r.get("event") == "step.note" and r.get("note") == "inventory.writing"
                 and r.get("field") == f"keys.{key_name}.key_id"]
        entry = self.inventory.key(key_name)
        if edits and entry.key_id == edits[-1].get("to"):
            self.inventory.model.keys[key_name] = entry.model_copy(update={"key_id": edits[-1].get("was")})

    # --- the loop

    def _run(self, run: RunState, todo: list[str] | None, lock: KeyLock | None) -> RunResult:
        incident, playbook = run.incident, run.playbook
        steps = [s for s in playbook.model.steps if todo is None or s.id in todo]
        results: list[StepResult] = []
        self.reporter.run_started(incident, playbook, self.mode, steps)
        approval_wait: float | None = None
        if self.mode is Mode.APPLY:
            try:
                approval_wait = self._before_first_step(run, steps)
            except BaseException as exc:
                ended = _ended_unstarted(incident, exc, run.previous_status)
                self.reporter.run_aborted()
                self._release_when_idle(run, lock)
                if ended is exc:
                    raise
                raise ended from exc
        follower = ThreadFollower(incident, self.inventory) if self.mode is Mode.APPLY else None
        stopped = interrupted = completed = False
        try:
            for step in steps:
                if stopped and not step.always:
                    continue
                self._wait_for_abandoned(ABANDONED_GRACE)  # nothing runs beside a timed-out step still at work
                if follower and step.uses == "notify.slack":
                    follower.drain()  # the thread's own steps come after every update before them
                result = self._step(run, step)
                results.append(result)
                run.statuses[step.id] = result.status
                run.outputs[step.id] = result.outputs
                crashpoint(f"after:{step.id}")
                if follower:
                    follower.submit(step.id, step.uses, result.status)
                if result.status == "failed" and (step.on_failure == "stop" or result.timed_out):
                    stopped = True  # after a timeout the state is unknown: never go on as if it failed cleanly
            completed = True
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                if interrupted:
                    self._end_interrupted(run)
                else:
                    if follower:
                        follower.drain()
                    self._wait_for_abandoned(ABANDONED_GRACE)
                    ok = completed and all(r.status in OK_STATUSES for r in results) and not stopped
                    final = "planned" if self.mode is Mode.PLAN and ok else ("succeeded" if ok else "failed")
                    incident.journal.append("incident.finished", status=final)
                    crashpoint("incident:finished")
                    self._after_run(incident, results)
                    incident.journal.append("incident.reported")
            finally:
                self._release_when_idle(run, lock)
        if interrupted:
            raise RunInterrupted(incident.id)
        run_result = RunResult(incident, self.mode, playbook.name, run.key_name, results, approval_wait=approval_wait)
        self.reporter.run_finished(run_result)
        return run_result

    def _before_first_step(self, run: RunState, steps: list[Step]) -> float | None:
        """Before anything is sent anywhere: plan every step (placeholders for what only
        apply knows, as plan mode does), refuse a `with:` that can only fail, and ask once
        when the run would change things. Returns the time spent at the prompt."""
        forecast = self._forecast(run, steps, preflight=True)
        _refuse_unfinishable(forecast)
        destructive = [f for f in forecast if f.plan.destructive]
        if not destructive or self.assume_yes:
            # nothing has changed since: the steps up to the first destructive one run on their
            # forecast plans and checks rather than making the same reads again (the revoke's
            # are its time to contain)
            self._planned = _leading(forecast, steps, run.playbook.deps)
            return None
        if not self.interactive:
            raise UsageError(
                f"this run would change things ({'; '.join(f.plan.summary for f in destructive)}) and nobody "
                f"can confirm it: nothing was done and nothing was sent",
                hint="pass --yes to run it without a prompt (run it in a terminal to be asked)")
        journal = run.incident.journal
        effects = _effects(forecast)
        journal.append("approval.asked", effects=effects)
        asked = time.monotonic()
        try:
            approved = self.reporter.confirm(_question(run.playbook, effects))
        except KeyboardInterrupt:
            approved = False
        wait = time.monotonic() - asked
        journal.append("approval.answered", approved=approved, wait=round(wait, 3))
        if not approved:
            raise RunDeclined(run.incident.id, run.previous_status)
        self._confirmed = True
        return wait

    def _forecast(self, run: RunState, steps: list[Step], *, preflight: bool) -> list[Forecast]:
        """Every step planned in order before the first runs. A `with:` or `if:` that fails
        on what is already known (inputs, key, incident, the shape of planned outputs) is a
        ConfigError now; one that needs a value only apply produces is checked when its
        step runs. Preflights (read-only; a lookup prefetched or journaled is reused) tell
        the prompt what will happen, and prove a later step can follow a destructive one."""
        shadow = RunState(run.incident, run.playbook, run.inputs, run.key_name, dict(run.outputs),
                          dict(run.statuses))
        checking = _SideBySide()
        try:
            planned = self._plan_all(run, steps, shadow, checking, preflight=preflight)
        except BaseException:
            # planning stopped early (a bad `with:`, Ctrl-C): the reads in flight get a moment
            # to end before the incident does; a second Ctrl-C stops waiting
            checking.join(timeout=PREFLIGHT_GRACE)
            raise
        checking.join()
        return planned

    def _plan_all(self, run: RunState, steps: list[Step], shadow: RunState, checking: _SideBySide, *,
                  preflight: bool) -> list[Forecast]:
        from pydantic import ValidationError

        from keyresponse import expr, registry
        from keyresponse import playbook as pbmod

        where = f"{run.playbook.path}: step"
        out: list[Forecast] = []
        for step in steps:
            action: Action = registry.get(step.uses)()
            ctx = self._context(shadow, step, 0)
            if self._early and self._early[0] == step.id:
                ctx.early = self._early[1]
            tctx = self._template_context(shadow)
            waits = any(isinstance(shadow.outputs.get(ref), PlannedOutputs) for ref in run.playbook.deps.get(step.id, {}))
            # until planned, a step reads to later ones as one that will be applied, outputs unknown
            shadow.outputs[step.id], shadow.statuses[step.id] = PlannedOutputs(step.id, {}), "applied"
            try:
                if step.if_ is not None and not expr.truthy(step.if_, tctx):
                    shadow.outputs[step.id], shadow.statuses[step.id] = {}, "skipped"
                    continue
                rendered = expr.render(step.with_, tctx)
            except KeyresponseError as exc:
                if waits:
                    continue  # its value is known only once an earlier step is applied
                raise ConfigError(f"{where} {step.id!r} ({step.uses}): {exc.message}", hint=exc.hint) from None
            problem = pbmod.secret_problem(rendered)
            if problem:
                raise ConfigError(f"{where} {step.id!r} ({step.uses}): {problem}",
                                  hint="pass a secret whole, e.g. `secret: ${{ steps.issue.outputs.secret }}`")
            try:
                args = action.With.model_validate(rendered)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                if _unknowable(err.get("input")):
                    continue
                raise ConfigError(f"{where} {step.id!r} ({step.uses}): with.{'.'.join(map(str, err['loc']))}: "
                                  f"{err['msg']} (got {_shown(err.get('input'))})",
                                  hint="fix the step's `with:` (or the input it reads); nothing was changed") from None
            try:
                plan: Plan = action.plan(args, ctx)
            except KeyresponseError as exc:
                if waits:
                    continue
                raise ConfigError(f"{where} {step.id!r} ({step.uses}): {exc.message}", hint=exc.hint) from None
            except Exception as exc:  # it cannot plan ahead; it plans again when it runs
                if interrupt_inside(exc):
                    raise KeyboardInterrupt from exc
                continue
            forecast = Forecast(step, plan)
            if preflight and step.uses != "notify.slack":
                if getattr(action, "preflight_outputs", False):
                    _preflight(forecast, action, ctx)  # later steps plan on what it adds to plan.outputs
                else:
                    # what a forecast step by step would have shown it: the earlier steps, as of now
                    checking.start(forecast, action, dataclasses.replace(
                        ctx, outputs=dict(shadow.outputs), statuses=dict(shadow.statuses)))
            shadow.outputs[step.id] = PlannedOutputs(step.id, plan.outputs)
            shadow.statuses[step.id] = "applied"
            self.reporter.step_forecast(step, plan)
            out.append(forecast)
        return out

    def _end_interrupted(self, run: RunState) -> None:
        """Ctrl-C: the journal says so first (the step that was running is already
        `interrupted`), then the step's thread gets until its own deadline to end while
        the key stays locked. A second Ctrl-C stops waiting: the process exits, and the
        lock goes with it."""
        run.incident.journal.append("incident.finished", status="interrupted")
        alive = [w for w in self._abandoned if w.alive()]
        try:
            for worker in alive:
                left = None if worker.deadline is None else max(0.0, worker.deadline - time.monotonic())
                self.reporter.event(
                    worker.step_id, "warning",
                    f"interrupted: step {worker.step_id!r} is still running (a call in flight cannot be stopped); "
                    f"waiting for it to end{f', up to {left:.0f}s,' if left is not None else ''} before "
                    f"{self._locked_what(run)} is unlocked. Ctrl-C again to quit now")
                worker.wait(left)
        except KeyboardInterrupt:
            pass  # quit now: what is still running stops with the process

    def _step(self, run: RunState, step: Step) -> StepResult:
        from keyresponse import registry

        action: Action = registry.get(step.uses)()
        self.reporter.step_started(step)
        started = time.monotonic()
        result = StepResult(step.id, step.uses, "failed")
        try:
            self._attempts(run, step, action, result)
        except KeyboardInterrupt:
            result.status, result.error = "interrupted", "interrupted (Ctrl-C) while the step was running"
            result.hint = f"keyresponse resume {run.incident.id} runs it again"
            self._finished(run, step, result, started)
            raise
        self._finished(run, step, result, started)
        return result

    def _finished(self, run: RunState, step: Step, result: StepResult, started: float) -> None:
        result.duration = time.monotonic() - started
        run.incident.journal.append(
            "step.finished", step=step.id, uses=step.uses, status=result.status,
            duration=round(result.duration, 3), summary=result.summary, outputs=result.outputs,
            error=result.error, hint=result.hint,
        )
        self.reporter.step_finished(step, result)

    def _attempts(self, run: RunState, step: Step, action: Action, result: StepResult) -> None:
        from keyresponse import expr

        journal = run.incident.journal
        attempts = step.retries + 1
        for attempt in range(1, attempts + 1):
            journal.append("step.started", step=step.id, uses=step.uses, attempt=attempt, mode=self.mode.value)
            ctx = self._context(run, step, attempt)
            if self._early and self._early[0] == step.id and attempt == 1:
                ctx.early = self._early[1]
            template_ctx = self._template_context(run)
            try:
                if step.if_ is not None and not expr.truthy(step.if_, template_ctx):
                    result.status, result.summary = "skipped", "condition is false"
                    break
                planned = self._planned.pop(step.id, None)
                if planned is not None and planned.step is step and attempt == 1 and planned.checks_run:
                    plan, checks = planned.plan, list(planned.checks)
                    result.summary, result.changes = plan.summary, plan.changes
                else:
                    args = action.With.model_validate(expr.render(step.with_, template_ctx))
                    plan = action.plan(args, ctx)
                    result.summary, result.changes = plan.summary, plan.changes
                    with _retry_budget(ctx):
                        checks = list(action.preflight(plan, ctx))
                result.checks = checks
                journal.append("step.planned", step=step.id, plan=plan.as_dict(),
                               checks=[c.__dict__ for c in checks])
                failed = [c for c in checks if not c.ok]
                if failed and (self.mode is Mode.PLAN or any(c.blocking for c in failed)):
                    raise _PreflightFailed(failed)
                for c in failed:  # apply mode, non-blocking: the action reports it per item
                    ctx.warn(f"preflight: {c.line()}")
                if self.mode is Mode.PLAN:
                    result.status = "planned"
                    result.outputs = PlannedOutputs(step.id, plan.outputs)
                    break
                if plan.destructive:
                    self._confirm(run.playbook, step, plan)
                result.outputs = self._apply(action, plan, ctx, step)
                result.status = "applied"
                result.error = result.hint = None
                break
            except _PreflightFailed as exc:
                result.status, result.error = "failed", "preflight failed: " + "; ".join(c.line() for c in exc.checks)
                result.hint = next((c.fix for c in exc.checks if c.fix), None)
                break  # a failed preflight is a fact about the world, not a flake
            except JournalFull:
                raise  # the run stops here: whatever it did next could not be resumed
            except StepError as exc:
                result.status, result.error, result.hint = "failed", REDACTOR.redact(exc.message), exc.hint
                result.timed_out = isinstance(exc, _TimedOut)
                if isinstance(exc.outputs, dict):
                    result.outputs = dict(exc.outputs)  # what a partly failed step did (e.g. per target)
                if not exc.retryable or attempt == attempts:
                    break
                journal.append("step.retrying", step=step.id, attempt=attempt, error=result.error)
                self.reporter.event(step.id, "warning", f"attempt {attempt} failed: {result.error}; retrying")
                time.sleep(min(2 ** (attempt - 1), 10))
            except KeyresponseError as exc:
                result.status, result.error, result.hint = "failed", REDACTOR.redact(exc.message), exc.hint
                break
            except Exception as exc:  # a bug in an action must still leave a resumable journal
                from pydantic import ValidationError

                if interrupt_inside(exc):  # a signal while a module loaded or a class was built
                    raise KeyboardInterrupt from exc

                if isinstance(exc, ValidationError):
                    err = exc.errors(include_url=False)[0]
                    result.error = f"with.{'.'.join(map(str, err['loc']))}: {err['msg']}"
                else:
                    result.error = REDACTOR.redact(f"unexpected {type(exc).__name__}: {exc}")
                result.status = "failed"
                break

    def _prefetch(self, playbook: LoadedPlaybook, inputs: dict[str, Any],
                  key_name: str | None) -> tuple[str, Future[Any]] | None:
        """Start the first step's read-only `prefetch` now, so that its round trip overlaps
        opening the incident (the revoke's lookup of the key is the first call of an incident).
        Only when its `with:` needs nothing the incident has yet; any failure is left for the
        step's own call to meet and report."""
        from keyresponse import expr, http, registry

        step = playbook.model.steps[0]
        action_cls = registry.get(step.uses)
        if not issubclass(action_cls, Prefetching) or step.if_ is not None:
            return None
        try:
            args = action_cls.With.model_validate(
                expr.render(step.with_, {"inputs": dict(inputs), "key": self._key_view(key_name), "steps": {}}))
        except Exception as exc:  # e.g. it reads `incident`: the step renders it later
            if interrupt_inside(exc):
                raise KeyboardInterrupt from exc
            return None
        early = EarlyContext(inventory=self.inventory, inputs=inputs, key_name=key_name, _http=self._client)
        try:
            # set-up here, not in the thread: under the GIL, imports there would only slow
            # both threads down; the request alone goes to the background
            read = action_cls().prefetch(args, early)
        except Exception as exc:  # the step meets it again and reports it
            if interrupt_inside(exc):
                raise KeyboardInterrupt from exc
            return None
        if read is None:
            return None
        future: Future[Any] = Future()
        timeout = step.timeout

        def work() -> None:
            future.set_running_or_notify_cancel()
            try:
                with http.retry_budget(timeout):
                    future.set_result(read())
            except BaseException as exc:  # noqa: BLE001 - handed to the step, which redoes the call
                future.set_exception(exc)

        threading.Thread(target=work, name=f"prefetch-{step.id}", daemon=True).start()
        return step.id, future

    def _after_run(self, incident: Incident, results: list[StepResult]) -> None:
        from keyresponse import registry

        for r in results:
            hook = getattr(registry.get(r.uses), "after_run", None)
            if hook is None or r.status != "applied":
                continue
            try:
                hook(incident, self.inventory, r.outputs)
            except Exception as exc:  # noqa: BLE001 - the run is over; say so, do not fail it
                self.reporter.event(r.id, "warning", REDACTOR.redact(f"after the run: {exc}"))

    def _apply(self, action: Action, plan: Plan, ctx: StepContext, step: Step) -> dict[str, Any]:
        box: dict[str, Any] = {}
        worker = _Worker(step.id, ctx.deadline)

        def work() -> None:
            try:
                with _retry_budget(ctx):
                    box["out"] = action.apply(plan, ctx) or {}
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                box["exc"] = exc
            finally:
                worker.done.set()

        threading.Thread(target=work, name=f"step-{step.id}", daemon=True).start()
        try:
            ended = worker.wait(step.timeout)
        except KeyboardInterrupt:
            self._abandoned.append(worker)  # _end_interrupted waits for it, with the key locked
            raise
        if not ended:
            # The thread cannot be stopped and may still change things (a mint may yet land),
            # so no retry runs beside it, and the key stays locked until it ends or the
            # process exits (_release_when_idle).
            self._abandoned.append(worker)
            raise _TimedOut(f"timed out after {step.timeout:g}s; it may still finish in the background",
                            hint="check the service, raise the step's `timeout:`, then `keyresponse resume`")
        if "exc" in box:
            raise box["exc"]
        return dict(box["out"])

    def _confirm(self, playbook: LoadedPlaybook, step: Step, plan: Plan) -> None:
        if self._confirmed or self.assume_yes:
            return
        if not self.interactive:
            raise ApprovalRefused(
                f"step {step.id!r} would change things ({plan.summary}) and nobody can confirm it",
                hint="pass --yes to run destructive steps without a prompt",
            )
        if not self.reporter.confirm(f"{step.title}: {plan.summary}. Proceed with {playbook.name!r}?"):
            raise ApprovalRefused("declined at the prompt")
        self._confirmed = True

    # --- contexts

    def _context(self, run: RunState, step: Step, attempt: int) -> StepContext:
        return StepContext(
            incident=run.incident, inventory=self.inventory, inputs=run.inputs, key_name=run.key_name,
            step_id=step.id, attempt=attempt, outputs=run.outputs,
            assume_yes=self.assume_yes, interactive=self.interactive,
            deadline=time.monotonic() + step.timeout,
            _http=self._client, _emit=lambda kind, msg: self.reporter.event(step.id, kind, msg),
            playbook_name=run.playbook.name, statuses=run.statuses,
        )

    def _template_context(self, run: RunState) -> dict[str, Any]:
        return {
            "inputs": dict(run.inputs),
            "key": self._key_view(run.key_name),
            "steps": {sid: {"outputs": outs, "status": run.statuses.get(sid)} for sid, outs in run.outputs.items()},
            "incident": {"id": run.incident.id, "dir": str(run.incident.dir), "playbook": run.playbook.name},
        }

    def _key_view(self, key_name: str | None) -> dict[str, Any]:
        """What expressions read as `key`: the inventory entry and its name."""
        if key_name is None:
            return {}
        return {"name": key_name, **self.inventory.key(key_name).model_dump(mode="json")}

    def _client(self, service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
        from keyresponse import http

        cache_key = (service, base_url, tuple(sorted(headers.items())))
        with self._clients_lock:
            client = self._clients.get(cache_key)
            if client is None:
                client = http.build_client(service, base_url, headers, read_only=self.mode is Mode.PLAN,
                                           credential_env=self._credential_env(headers))
                self._clients[cache_key] = client
            return client

    def _credential_env(self, headers: dict[str, str]) -> str | None:
        """The inventory's env var whose value a header carries (for error hints)."""
        import os

        model = self.inventory.model
        names = model.credential_env_names()
        values = {v.split(" ", 1)[-1] for v in headers.values()}
        return next((n for n in names if os.environ.get(n, "").strip() in values and os.environ.get(n)), None)

    def _wait_for_abandoned(self, grace: float) -> None:
        """Give a timed-out step's thread up to `grace` seconds to end (what it does is
        still journaled), then forget the ones that did."""
        deadline = time.monotonic() + grace
        for worker in self._abandoned:
            worker.wait(max(0.0, deadline - time.monotonic()))
        self._abandoned = [w for w in self._abandoned if w.alive()]

    def _release_when_idle(self, run: RunState, lock: KeyLock | None) -> None:
        """Unlock the key and the incident, and close the clients, once no step's thread
        is still at work: now, or when the last one ends (a thread of its own waits for
        that). A process that exits first takes its locks along; the kernel drops them."""
        alive = [w for w in self._abandoned if w.alive()]
        self._abandoned = []

        def release() -> None:
            for worker in alive:
                worker.wait()
            self._close_clients()
            if lock:
                lock.release()
            run.incident.mark_stopped()

        if not alive:
            release()
            return
        for worker in alive:
            self.reporter.event(worker.step_id, "warning",
                                f"step {worker.step_id!r} is still running in the background; "
                                f"{self._locked_what(run)} stays locked until it ends or this process exits")
        threading.Thread(target=release, name=f"unlock-after-{alive[-1].step_id}", daemon=True).start()

    def _locked_what(self, run: RunState) -> str:
        return f"key {run.key_name!r}" if run.key_name is not None and self.mode is Mode.APPLY \
            else f"incident {run.incident.id}"

    def _close_clients(self) -> None:
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def _unknowable(value: Any) -> bool:
    """A value that holds a placeholder: what it will be is known only after apply."""
    if isinstance(value, Planned):
        return True
    if isinstance(value, str):
        return "known after apply>" in value
    if isinstance(value, dict):
        return any(_unknowable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_unknowable(v) for v in value)
    return False


def _shown(value: Any) -> str:
    text = REDACTOR.redact(repr(value))
    return text if len(text) <= 80 else text[:79] + "…"


def _effects(forecast: list[Forecast]) -> list[str]:
    """What the run will change or send, one line a step with one line a change under it."""
    lines: list[str] = []
    for f in forecast:
        plan = f.plan
        if not (plan.destructive or plan.changes or f.step.uses == "notify.slack") or plan.summary.startswith("nothing"):
            continue
        if f.step.uses == "notify.slack" and plan.summary.startswith("Slack is not configured"):
            continue
        lines.append(f"{f.step.title}: {plan.summary}")
        lines.extend(f"    - {c}" for c in plan.changes if c != plan.summary)
        lines.extend(f"    ! {c.line()}" for c in f.checks if not c.ok)
    return [REDACTOR.redact(line) for line in lines]


def _ended_unstarted(incident: Incident, exc: BaseException, previous: str | None = None) -> BaseException:
    """Journal the end of a run that stopped before its first step, and say what to raise.
    Nothing ran: a new incident ends declined, interrupted (Ctrl-C or SIGTERM: resumable,
    raised as RunInterrupted naming it) or refused; a resumed one keeps the status it had."""
    interrupt = interrupt_inside(exc)
    status = "declined" if isinstance(exc, RunDeclined) else "interrupted" if interrupt else "refused"
    incident.journal.append("incident.finished", status=previous or status)
    return RunInterrupted(incident.id) if interrupt and not isinstance(exc, RunInterrupted) else exc


def _leading(forecast: list[Forecast], steps: list[Step], deps: dict[str, Any]) -> dict[str, Forecast]:
    """The forecasts a run may act on without planning again: those of the leading steps
    up to and including the first destructive one (nothing before it changed anything
    their reads could see), stopping at a step that was not forecast (skipped or
    unplannable). A step whose `with:` or `if:` reads an earlier step's outputs was
    planned on placeholders: it plans again."""
    by_step = {id(f.step): f for f in forecast}
    out: dict[str, Forecast] = {}
    for step in steps:
        found = by_step.get(id(step))
        if found is None:
            break
        if not deps.get(step.id):
            out[step.id] = found
        if found.plan.destructive:
            break
    return out


PREFLIGHTS_AT_ONCE = 8
PREFLIGHT_GRACE = 5.0  # seconds the forecast's reads get to end when planning stops early


def _preflight(forecast: Forecast, action: Action, ctx: StepContext) -> None:
    """One forecast step's read-only checks; one that raises is left to its step, which
    plans and checks again when it runs."""
    try:
        with _retry_budget(ctx):
            forecast.checks = list(action.preflight(forecast.plan, ctx))
        forecast.checks_run = True
    except Exception as exc:  # the step's own preflight reports it
        if interrupt_inside(exc) and threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt from exc


class _SideBySide:
    """The forecast's preflights, each started as soon as its step is planned and run
    side by side, at most PREFLIGHTS_AT_ONCE at a time: they only read, and each works
    on its own step's plan. So the first step waits for the slowest preflight rather
    than for all of them in turn (in `leaked-key` with 100 ms per call, the revoke
    starts about 0.4 s earlier). The exception is an action whose preflight adds to
    `plan.outputs` what later steps plan on (`preflight_outputs`): the forecast runs
    that one in line.

    Daemon threads, not a pool: a Ctrl-C here leaves the interpreter free to exit while
    a read is still in flight."""

    def __init__(self) -> None:
        self._slots = threading.BoundedSemaphore(PREFLIGHTS_AT_ONCE)
        self._threads: list[threading.Thread] = []

    def start(self, forecast: Forecast, action: Action, ctx: StepContext) -> None:
        def check() -> None:
            with self._slots:
                _preflight(forecast, action, ctx)

        thread = threading.Thread(target=check, name=f"preflight-{forecast.step.id}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout: float | None = None) -> None:
        until = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if until is None else max(0.0, until - time.monotonic()))


def _refuse_unfinishable(forecast: list[Forecast]) -> None:
    """Refuse the run, before anything changes, when a step after a destructive one is
    bound to fail: a blocking check the plan settles failed (e.g. the replacement would be
    minted on the account the revoke deletes). A check that failed on a read is left for
    the step itself: a transient failure there must not keep the leaked key live."""
    changed: str | None = None
    for f in forecast:
        bad = [c for c in f.checks if not c.ok and c.blocking and c.settled]
        if changed and bad:
            raise UsageError(
                f"step {f.step.id!r} ({f.step.uses}) cannot succeed once step {changed!r} has run: "
                + "; ".join(REDACTOR.redact(c.line()) for c in bad)
                + ": nothing was done and nothing was sent",
                hint=next((c.fix for c in bad if c.fix), None) or "fix the inventory or the playbook, then run again")
        if f.plan.destructive and changed is None:
            changed = f.step.id


def _question(playbook: LoadedPlaybook, effects: list[str]) -> str:
    body = "\n".join(f"  {line}" if line.startswith("    ") else f"  • {line}" for line in effects)
    return (f"This run of {playbook.name!r} will:\n{body}\n"
            f"Time at this prompt is not counted as time to contain. Proceed?")


def _retry_budget(ctx: StepContext) -> AbstractContextManager[None]:
    """Every HTTP retry inside one step shares one waiting budget, bounded by its timeout."""
    from keyresponse import http

    return http.retry_budget(ctx.remaining())


class _TimedOut(StepError):
    retryable = False


class _PreflightFailed(Exception):
    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


