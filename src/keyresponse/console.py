"""How a run looks to the person (or script) watching it.

A TTY gets a live step list (Rich), anything else plain lines on stderr, and
`--json` one JSON object a line on stdout. Every line passes the redactor.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

from keyresponse.engine import Mode, Reporter, RunResult, StepResult
from keyresponse.secret import REDACTOR

SYMBOL = {"applied": "✔", "planned": "○", "skipped": "–", "failed": "✘", "running": "…", "pending": " ", "interrupted": "⏸"}


def _out(stream: TextIO, text: str) -> None:
    stream.write(REDACTOR.redact(text) + "\n")
    stream.flush()


class PlainReporter(Reporter):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def run_started(self, incident: Any, playbook: Any, mode: Mode, steps: list[Any]) -> None:
        verb = "planning" if mode is Mode.PLAN else "running"
        _out(self.stream, f"incident {incident.id}: {verb} playbook {playbook.name!r} ({len(steps)} steps)")

    def step_started(self, step: Any) -> None:
        with self._lock:
            _out(self.stream, f"  … {step.title} ({step.uses})")

    def step_finished(self, step: Any, result: StepResult) -> None:
        with self._lock:
            line = f"  {SYMBOL.get(result.status, '?')} {step.title}: {result.status} in {result.duration:.1f}s"
            if result.summary:
                line += f" — {result.summary}"
            _out(self.stream, line)
            for change in result.changes:
                _out(self.stream, f"      · {change}")
            for check in result.checks:
                if not check.ok:
                    _out(self.stream, f"      {check.line()}")
            if result.error:
                _out(self.stream, f"      error: {result.error}")
            if result.hint:
                _out(self.stream, f"      hint: {result.hint}")

    def event(self, step_id: str, kind: str, message: str) -> None:
        with self._lock:
            prefix = "warning: " if kind == "warning" else ""
            _out(self.stream, f"      {prefix}{message}")

    def confirm(self, question: str) -> bool:
        import typer

        return bool(typer.confirm(REDACTOR.redact(question), default=False, err=True))

    def run_finished(self, result: RunResult) -> None:
        failed = [s for s in result.steps if s.status == "failed"]
        if not result.ok:
            names = ", ".join(s.id for s in failed) or "stopped early"
            _out(self.stream, f"incident {result.incident.id}: FAILED ({names})")
            if result.mode is Mode.APPLY:
                _out(self.stream, f"  fix the cause, then: keyresponse resume {result.incident.id}")
        else:
            word = "planned, nothing changed" if result.mode is Mode.PLAN else "done"
            _out(self.stream, f"incident {result.incident.id}: {word}")
        _out(self.stream, f"  journal: {result.incident.dir / 'journal.jsonl'}")


class JsonReporter(Reporter):
    """JSON Lines on stdout: one object per event, the last one `{"event": "result", ...}`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def _emit(self, obj: dict[str, Any]) -> None:
        from keyresponse.journal import to_jsonable

        with self._lock:
            _out(self.stream, json.dumps(to_jsonable(obj), ensure_ascii=False))

    def run_started(self, incident: Any, playbook: Any, mode: Mode, steps: list[Any]) -> None:
        self._emit({"event": "run.started", "incident": incident.id, "playbook": playbook.name,
                    "mode": mode.value, "steps": [s.id for s in steps]})

    def step_started(self, step: Any) -> None:
        self._emit({"event": "step.started", "step": step.id, "uses": step.uses})

    def step_finished(self, step: Any, result: StepResult) -> None:
        self._emit({"event": "step.finished", "step": step.id, "status": result.status,
                    "duration": round(result.duration, 3), "summary": result.summary,
                    "error": result.error, "hint": result.hint,
                    "checks": [c.__dict__ for c in result.checks if not c.ok]})

    def event(self, step_id: str, kind: str, message: str) -> None:
        self._emit({"event": kind, "step": step_id, "message": message})

    def run_finished(self, result: RunResult) -> None:
        self._emit({"event": "result", **result.as_dict()})


class LiveReporter(PlainReporter):
    """A live step list for terminals."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.rows: dict[str, list[str]] = {}
        self.order: list[Any] = []
        self.live: Any = None

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        for step in self.order:
            status, detail = self.rows[step.id]
            style = {"failed": "red", "applied": "green", "planned": "cyan", "running": "yellow",
                     "interrupted": "yellow"}.get(status, "dim")
            table.add_row(f"[{style}]{SYMBOL.get(status, '?')}[/]", step.title, f"[dim]{step.uses}[/]",
                          REDACTOR.redact(detail))
        return table

    def _update(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def run_started(self, incident: Any, playbook: Any, mode: Mode, steps: list[Any]) -> None:
        from rich.live import Live

        verb = "planning" if mode is Mode.PLAN else "running"
        self.console.print(f"incident [bold]{incident.id}[/]: {verb} playbook [bold]{playbook.name}[/]")
        self.order = list(steps)
        self.rows = {s.id: ["pending", ""] for s in steps}
        # transient: a prompt can stop it without leaving a stale copy; the final
        # table is printed once, at the end
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def step_started(self, step: Any) -> None:
        self.rows[step.id] = ["running", ""]
        self._update()

    def step_finished(self, step: Any, result: StepResult) -> None:
        detail = f"{result.duration:.1f}s  {result.summary}"
        if result.error:
            detail += f"\n{result.error}" + (f"\nhint: {result.hint}" if result.hint else "")
        failed = [c.line() for c in result.checks if not c.ok]
        if failed:
            detail += "\n" + "\n".join(failed)
        self.rows[step.id] = [result.status, detail]
        self._update()

    def event(self, step_id: str, kind: str, message: str) -> None:
        if step_id in self.rows:
            self.rows[step_id][1] = ("warning: " if kind == "warning" else "") + message
            self._update()

    def confirm(self, question: str) -> bool:
        if self.live is not None:
            self.live.stop()
        try:
            return super().confirm(question)
        finally:
            if self.live is not None:
                self.live.start()

    def run_finished(self, result: RunResult) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.console.print(self._render())
        super().run_finished(result)


def reporter_for(json_output: bool) -> Reporter:
    if json_output:
        return JsonReporter()
    if sys.stderr.isatty():
        return LiveReporter()
    return PlainReporter()
