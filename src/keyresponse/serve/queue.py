"""The durable queue: a delivery journal, the incidents it opened, and the workers that run them.

A webhook accepted is an incident opened before the 202: under the state folder,
`serve/deliveries.jsonl` gets `accepted` (the delivery id, its incident's id, the key,
the alert's non-secret summary), the incident folder its playbook, its opening record
and `incident.queued` (`keyresponse incidents` lists it as `queued`), each fsynced.
Only then is the request answered, and only after the answer is on the wire does a
worker start the run on that incident (`started` in the delivery journal), so the
worker's start-up never delays a 202. Then `finished`, and for `ask` alerts `approved` /
`dismissed` with who clicked.

An alert that carries only the secret value, for a key no inventory entry holds, has
nothing durable to resume from: the value is never written anywhere. Under `auto` its
202 waits until the run's first step has found the key at the provider by value and
journaled the key's id (a resume goes on from that id); a crash before then leaves the
sender unanswered, and the restart journals the incident `lost` (a log line at error
level and `keyresponse_incidents_total{outcome="lost"}` say so too) and forgets the
delivery id, so the same alert sent again is accepted. Under `ask` and `record` the
value waits in memory; a restart reports those `lost` the same way.

On start the journal is read back: replays of a known delivery id stay refused, and
whatever was accepted and not finished runs (a queued incident is started, one that was
running is resumed). One incident per key at a time: an alert whose key (or value)
already has one open joins it. The run itself holds the engine's per-key lock as
`keyresponse run` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.journal import Incident, Journal
from keyresponse.outcome import Reporter
from keyresponse.serve.metrics import Metrics

if TYPE_CHECKING:
    from keyresponse.inventory import LoadedInventory
    from keyresponse.outcome import Mode, RunResult, StepResult
    from keyresponse.playbook import LoadedPlaybook, Step
    from keyresponse.secret import Secret

Log = Callable[..., None]
ANSWER_WAIT = 0.2  # seconds a worker gives its request's answer to be sent before it starts anyway
DONE = ("succeeded", "planned", "declined", "refused", "failed", "dismissed", "lost")
LOST = ("the alert carried only the secret value, which is never written to disk, and the receiver "
        "stopped before the key's id was journaled: send the alert again")


@dataclass
class Job:
    delivery: str
    source: str
    action: str
    playbook: str
    key: str | None
    dedup: str
    alert: dict[str, Any] = field(default_factory=dict)
    leaked_at: str | None = None
    leaked: Secret | None = field(default=None, repr=False)
    received: float = field(default_factory=time.monotonic)
    incident: str | None = None  # the incident opened for it before its 202
    started: bool = False  # a worker began the run (before a restart: resume it, not start it)
    inputs: dict[str, Any] | None = field(default=None, repr=False)  # in memory (after a restart: the journal's)
    # a value-only alert: set once its key's id is journaled (or the run ended without one)
    resolved: Future[str | None] | None = field(default=None, repr=False)
    # set once the 202 is on the wire: the worker waits for it (at most ANSWER_WAIT)
    answered: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def value_only(self) -> bool:
        return self.key is None


class _Watch(Reporter):
    """Tells the queue when the run started on its incident, when the key's id is
    journaled, and when the key was revoked."""

    def __init__(self, queue: DeliveryQueue, job: Job) -> None:
        self.queue, self.job = queue, job

    def run_started(self, incident: Incident, playbook: LoadedPlaybook, mode: Mode, steps: list[Step]) -> None:
        if not self.job.started:
            self.job.started = True
            self.queue.journal.append("started", delivery=self.job.delivery, incident=incident.id)

    def step_finished(self, step: Step, result: StepResult) -> None:
        # the engine journaled the step before telling: a key id in its outputs is on disk
        key_id = result.outputs.get("key_id") if isinstance(result.outputs, dict) else None
        resolved = self.job.resolved
        if isinstance(key_id, str) and key_id and resolved is not None and not resolved.done():
            resolved.set_result(key_id)
        if step.uses == "key.revoke" and result.status == "applied":
            seconds = time.monotonic() - self.job.received
            self.queue.metrics.observe_revoke(seconds)
            self.queue.log("key.revoked", delivery=self.job.delivery, incident=self.job.incident,
                           seconds=round(seconds, 3))


class DeliveryQueue:
    def __init__(self, config: Path, state_dir: Path, workers: int, metrics: Metrics, log: Log,
                 ask: Callable[[Job], None] | None = None, inventory: LoadedInventory | None = None) -> None:
        from keyresponse.commands.common import load_config

        self.config, self.state_dir, self.metrics, self.log = config, state_dir, metrics, log
        self.inventory = inventory or load_config(config)  # read-only here: each run loads its own copy
        self.journal = Journal(state_dir / "serve" / "deliveries.jsonl")
        (state_dir / "serve").mkdir(parents=True, exist_ok=True, mode=0o700)
        self._ask = ask
        self._lock = threading.Lock()
        self._seen: dict[str, str | None] = {}  # delivery id -> the delivery it joined (None: its own)
        self._open: dict[str, Job] = {}  # dedup id -> the job running (or waiting) for it
        self._pending: dict[str, Job] = {}  # delivery id -> an `ask` job waiting for its button
        self._books: dict[Path, tuple[int, LoadedPlaybook]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyresponse-serve")
        self._running = 0
        self._idle = threading.Condition(self._lock)

    def warm(self, playbooks: list[str]) -> None:
        """Load the playbooks the rules name and import what their steps use, at start:
        the first alert pays neither."""
        from keyresponse import engine, registry  # noqa: F401 - imported for what it imports
        from keyresponse.report import render  # noqa: F401 - report.render's preflight compiles templates

        for name in playbooks:
            for step in self._playbook(name).model.steps:
                registry.get(step.uses)

    def _playbook(self, name: str) -> LoadedPlaybook:
        from keyresponse import playbook as pbmod

        path = pbmod.find(name, self.inventory.root)
        mtime = path.stat().st_mtime_ns
        cached = self._books.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, pbmod.load_playbook(path))
            self._books[path] = cached
        return cached[1]

    def _inputs(self, job: Job, book: LoadedPlaybook) -> dict[str, Any]:
        from keyresponse import playbook as pbmod

        wanted = {"key": job.key, "leaked": job.leaked, "alert": job.alert, "leaked_at": job.leaked_at}
        return pbmod.coerce_inputs(book, {k: v for k, v in wanted.items() if k in book.model.inputs and v is not None})

    def _engine(self, job: Job, reporter: Reporter | None = None, inventory: Any = None) -> Any:
        from keyresponse.engine import Engine, Mode

        return Engine(inventory or self.inventory, mode=Mode.PLAN if job.action == "record" else Mode.APPLY,
                      reporter=reporter, assume_yes=True, interactive=False, state_dir=self.state_dir)

    # --- receiving

    def accept(self, job: Job) -> tuple[int, dict[str, Any]]:
        """Open the delivery's incident durably (or join the one open for its key) and queue
        it; the answer to give the sender. The worker starts once `job.answered` is set."""
        from keyresponse.faults import crashpoint

        with self._lock:
            if job.delivery in self._seen:
                return 200, {"status": "duplicate", "delivery": job.delivery,
                             "joined": self._seen[job.delivery]}
            running = self._open.get(job.dedup)
            if running is not None:
                self.journal.append("joined", delivery=job.delivery, source=job.source, to=running.delivery,
                                    incident=running.incident)
                self._seen[job.delivery] = running.delivery
                self.metrics.inc("keyresponse_alerts_accepted_total", source=job.source, how="joined")
                return 202, {"status": "joined", "delivery": job.delivery, "joined": running.delivery,
                             "incident": running.incident}
            book = self._playbook(job.playbook)
            inputs = job.inputs = self._inputs(job, book)
            incident = Incident.create(self.state_dir)
            job.incident = incident.id
            self.journal.append("accepted", delivery=job.delivery, incident=incident.id, source=job.source,
                                action=job.action, playbook=job.playbook, key=job.key,
                                dedup=job.dedup if job.key else None, alert=job.alert, leaked_at=job.leaked_at)
            self._open_incident(job, book, inputs, incident)
            self._seen[job.delivery] = None
            self._open[job.dedup] = job
            self.metrics.inc("keyresponse_alerts_accepted_total", source=job.source, how="new")
            crashpoint("serve:accepted")
            answer = {"status": "accepted", "delivery": job.delivery, "incident": incident.id, "action": job.action}
            if job.value_only and job.action == "auto":
                job.resolved = Future()  # the answer waits for the key's id, so the run starts now
                job.answered.set()
            self._submit(job)
        return 202, answer

    def _open_incident(self, job: Job, book: LoadedPlaybook, inputs: dict[str, Any], incident: Incident) -> None:
        self._engine(job).open(book, inputs, job.key, incident=incident)
        incident.journal.append("incident.queued", delivery=job.delivery, source=job.source, action=job.action,
                                waiting="approval" if job.action == "ask" else "worker")

    def decide(self, delivery: str, approve: bool, by: str) -> tuple[int, str]:
        """An Approve or Dismiss click on an `ask` alert."""
        with self._lock:
            job = self._pending.pop(delivery, None)
            if job is None:
                return 404, f"no alert {delivery} is waiting for a decision"
            self.journal.append("approved" if approve else "dismissed", delivery=delivery, by=by)
            if approve:
                job.action = "auto"
                self._submit(job)
                return 200, f"Approved by {by}: containing the key now."
            self._open.pop(job.dedup, None)
            if job.incident is not None:
                Incident(job.incident, self._incident_dir(job.incident)).journal.append(
                    "incident.finished", status="dismissed", by=by)
            self.journal.append("finished", delivery=delivery, incident=job.incident, status="dismissed")
            self.metrics.inc("keyresponse_incidents_total", outcome="dismissed")
        return 200, f"Dismissed by {by}: nothing was changed."

    def _incident_dir(self, incident_id: str) -> Path:
        return self.state_dir / "incidents" / incident_id

    def _submit(self, job: Job) -> None:  # under self._lock
        self._running += 1
        try:
            self._pool.submit(self._work, job)
        except RuntimeError:  # shutting down: the restart runs it (it is queued on disk)
            self._running -= 1

    # --- working

    def _work(self, job: Job) -> None:
        status = "failed"
        # the answer first: a run starting up beside it would hold the GIL while it is written
        job.answered.wait(ANSWER_WAIT)
        try:
            if job.action == "ask" and self._ask is not None and job.delivery not in self._pending:
                with self._lock:
                    self._pending[job.delivery] = job
                self._ask(job)
                status = "waiting"
                return
            status = self._run(job)
        except BaseException as exc:  # noqa: BLE001 - a worker never dies silently: the delivery says how it ended
            from keyresponse.secret import redact

            self.log("incident.error", level="error", delivery=job.delivery, incident=job.incident,
                     error=redact(f"{type(exc).__name__}: {exc}"))
            status = "error"
            if job.incident is not None and not job.started:  # refused before it ran: say so in the incident
                self._finish_incident(job.incident, "refused")
        finally:
            if job.resolved is not None and not job.resolved.done():
                job.resolved.set_result(None)
            with self._lock:
                if status != "waiting":
                    if self._open.get(job.dedup) is job:
                        del self._open[job.dedup]
                    self.journal.append("finished", delivery=job.delivery, incident=job.incident, status=status)
                    self.metrics.inc("keyresponse_incidents_total", outcome=status)
                    self.log("incident.finished", delivery=job.delivery, incident=job.incident, status=status)
                self._running -= 1
                self._idle.notify_all()

    def _finish_incident(self, incident_id: str, status: str, **why: Any) -> None:
        incident = Incident(incident_id, self._incident_dir(incident_id))
        if incident.summary()["status"] in ("queued", "interrupted"):
            incident.journal.append("incident.finished", status=status, **why)

    def _run(self, job: Job) -> str:
        from keyresponse.commands.common import load_config
        from keyresponse.journal import from_jsonable

        assert job.incident is not None
        incident = Incident(job.incident, self._incident_dir(job.incident))
        engine = self._engine(job, _Watch(self, job), load_config(self.config))  # its own copy: the run edits it
        result: RunResult
        if job.started:  # it ran before a restart: continue it
            status = str(incident.summary()["status"])
            if status in DONE:
                return status
            self.log("incident.resuming", delivery=job.delivery, incident=job.incident)
            result = engine.resume(incident)
        else:
            from keyresponse import playbook as pbmod

            book = pbmod.load_playbook(incident.dir / "playbook.yaml")  # the playbook it was opened with
            inputs = job.inputs
            if inputs is None:  # queued before a restart: what the opening record holds
                opened = next(r for r in incident.journal.records() if r["event"] == "incident.opened")
                inputs = from_jsonable(opened.get("inputs") or {})
            self.log("incident.starting", delivery=job.delivery, incident=job.incident, key=job.key,
                     playbook=book.name, action=job.action)
            result = engine.start(book, inputs, job.key, incident=incident)
        return "recorded" if job.action == "record" else str(result.incident.summary()["status"])

    # --- restart and shutdown

    def recover(self) -> int:
        """Read the journal back: known deliveries stay known; unfinished ones run (a queued
        incident is started, a running one resumed). Returns how many were queued."""
        accepted: dict[str, dict[str, Any]] = {}
        for r in self.journal.records():
            d = r.get("delivery")
            if not isinstance(d, str):
                continue
            if r["event"] == "accepted":
                accepted[d] = dict(r)
                self._seen[d] = None
            elif r["event"] == "joined":
                self._seen[d] = r.get("to")
            elif r["event"] == "started" and d in accepted:
                accepted[d]["started"] = True
                accepted[d]["incident"] = accepted[d].get("incident") or r.get("incident")
            elif r["event"] == "approved" and d in accepted:
                accepted[d]["action"] = "auto"
            elif r["event"] in ("finished", "dismissed"):
                accepted.pop(d, None)
        queued = 0
        with self._lock:
            for d, r in accepted.items():
                job = self._recovered(d, r)
                if job is None:
                    continue
                self._open[job.dedup] = job
                if job.action == "ask" and not job.started:
                    self._pending[d] = job  # its buttons are still in Slack
                    continue
                self._submit(job)
                queued += 1
        return queued

    def _recovered(self, d: str, r: dict[str, Any]) -> Job | None:  # under self._lock
        key, incident_id = r.get("key"), r.get("incident")
        job = Job(d, str(r.get("source")), str(r.get("action")), str(r.get("playbook")), key,
                  str(r.get("dedup") or (f"key:{key}" if key else f"incident:{incident_id}")),
                  r.get("alert") or {}, r.get("leaked_at"), incident=incident_id, started=bool(r.get("started")))
        job.answered.set()
        records = [] if incident_id is None else \
            list(Incident(incident_id, self._incident_dir(incident_id)).journal.records())
        opened = any(x["event"] == "incident.opened" for x in records)
        ended = next((x["status"] for x in reversed(records) if x["event"] == "incident.finished"), None)
        if ended in DONE:  # it ended; only the delivery's own record of that was lost
            self.journal.append("finished", delivery=d, incident=incident_id, status=ended)
            return None
        found = any(x["event"] == "step.finished" and isinstance(x.get("outputs"), dict)
                    and x["outputs"].get("key_id") for x in records)
        if job.value_only and not (found and job.action == "auto"):
            # the value lived only in memory, and nothing durable names the key: say so, loudly
            if opened:
                Incident(incident_id, self._incident_dir(incident_id)).journal.append(  # type: ignore[arg-type]
                    "incident.finished", status="lost", message=LOST)
            self.journal.append("finished", delivery=d, incident=incident_id, status="lost")
            self._seen.pop(d, None)  # the same alert sent again is a new delivery
            self.metrics.inc("keyresponse_incidents_total", outcome="lost")
            self.log("delivery.lost", level="error", delivery=d, incident=incident_id, message=LOST)
            return None
        if not opened:  # stopped between the delivery's record and the incident's: open it now
            book = self._playbook(job.playbook)
            folder = incident_id and self._incident_dir(incident_id)
            incident = Incident(incident_id, folder) if incident_id and folder and folder.is_dir() \
                else Incident.create(self.state_dir)
            job.incident = incident.id
            job.inputs = self._inputs(job, book)
            self._open_incident(job, book, job.inputs, incident)
        return job

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def shutdown(self) -> None:
        """Let running incidents finish (each journals every step as it goes)."""
        self._pool.shutdown(wait=True)
