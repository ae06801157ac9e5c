"""Keeps an incident's Slack thread current after each step, off the critical path."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from keyresponse.journal import Incident
from keyresponse.secret import REDACTOR

if TYPE_CHECKING:
    from keyresponse.inventory import LoadedInventory


DRAIN_TIMEOUT = 30.0


class ThreadFollower:
    """Keeps the incident's Slack thread current after each step, off the critical path:
    updates are posted in order by one background thread, so the next step (say, the
    probe after a revoke) does not wait for Slack. Never raises."""

    def __init__(self, incident: Incident, inventory: LoadedInventory) -> None:
        self.incident = incident
        self.inventory = inventory
        self.enabled = inventory.model.notify.slack is not None
        self._queue: queue.Queue[tuple[str, str, str]] | None = None
        self._worker: threading.Thread | None = None

    def submit(self, step_id: str, uses: str, status: str) -> None:
        if not self.enabled:
            return
        if self._worker is None:
            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._work, name="slack-follower", daemon=True)
            self._worker.start()
        assert self._queue is not None
        self._queue.put((step_id, uses, status))

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait for the updates queued so far, but never longer than `timeout`: a slow
        Slack must not hold the response (or the key's lock) hostage."""
        if self._queue is None:
            return
        done = threading.Event()
        pending = self._queue

        def wait() -> None:
            pending.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        if not done.wait(timeout):
            self.incident.journal.append("step.warning", step="slack",
                                         message=f"Slack updates still pending after {timeout:g}s; going on without them")

    def _work(self) -> None:
        from keyresponse.actions.notify import after_step

        assert self._queue is not None
        while True:
            step_id, uses, status = self._queue.get()
            try:
                after_step(self.incident, self.inventory, step_id, uses, status)
            except BaseException as exc:  # noqa: BLE001 - Slack must never stop the response
                try:
                    self.incident.journal.append("step.warning", step=step_id,
                                                 message=REDACTOR.redact(f"Slack update not posted: {exc}"))
                except BaseException:  # noqa: BLE001 - even then, the queue must keep moving
                    pass
            finally:
                self._queue.task_done()
