"""Keeps an incident's Slack thread current after each step, off the critical path."""

from __future__ import annotations

import threading
from typing import Any

from keyresponse.journal import Incident
from keyresponse.secret import REDACTOR


class ThreadFollower:
    """Keeps the incident's Slack thread current after each step, off the critical path:
    updates are posted in order by one background thread, so the next step (say, the
    probe after a revoke) does not wait for Slack. Never raises."""

    def __init__(self, incident: Incident, inventory: Any) -> None:
        self.incident = incident
        self.inventory = inventory
        self.enabled = inventory.model.notify.slack is not None
        self._queue: Any = None
        self._worker: threading.Thread | None = None

    def submit(self, step_id: str, uses: str, status: str) -> None:
        if not self.enabled:
            return
        if self._worker is None:
            import queue

            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._work, name="slack-follower", daemon=True)
            self._worker.start()
        self._queue.put((step_id, uses, status))

    def drain(self) -> None:
        if self._queue is not None:
            self._queue.join()

    def _work(self) -> None:
        from keyresponse.actions.notify import after_step

        while True:
            step_id, uses, status = self._queue.get()
            try:
                after_step(self.incident, self.inventory, step_id, uses, status)
            except Exception as exc:  # noqa: BLE001 - Slack must never stop the response
                self.incident.journal.append("step.warning", step=step_id,
                                             message=REDACTOR.redact(f"Slack update not posted: {exc}"))
            finally:
                self._queue.task_done()
