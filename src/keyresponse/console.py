"""How a run looks to the person (or script) watching it.

A TTY gets a live step list (Rich), anything else plain lines on stderr, and
`--json` one JSON object a line on stdout. Every line passes the redactor.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from keyresponse.engine import Mode, Reporter, RunResult, StepResult
from keyresponse.secret import REDACTOR

SYMBOL = {"applied": "✔", "planned": "○", "skipped": "–", "failed": "✘", "running": "…", "pending": " ", "interrupted": "⏸"}


def _out(stream: TextIO, text: str) -> None:
    stream.write(REDACTOR.redact(text) + "\n")
    stream.flush()


def unseen(error: str, seen: list[str]) -> str:
    """`error` without the lines an earlier progress message already showed (each error once)."""
    kept: list[str] = []
    dropped = 0
    for line in error.splitlines():
        core = line.strip().removeprefix("- ").strip()
        if core and any(core in message for message in seen):
            dropped += 1
            continue
        kept.append(line)
    text = "\n".join(kept).rstrip()
    if dropped:
        text = text.rstrip(":") + " (shown above)"
    return text


class PlainReporter(Reporter):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._events: dict[str, list[str]] = {}

    def run_started(self, incident: Any, playbook: Any, mode: Mode, steps: list[Any]) -> None:
        self._started = time.monotonic()
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
            error = unseen(result.error, self._events.get(step.id, [])) if result.error else ""
            if error:
                _out(self.stream, "      error: " + error.replace("\n", "\n        "))
            if result.hint:
                _out(self.stream, f"      hint: {result.hint}")

    def event(self, step_id: str, kind: str, message: str) -> None:
        with self._lock:
            self._events.setdefault(step_id, []).append(message)
            prefix = "warning: " if kind == "warning" else ""
            _out(self.stream, f"      {prefix}{message}")

    def confirm(self, question: str) -> bool:
        """y/N on the terminal; Ctrl-C or end of input there is a KeyboardInterrupt (a no)."""
        import typer

        try:
            return bool(typer.confirm(REDACTOR.redact(question), default=False, err=True))
        except (typer.Abort, EOFError) as exc:
            raise KeyboardInterrupt from exc

    def run_finished(self, result: RunResult) -> None:
        elapsed = time.monotonic() - self._started
        if result.mode is Mode.PLAN:
            failed = [s.id for s in result.steps if s.status == "failed"]
            verdict = f"FAILED ({', '.join(failed)})" if failed else "planned, nothing changed"
            _out(self.stream, f"incident {result.incident.id}: {verdict}")
            _out(self.stream, f"  journal      {result.incident.dir / 'journal.jsonl'}")
            return
        _out(self.stream, "")
        _out(self.stream, f"── incident {result.incident.id} ({elapsed:.1f}s) " + "─" * 20)
        if result.approval_wait is not None:
            _out(self.stream, f"  approval     {result.approval_wait:.1f}s at the prompt (not counted as time to contain)")
        for line in summary_lines(result):
            _out(self.stream, line)


def summary_lines(result: RunResult) -> list[str]:
    """The end of a run, one part a line: the key, its replacement, the targets, the inventory,
    the audit, the exposure, the files written (every path in full) and the verdict."""
    steps = result.steps

    def first(uses: str) -> StepResult | None:
        return next((s for s in steps if s.uses == uses), None)

    def index(step: StepResult | None) -> int:
        return steps.index(step) if step is not None else len(steps)

    def out(step: StepResult | None, name: str, default: Any = None) -> Any:
        return step.outputs.get(name, default) if step is not None and isinstance(step.outputs, dict) else default

    find, revoke, issue = first("key.find"), first("key.revoke"), first("key.issue")
    probes = [s for s in steps if s.uses == "key.probe"]
    dead = next((s for s in probes if out(s, "expect") == "dead"), None)
    live = next((s for s in probes if out(s, "expect") == "live"), None)
    lines: list[str] = []
    if find or revoke:
        label = "leaked key" if index(revoke) < index(issue) else "old key"
        name = out(find, "name") or out(revoke, "name") or result.key or "?"
        masked = out(revoke, "redacted_value") or out(find, "redacted_value")
        if revoke is None:
            state = "still live (not revoked)"
        elif revoke.status == "applied":
            state = "already gone" if out(revoke, "already_gone") else "revoked"
        else:
            state = f"NOT revoked ({revoke.status})"
        probe = f", probe says {out(dead, 'result')}" if out(dead, "result") else ""
        lines.append(f"  {label:<12} {name}" + (f" ({masked})" if masked else "") + f": {state}{probe}")
    if issue:
        if issue.status == "applied" and out(issue, "key_id"):
            probe = f"; probe says {out(live, 'result')}" if out(live, "result") else ""
            lines.append(f"  replacement  {out(issue, 'redacted_value', '?')} ({out(issue, 'key_id')}){probe}")
        else:
            lines.append(f"  replacement  none ({issue.status})")
    deploy = first("targets.deploy")
    targets = out(deploy, "targets", []) or []
    if deploy is not None:
        ok = sum(1 for t in targets if t.get("status") == "applied")
        lines.append(f"  targets      {ok}/{len(targets)} updated" if targets else f"  targets      none ({deploy.status})")
        for t in targets:
            mark = "✔" if t.get("status") == "applied" else "✘"
            lines.append(f"      {mark} {t.get('target')}" + ("" if mark == "✔" else f" ({t.get('status')})"))
    record = first("inventory.record")
    if out(record, "changed"):
        lines.append(f"  inventory    {out(record, 'path')}")
        lines.append(f"               keys.{result.key}.key_id: {out(record, 'was')} -> {out(record, 'key_id')}")
    audit = first("key.audit")
    if audit is not None and audit.status == "applied":
        anomalies = out(audit, "anomalies", []) or []
        cost = out(audit, "estimated_cost_usd")
        lines.append(f"  audit        {len(anomalies)} anomalous hours, first at {out(audit, 'first_anomalous_hour') or '-'}")
        lines.append(f"               new models: {', '.join(out(audit, 'new_models', []) or []) or 'none'}"
                     + (f"; est. cost ${cost:,.2f}" if isinstance(cost, (int, float)) else ""))
    hunt = first("key.hunt")
    if hunt is not None and hunt.status == "applied" and out(hunt, "hunted", True):
        revoked = len(out(hunt, "revoked", []) or [])
        lines.append(f"  hunt         {out(hunt, 'to_review', 0)} objects to review"
                     + (f", {revoked} revoked" if revoked else ""))
    exposure = first("exposure.scan")
    if exposure is not None and exposure.status == "applied":
        findings = out(exposure, "findings", []) or []
        lines.append(f"  exposure     {len(findings)} location(s) found"
                     + ("" if findings else f" ({out(exposure, 'scanned_files', 0)} file(s) searched)"))
        for f in findings:
            lines.append(f"      {f.get('location') or '?'} ({f.get('source')})")
    report = first("report.render")
    for path in (out(report, "paths", {}) or {}).values():
        lines.append(f"  report       {Path(path).resolve()}")
    lines.append(f"  journal      {(result.incident.dir / 'journal.jsonl').resolve()}")
    failed = [s.id for s in steps if s.status == "failed"]
    if result.ok:
        lines.append("  result       every step ok")
    else:
        lines.append(f"  result       FAILED ({', '.join(failed) or 'stopped early'}); fix the cause above, then:")
        lines.append(f"               keyresponse resume {result.incident.id}")
    return lines


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
    """A live step list for terminals: one line a step (its title, time and summary), and under
    it, at the terminal's full width, what went wrong. Any width from 80 columns reads well."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.rows: dict[str, list[str]] = {}
        self.order: list[Any] = []
        self.live: Any = None

    def _render(self) -> Any:
        from rich.console import Group
        from rich.padding import Padding
        from rich.table import Table
        from rich.text import Text

        width = self.console.width
        title_w = min(max((len(s.title) for s in self.order), default=10), max(20, width // 3))
        uses_w = max((len(s.uses) for s in self.order), default=0) if width >= 120 else 0
        parts: list[Any] = []
        for step in self.order:
            status, detail = self.rows[step.id]
            style = {"failed": "red", "applied": "green", "planned": "cyan", "running": "yellow",
                     "interrupted": "yellow"}.get(status, "dim")
            head, _, rest = REDACTOR.redact(detail).partition("\n")
            row = Table.grid(padding=(0, 1), expand=True)
            row.add_column(width=1, no_wrap=True)
            row.add_column(width=title_w)
            if uses_w:
                row.add_column(width=uses_w, no_wrap=True)
            row.add_column(ratio=1, overflow="fold")
            cells = [Text(SYMBOL.get(status, "?"), style=style), Text(step.title)]
            if uses_w:
                cells.append(Text(step.uses, style="dim"))
            cells.append(Text(head))
            row.add_row(*cells)
            parts.append(row)
            if rest.strip():
                parts.append(Padding(Text(rest, overflow="fold", style="red" if status == "failed" else ""),
                                     (0, 0, 0, 4)))
        return Group(*parts)

    def _update(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def run_started(self, incident: Any, playbook: Any, mode: Mode, steps: list[Any]) -> None:
        from rich.live import Live

        self._started = time.monotonic()
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

    def step_forecast(self, step: Any, plan: Any) -> None:
        if step.id in self.rows:
            self.rows[step.id] = ["pending", "will: " + plan.summary]
            self._update()

    def run_aborted(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.console.print(self._render())

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
        if step_id in self.rows:  # the latest progress line, under the running step
            self.rows[step_id][1] = "\n" + ("warning: " if kind == "warning" else "") + message
            self._update()

    def confirm(self, question: str) -> bool:
        if self.live is not None:
            self.live.stop()
        self.console.print(self._render())  # the step list stays in view while the question waits
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
