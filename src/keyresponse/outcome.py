"""What a run produced: the mode, each step's result, the run's result, and the
Reporter interface through which the engine tells the person watching."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keyresponse.action import Check, Plan

if TYPE_CHECKING:
    from keyresponse.journal import Incident
    from keyresponse.playbook import LoadedPlaybook, Step


class Mode(enum.Enum):
    PLAN = "plan"
    APPLY = "apply"


OK_STATUSES = {"applied", "planned", "skipped"}


@dataclass
class StepResult:
    id: str
    uses: str
    status: str
    duration: float = 0.0
    summary: str = ""
    changes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    timed_out: bool = False


@dataclass
class RunResult:
    incident: Incident
    mode: Mode
    playbook: str
    key: str | None
    steps: list[StepResult]
    approval_wait: float | None = None  # seconds at the prompt: not time to contain

    @property
    def ok(self) -> bool:
        return all(s.status in OK_STATUSES for s in self.steps)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_dict(self) -> dict[str, Any]:
        from keyresponse.journal import to_jsonable

        data: dict[str, Any] = to_jsonable({
            "incident": self.incident.id,
            "dir": str(self.incident.dir),
            "mode": self.mode.value,
            "playbook": self.playbook,
            "key": self.key,
            "ok": self.ok,
            "approval_wait": None if self.approval_wait is None else round(self.approval_wait, 3),
            "steps": [
                {
                    "id": s.id, "uses": s.uses, "status": s.status, "duration": round(s.duration, 3),
                    "summary": s.summary, "changes": s.changes,
                    "checks": [c.__dict__ for c in s.checks], "outputs": s.outputs,
                    "error": s.error, "hint": s.hint,
                }
                for s in self.steps
            ],
        })
        return data


class Reporter:
    """What the engine tells the person watching. See console.py for the real ones."""

    def run_started(self, incident: Incident, playbook: LoadedPlaybook, mode: Mode, steps: list[Step]) -> None: ...
    def step_forecast(self, step: Step, plan: Plan) -> None: ...
    def run_aborted(self) -> None: ...
    def step_started(self, step: Step) -> None: ...
    def step_finished(self, step: Step, result: StepResult) -> None: ...
    def event(self, step_id: str, kind: str, message: str) -> None: ...
    def confirm(self, question: str) -> bool:
        return False
    def run_finished(self, result: RunResult) -> None: ...
