"""What `uses:` names: the Action protocol and the context a step runs in.

An action does three things, and the engine alone decides which of them run:

    plan(args, ctx)        pure: what would change, as a `Plan`
    preflight(plan, ctx)   read-only calls that prove apply could succeed
    apply(plan, ctx)       the change; returns the step's outputs

`--dry-run`, `plan` and `drill` stop after preflight. An action never asks which
mode it is in; in plan mode the HTTP clients it gets refuse anything but reads.

One more, optional, for the first step of a run:

    prefetch(args, early)  the set-up of a read its preflight will need (imports, the
                           client), returning the read itself as a function; the engine
                           runs that in the background while it opens the incident, and
                           preflight picks the answer up with `ctx.prefetched()`
                           (None: do the read now)

It lets the network round trip overlap start-up; it must only read, and it sees
no journal (the incident does not exist yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from concurrent.futures import Future

    import httpx

    from keyresponse.inventory import KeyEntry, LoadedInventory
    from keyresponse.journal import Incident


class With(BaseModel):
    """Base for each action's `with:` model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class NoArgs(With):
    pass


@dataclass
class Check:
    """One preflight finding. A failed check carries the fix, in one line.

    A failed *blocking* check stops the step. A non-blocking one (one target of
    many that cannot be reached) fails a dry run or drill, but in a real run is
    journaled as a warning and the step goes on: during an incident the other
    targets must still get the new key."""

    what: str
    ok: bool
    detail: str = ""
    fix: str | None = None
    blocking: bool = True
    # the plan settles it, not a read that may go otherwise later: a run refuses to start
    # when such a check fails for a step after one that changes things
    settled: bool = False

    def line(self) -> str:
        mark = "ok" if self.ok else "FAIL"
        text = f"[{mark}] {self.what}" + (f": {self.detail}" if self.detail else "")
        if not self.ok and self.fix:
            text += f" -> {self.fix}"
        return text


@dataclass
class Plan:
    """What a step would do. `summary` is one line; `changes` one line per change."""

    summary: str
    changes: list[str] = field(default_factory=list)
    data: Any = None
    destructive: bool = False
    # What later steps may read in plan mode; anything else reads as a `Planned` placeholder.
    outputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "changes": self.changes, "destructive": self.destructive}


class Planned:
    """A value that exists only once a step is applied (in plan mode, e.g. the new key)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __str__(self) -> str:
        return f"<{self.ref}, known after apply>"

    __repr__ = __str__

    def __bool__(self) -> bool:
        return True


class PlannedOutputs(dict[str, Any]):
    """Outputs of a step that was only planned: known values, else `Planned` placeholders."""

    def __init__(self, step_id: str, known: dict[str, Any]) -> None:
        super().__init__(known)
        self.step_id = step_id

    def __missing__(self, name: str) -> Planned:
        return Planned(f"steps.{self.step_id}.outputs.{name}")


class Action(Protocol):
    name: ClassVar[str]
    summary: ClassVar[str]
    With: ClassVar[type[Any]]  # a pydantic model of its `with:` (Any: each action names its own subclass)

    def plan(self, args: Any, ctx: StepContext) -> Plan: ...
    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]: ...
    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]: ...

    # Optional: `prefetch`, see `Prefetching` below and the module's docstring.

    # Optional: `after_run(incident, inventory, outputs)`, called once the incident's end
    # is journaled, for each step of this action that was applied in the run
    # (report.render renders again so the report holds the whole run).


@runtime_checkable
class Prefetching(Protocol):
    """An action whose first call can be made early (see the module's docstring): the
    function it returns is run in the background while the incident opens."""

    def prefetch(self, args: Any, early: EarlyContext) -> Callable[[], Any] | None: ...


class BaseAction:
    """Convenience base: no preflight checks, no outputs."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    With: ClassVar[type[BaseModel]] = NoArgs

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return []

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        return {}


@dataclass
class EarlyContext:
    """What a step's `prefetch` may use: the run's inventory, inputs and HTTP clients."""

    inventory: LoadedInventory
    inputs: dict[str, Any]
    key_name: str | None
    _http: Callable[..., httpx.Client]

    @property
    def key(self) -> KeyEntry | None:
        return self.inventory.model.keys.get(self.key_name) if self.key_name else None

    def http(self, service: str, base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
        """The shared client for a service (retries, timeouts, redaction; read-only in plan mode)."""
        return self._http(service, base_url, headers or {})


@dataclass
class StepContext(EarlyContext):
    """Everything a step may use. Built by the engine, one per step attempt."""

    incident: Incident
    step_id: str
    attempt: int
    outputs: dict[str, dict[str, Any]]  # outputs of earlier steps, by id
    assume_yes: bool
    interactive: bool
    deadline: float | None
    _emit: Callable[[str, str], None]
    playbook_name: str = ""
    statuses: dict[str, str] = field(default_factory=dict)
    early: Future[Any] | None = None  # this step's prefetch, when one was started

    def prefetched(self) -> Any:
        """What this step's `prefetch` returned, waiting for it if it is still at work;
        None when none ran or it failed (the step then makes the call itself, and reports
        any error in full)."""
        if self.early is None:
            return None
        try:
            return self.early.result(timeout=self.remaining())
        except Exception:  # noqa: BLE001 - the step's own call reports the failure
            return None

    def require_key(self) -> KeyEntry:
        from keyresponse.errors import UsageError

        key = self.key
        if key is None:
            raise UsageError(
                f"step {self.step_id!r} needs an inventory key",
                hint="pass --key NAME (a name under `keys:` in the inventory)",
            )
        return key

    def record(self, event: str, **data: Any) -> None:
        """Journal a note for this step now (fsynced): what a resume must know."""
        self.incident.journal.append("step.note", step=self.step_id, note=event, **data)

    def notes(self, event: str) -> list[dict[str, Any]]:
        """This step's notes named `event` so far: this attempt's, earlier attempts' and
        earlier runs' of the incident (read from the journal at the time of the call)."""
        return [
            r for r in self.incident.journal.records()
            if r.get("event") == "step.note" and r.get("step") == self.step_id and r.get("note") == event
        ]

    def progress(self, message: str) -> None:
        self._emit("progress", message)

    def warn(self, message: str) -> None:
        self.incident.journal.append("step.warning", step=self.step_id, message=message)
        self._emit("warning", message)

    def path(self, relative: str) -> Path:
        return (self.inventory.root / relative) if not Path(relative).is_absolute() else Path(relative)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
