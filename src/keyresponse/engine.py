"""The step loop: the only module that knows plan from apply.

For each step: render `with:` and `if:` in the expression sandbox, validate the
arguments, `plan`, `preflight`, journal the plan; in plan mode stop there; in
apply mode confirm (once, before the first destructive step), `apply` with the
step's timeout and retries, and journal the outcome. Outcomes are one of
planned, applied, skipped, failed.
"""

from __future__ import annotations

import getpass
import socket
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from keyresponse import __version__
from keyresponse.action import Check, EarlyContext, Plan, PlannedOutputs, StepContext
from keyresponse.errors import ApprovalRefused, KeyresponseError, StepError, UsageError
from keyresponse.faults import crashpoint
from keyresponse.follower import ThreadFollower
from keyresponse.journal import Incident, KeyLock, from_jsonable
from keyresponse.outcome import OK_STATUSES, Mode, Reporter, RunResult, StepResult
from keyresponse.playbook import LoadedPlaybook, Step, load_playbook
from keyresponse.resume import resume_set
from keyresponse.secret import REDACTOR

__all__ = ["Engine", "Mode", "Reporter", "RunResult", "StepResult"]


class Engine:
    def __init__(
        self,
        inventory: Any,
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
        self._clients: dict[Any, Any] = {}
        self._abandoned: list[threading.Thread] = []
        self._clients_lock = threading.Lock()
        self._confirmed = False
        self._early: tuple[str, Future[Any]] | None = None

    # --- entry points

    def start(self, playbook: LoadedPlaybook, inputs: dict[str, Any], key_name: str | None) -> RunResult:
        if playbook.model.plan_only and self.mode is Mode.APPLY:
            self.mode = Mode.PLAN  # e.g. the drill playbook: it proves, it never changes
        if key_name is not None:
            self.inventory.key(key_name)  # a clear error for an unknown name, before anything
        self._early = self._prefetch(playbook, inputs, key_name)
        incident = Incident.create(self.state_dir)
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
        return self._run(incident, playbook, inputs, key_name, outputs={}, statuses={}, todo=None)

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
        incident.mark_running()  # before writing: another process may be working on it
        incident.journal.append("incident.resumed", rerun=[s for s in todo], user=_user(), host=socket.gethostname())
        return self._run(incident, playbook, inputs, key_name, outputs, statuses, todo)

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

    def _run(
        self,
        incident: Incident,
        playbook: LoadedPlaybook,
        inputs: dict[str, Any],
        key_name: str | None,
        outputs: dict[str, dict[str, Any]],
        statuses: dict[str, str],
        todo: list[str] | None,
    ) -> RunResult:
        lock = None
        incident.mark_running()
        if key_name is not None and self.mode is Mode.APPLY:
            lock = KeyLock(self.state_dir, key_name)
            try:
                lock.acquire(incident.id)
            except BaseException:
                incident.journal.append("incident.finished", status="refused")
                incident.mark_stopped()
                raise
        steps = [s for s in playbook.model.steps if todo is None or s.id in todo]
        results: list[StepResult] = []
        self.reporter.run_started(incident, playbook, self.mode, steps)
        follower = ThreadFollower(incident, self.inventory) if self.mode is Mode.APPLY else None
        stopped = False
        try:
            for step in steps:
                if stopped and not step.always:
                    continue
                self._wait_for_abandoned()  # nothing runs beside a timed-out step still at work
                if follower and step.uses == "notify.slack":
                    follower.drain()  # the thread's own steps come after every update before them
                result = self._step(incident, playbook, step, inputs, key_name, outputs, statuses)
                results.append(result)
                statuses[step.id] = result.status
                outputs[step.id] = result.outputs
                crashpoint(f"after:{step.id}")
                if follower:
                    follower.submit(step.id, step.uses, result.status)
                if result.status == "failed" and (step.on_failure == "stop" or result.timed_out):
                    stopped = True  # after a timeout the state is unknown: never go on as if it failed cleanly
        finally:
            if follower:
                follower.drain()
            self._wait_for_abandoned()
            self._close_clients()
            ok = all(r.status in OK_STATUSES for r in results) and not stopped
            final = "planned" if self.mode is Mode.PLAN and ok else ("succeeded" if ok else "failed")
            incident.journal.append("incident.finished", status=final)
            self._after_run(incident, playbook, results)
            if lock:
                lock.release()
            incident.mark_stopped()
        run_result = RunResult(incident, self.mode, playbook.name, key_name, results)
        self.reporter.run_finished(run_result)
        return run_result

    def _step(
        self,
        incident: Incident,
        playbook: LoadedPlaybook,
        step: Step,
        inputs: dict[str, Any],
        key_name: str | None,
        outputs: dict[str, dict[str, Any]],
        statuses: dict[str, str],
    ) -> StepResult:
        from keyresponse import expr, registry

        action = registry.get(step.uses)()
        journal = incident.journal
        self.reporter.step_started(step)
        started = time.monotonic()
        result = StepResult(step.id, step.uses, "failed")
        attempts = step.retries + 1
        for attempt in range(1, attempts + 1):
            journal.append("step.started", step=step.id, uses=step.uses, attempt=attempt, mode=self.mode.value)
            ctx = self._context(incident, playbook, step, inputs, key_name, outputs, statuses, attempt)
            if self._early and self._early[0] == step.id and attempt == 1:
                ctx.early = self._early[1]
            template_ctx = self._template_context(incident, playbook, inputs, key_name, outputs, statuses)
            try:
                if step.if_ is not None and not expr.truthy(step.if_, template_ctx):
                    result = StepResult(step.id, step.uses, "skipped", summary="condition is false")
                    break
                args = action.With.model_validate(expr.render(step.with_, template_ctx))
                plan: Plan = action.plan(args, ctx)
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
                    self._confirm(playbook, step, plan)
                result.outputs = self._apply(action, plan, ctx, step)
                result.status = "applied"
                result.error = result.hint = None
                break
            except _PreflightFailed as exc:
                result.status, result.error = "failed", "preflight failed: " + "; ".join(c.line() for c in exc.checks)
                result.hint = next((c.fix for c in exc.checks if c.fix), None)
                break  # a failed preflight is a fact about the world, not a flake
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

                if isinstance(exc, ValidationError):
                    err = exc.errors(include_url=False)[0]
                    result.error = f"with.{'.'.join(map(str, err['loc']))}: {err['msg']}"
                else:
                    result.error = REDACTOR.redact(f"unexpected {type(exc).__name__}: {exc}")
                result.status = "failed"
                break
        result.duration = time.monotonic() - started
        journal.append(
            "step.finished", step=step.id, uses=step.uses, status=result.status,
            duration=round(result.duration, 3), summary=result.summary, outputs=result.outputs,
            error=result.error, hint=result.hint,
        )
        self.reporter.step_finished(step, result)
        return result

    def _prefetch(self, playbook: LoadedPlaybook, inputs: dict[str, Any],
                  key_name: str | None) -> tuple[str, Future[Any]] | None:
        """Start the first step's read-only `prefetch` now, so that its round trip overlaps
        opening the incident (the revoke's lookup of the key is the first call of an incident).
        Only when its `with:` needs nothing the incident has yet; any failure is left for the
        step's own call to meet and report."""
        from keyresponse import expr, http, registry

        step = playbook.model.steps[0]
        action_cls = registry.get(step.uses)
        if getattr(action_cls, "prefetch", None) is None or step.if_ is not None:
            return None
        try:
            args = action_cls.With.model_validate(
                expr.render(step.with_, {"inputs": dict(inputs), "key": self._key_view(key_name), "steps": {}}))
        except Exception:  # noqa: BLE001 - e.g. it reads `incident`: the step renders it later
            return None
        early = EarlyContext(inventory=self.inventory, inputs=inputs, key_name=key_name, _http=self._client)
        try:
            # set-up here, not in the thread: under the GIL, imports there would only slow
            # both threads down; the request alone goes to the background
            read = action_cls().prefetch(args, early)
        except Exception:  # noqa: BLE001 - the step meets it again and reports it
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

    def _after_run(self, incident: Incident, playbook: LoadedPlaybook, results: list[StepResult]) -> None:
        from keyresponse import registry

        for r in results:
            hook = getattr(registry.get(r.uses), "after_run", None)
            if hook is None or r.status != "applied":
                continue
            try:
                hook(incident, self.inventory, r.outputs)
            except Exception as exc:  # noqa: BLE001 - the run is over; say so, do not fail it
                self.reporter.event(r.id, "warning", REDACTOR.redact(f"after the run: {exc}"))

    def _apply(self, action: Any, plan: Plan, ctx: StepContext, step: Step) -> dict[str, Any]:
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                with _retry_budget(ctx):
                    box["out"] = action.apply(plan, ctx) or {}
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                box["exc"] = exc

        worker = threading.Thread(target=work, name=f"step-{step.id}", daemon=True)
        worker.start()
        worker.join(step.timeout)
        if worker.is_alive():
            # The thread cannot be stopped and may still change things (a mint may yet land),
            # so no retry runs beside it, and the key stays locked until it ends (_run).
            self._abandoned.append(worker)
            err = _TimedOut(f"timed out after {step.timeout:g}s; it may still finish in the background",
                            hint="check the service, raise the step's `timeout:`, then `keyresponse resume`")
            raise err
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

    def _context(self, incident: Incident, playbook: LoadedPlaybook, step: Step, inputs: dict[str, Any],
                 key_name: str | None, outputs: dict[str, dict[str, Any]], statuses: dict[str, str],
                 attempt: int) -> StepContext:
        return StepContext(
            incident=incident, inventory=self.inventory, inputs=inputs, key_name=key_name,
            step_id=step.id, attempt=attempt, outputs=outputs,
            assume_yes=self.assume_yes, interactive=self.interactive,
            deadline=time.monotonic() + step.timeout,
            _http=self._client, _emit=lambda kind, msg: self.reporter.event(step.id, kind, msg),
            playbook_name=playbook.name, statuses=statuses,
        )

    def _template_context(self, incident: Incident, playbook: LoadedPlaybook, inputs: dict[str, Any],
                          key_name: str | None, outputs: dict[str, dict[str, Any]],
                          statuses: dict[str, str]) -> dict[str, Any]:
        return {
            "inputs": dict(inputs),
            "key": self._key_view(key_name),
            "steps": {sid: {"outputs": outs, "status": statuses.get(sid)} for sid, outs in outputs.items()},
            "incident": {"id": incident.id, "dir": str(incident.dir), "playbook": playbook.name},
        }

    def _key_view(self, key_name: str | None) -> dict[str, Any]:
        """What expressions read as `key`: the inventory entry and its name."""
        if key_name is None:
            return {}
        return {"name": key_name, **self.inventory.key(key_name).model_dump(mode="json")}

    def _client(self, service: str, base_url: str, headers: dict[str, str]) -> Any:
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

    def _wait_for_abandoned(self, grace: float = 30.0) -> None:
        """A timed-out step's thread may still be writing: give it time to end before the
        key's lock is released and the clients closed (what it does is still journaled)."""
        deadline = time.monotonic() + grace
        for worker in self._abandoned:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._abandoned = [w for w in self._abandoned if w.is_alive()]

    def _close_clients(self) -> None:
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def _retry_budget(ctx: StepContext) -> Any:
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


