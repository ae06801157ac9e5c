"""The durable queue: a delivery journal, and the workers that run what it accepted.

`deliveries.jsonl` (under the state folder's `serve/`) is appended and fsynced before
a request is answered 202: `accepted` (the delivery id, the key, the alert's non-secret
summary), then `started` (the incident it opened), `finished`, and for `ask` alerts
`approved` / `dismissed` with who clicked. On start the journal is read back: replays
of a known delivery id stay refused, and whatever was accepted and not finished is run
again (a resumable incident is resumed; one never opened is started from its key).

One incident per key at a time: an alert whose key (or value) already has one open
joins it. The run itself holds the engine's per-key lock as `keyresponse run` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.journal import Incident, Journal
from keyresponse.outcome import Reporter
from keyresponse.serve.metrics import Metrics

if TYPE_CHECKING:
    from keyresponse.outcome import Mode, RunResult, StepResult
    from keyresponse.playbook import LoadedPlaybook, Step
    from keyresponse.secret import Secret

Log = Callable[..., None]


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
    incident: str | None = None  # set once the run opened it (or, after a restart, to resume it)


class _Watch(Reporter):
    """Tells the queue when the run opened its incident and when the key was revoked."""

    def __init__(self, queue: DeliveryQueue, job: Job) -> None:
        self.queue, self.job = queue, job

    def run_started(self, incident: Incident, playbook: LoadedPlaybook, mode: Mode, steps: list[Step]) -> None:
        if self.job.incident != incident.id:
            self.job.incident = incident.id
            self.queue.journal.append("started", delivery=self.job.delivery, incident=incident.id)

    def step_finished(self, step: Step, result: StepResult) -> None:
        if step.uses == "key.revoke" and result.status == "applied":
            seconds = time.monotonic() - self.job.received
            self.queue.metrics.observe_revoke(seconds)
            self.queue.log("key.revoked", delivery=self.job.delivery, incident=self.job.incident,
                           seconds=round(seconds, 3))


class DeliveryQueue:
    def __init__(self, config: Path, state_dir: Path, workers: int, metrics: Metrics, log: Log,
                 ask: Callable[[Job], None] | None = None) -> None:
        self.config, self.state_dir, self.metrics, self.log = config, state_dir, metrics, log
        self.journal = Journal(state_dir / "serve" / "deliveries.jsonl")
        (state_dir / "serve").mkdir(parents=True, exist_ok=True, mode=0o700)
        self._ask = ask
        self._lock = threading.Lock()
        self._seen: dict[str, str | None] = {}  # delivery id -> the delivery it joined (None: its own)
        self._open: dict[str, Job] = {}  # dedup id -> the job running (or waiting) for it
        self._pending: dict[str, Job] = {}  # delivery id -> an `ask` job waiting for its button
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyresponse-serve")
        self._running = 0
        self._idle = threading.Condition(self._lock)

    # --- receiving

    def accept(self, job: Job) -> tuple[int, dict[str, Any]]:
        """Journal the delivery (fsynced) and queue it; the answer to give the sender."""
        with self._lock:
            if job.delivery in self._seen:
                return 200, {"status": "duplicate", "delivery": job.delivery,
                             "joined": self._seen[job.delivery]}
            running = self._open.get(job.dedup)
            if running is not None:
                self.journal.append("joined", delivery=job.delivery, source=job.source, to=running.delivery)
                self._seen[job.delivery] = running.delivery
                self.metrics.inc("keyresponse_alerts_accepted_total", source=job.source, how="joined")
                return 202, {"status": "joined", "delivery": job.delivery, "joined": running.delivery,
                             "incident": running.incident}
            self.journal.append("accepted", delivery=job.delivery, source=job.source, action=job.action,
                                playbook=job.playbook, key=job.key, dedup=job.dedup if job.key else None,
                                alert=job.alert, leaked_at=job.leaked_at)
            self._seen[job.delivery] = None
            self._open[job.dedup] = job
            self.metrics.inc("keyresponse_alerts_accepted_total", source=job.source, how="new")
            self._submit(job)
        return 202, {"status": "accepted", "delivery": job.delivery, "action": job.action}

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
            self.journal.append("finished", delivery=delivery, status="dismissed")
            self.metrics.inc("keyresponse_incidents_total", outcome="dismissed")
        return 200, f"Dismissed by {by}: nothing was changed."

    def _submit(self, job: Job) -> None:  # under self._lock
        self._running += 1
        self._pool.submit(self._work, job)

    # --- working

    def _work(self, job: Job) -> None:
        status = "failed"
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
        finally:
            with self._lock:
                if status != "waiting":
                    if self._open.get(job.dedup) is job:
                        del self._open[job.dedup]
                    self.journal.append("finished", delivery=job.delivery, incident=job.incident, status=status)
                    self.metrics.inc("keyresponse_incidents_total", outcome=status)
                    self.log("incident.finished", delivery=job.delivery, incident=job.incident, status=status)
                self._running -= 1
                self._idle.notify_all()

    def _run(self, job: Job) -> str:
        from keyresponse import playbook as pbmod
        from keyresponse.commands.common import load_config
        from keyresponse.engine import Engine, Mode

        inventory = load_config(self.config)  # each run its own copy: the engine edits it in memory
        engine = Engine(inventory, mode=Mode.PLAN if job.action == "record" else Mode.APPLY,
                        reporter=_Watch(self, job), assume_yes=True, interactive=False, state_dir=self.state_dir)
        result: RunResult
        if job.incident is not None:  # accepted and opened before a restart: continue it
            incident = Incident.open(self.state_dir, job.incident)
            if incident.summary()["status"] in ("succeeded", "planned", "declined", "refused"):
                return str(incident.summary()["status"])
            self.log("incident.resuming", delivery=job.delivery, incident=job.incident)
            result = engine.resume(incident)
        else:
            book = pbmod.load_playbook(pbmod.find(job.playbook, inventory.root))
            wanted = {"key": job.key, "leaked": job.leaked, "alert": job.alert, "leaked_at": job.leaked_at}
            given = {k: v for k, v in wanted.items() if k in book.model.inputs and v is not None}
            inputs = pbmod.coerce_inputs(book, given)
            self.log("incident.starting", delivery=job.delivery, key=job.key, playbook=book.name, action=job.action)
            result = engine.start(book, inputs, job.key)
        return "recorded" if job.action == "record" else str(result.incident.summary()["status"])

    # --- restart and shutdown

    def recover(self) -> int:
        """Read the journal back: known deliveries stay known; unfinished ones run again.
        Returns how many were queued."""
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
                accepted[d]["incident"] = r.get("incident")
            elif r["event"] == "approved" and d in accepted:
                accepted[d]["action"] = "auto"
            elif r["event"] in ("finished", "dismissed"):
                accepted.pop(d, None)
        queued = 0
        with self._lock:
            for d, r in accepted.items():
                key = r.get("key")
                if r.get("incident") is None and key is None:
                    # the value lived only in memory and no incident was opened: say so, once
                    self.journal.append("finished", delivery=d, status="lost")
                    self.log("delivery.lost", level="error", delivery=d,
                             message="accepted before a restart with only its value to go by; send it again")
                    continue
                job = Job(d, str(r.get("source")), str(r.get("action")), str(r.get("playbook")), key,
                          str(r.get("dedup") or f"key:{key}" if key else f"incident:{r.get('incident')}"),
                          r.get("alert") or {}, r.get("leaked_at"), incident=r.get("incident"))
                self._open[job.dedup] = job
                if job.action == "ask" and job.incident is None:
                    self._pending[d] = job  # its buttons are still in Slack
                    continue
                self._submit(job)
                queued += 1
        return queued

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
