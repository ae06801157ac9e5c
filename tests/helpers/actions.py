"""Small actions only tests register: fail once, block until told, emit a secret, edit a file."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from keyresponse.action import Action, BaseAction, Check, Plan, StepContext, With
from keyresponse.errors import StepError
from keyresponse.secret import Secret


class FailOnceArgs(With):
    marker: str


class FailOnce(BaseAction):
    """Fails (not retryable) the first time it is applied; succeeds afterwards."""

    name = "test.fail_once"
    summary = "test"
    With = FailOnceArgs

    def plan(self, args: FailOnceArgs, ctx: StepContext) -> Plan:
        return Plan(summary="fail once", data=Path(args.marker))

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        marker: Path = plan.data
        if not marker.exists():
            marker.write_text("failed once")
            err = StepError("first attempt fails on purpose")
            err.retryable = False
            raise err
        return {"ok": True}


class CountArgs(With):
    counter: str


class Count(BaseAction):
    """Appends a line to a file each time it is applied."""

    name = "test.count"
    summary = "test"
    With = CountArgs

    def plan(self, args: CountArgs, ctx: StepContext) -> Plan:
        return Plan(summary="count", data=Path(args.counter))

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        with open(plan.data, "a") as fh:
            fh.write(ctx.step_id + "\n")
        return {}


BLOCK_EVENTS: dict[str, threading.Event] = {}
STARTED_EVENTS: dict[str, threading.Event] = {}


class BlockArgs(With):
    name: str


class Block(BaseAction):
    name = "test.block"
    summary = "test"
    With = BlockArgs

    def plan(self, args: BlockArgs, ctx: StepContext) -> Plan:
        return Plan(summary="block", data=args.name)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        STARTED_EVENTS[plan.data].set()
        BLOCK_EVENTS[plan.data].wait(10)
        return {}


class SecretArgs(With):
    env: str


class EmitSecret(BaseAction):
    """Reads a secret from an env var, outputs it, and misbehaves with it on purpose:
    prints it in progress text and raises an error that contains it."""

    name = "test.emit_secret"
    summary = "test"
    With = SecretArgs

    def plan(self, args: SecretArgs, ctx: StepContext) -> Plan:
        return Plan(summary="emit", data=args.env)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        import os

        secret = Secret(os.environ[plan.data])
        ctx.progress(f"careless progress line with {secret.reveal()}")
        ctx.record("careless.note", value=secret.reveal(), masked=secret)
        return {"secret": secret, "text": f"embedded {secret.reveal()} text"}


class UseSecretArgs(With):
    secret: Any
    fail: bool = False


class UseSecret(BaseAction):
    name = "test.use_secret"
    summary = "test"
    With = UseSecretArgs

    def plan(self, args: UseSecretArgs, ctx: StepContext) -> Plan:
        return Plan(summary=f"use {args.secret}", data=args)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        return [Check("secret is a Secret or planned", True)]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        value = plan.data.secret
        text = value.reveal() if hasattr(value, "reveal") else str(value)
        if plan.data.fail:
            raise StepError(f"service said: bad key {text}")
        return {"length": len(text)}


class ReplaceTextArgs(With):
    path: str
    old: str
    new: str


class ReplaceText(BaseAction):
    """Edits a file behind the run's back (somebody else changing it mid-run)."""

    name = "test.replace_text"
    summary = "test"
    With = ReplaceTextArgs

    def plan(self, args: ReplaceTextArgs, ctx: StepContext) -> Plan:
        return Plan(summary="edit a file", data=args)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        path = Path(plan.data.path)
        path.write_text(path.read_text().replace(plan.data.old, plan.data.new))
        return {}


BARRIERS: dict[str, threading.Barrier] = {}


class MeetArgs(With):
    barrier: str
    destructive: bool = False


class Meet(BaseAction):
    """Its preflight waits at a barrier for the preflights of the other steps naming the
    same barrier: it passes only when they run at the same time."""

    name = "test.meet"
    summary = "test"
    With = MeetArgs

    def plan(self, args: MeetArgs, ctx: StepContext) -> Plan:
        return Plan(summary="meet", data=args.barrier, destructive=args.destructive)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        try:
            BARRIERS[plan.data].wait(5)
            met = True
        except threading.BrokenBarrierError:
            met = False
        return [Check("met the others", met, "" if met else "ran alone", settled=True)]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        return {}


class WrappedInterrupt(BaseAction):
    """Its plan is interrupted the way Python 3.11 reports a signal that lands while a
    class is being built (a descriptor's __set_name__): a RuntimeError around it."""

    name = "test.wrapped_interrupt"
    summary = "test"

    def plan(self, args: Any, ctx: StepContext) -> Plan:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on '_Field' instance") from exc

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        return {}


SEEN: dict[str, list[str]] = {}
PLANNED: dict[str, threading.Event] = {}


class SeenArgs(With):
    wait_for: str | None = None  # its preflight waits until that step is planned


class Seen(BaseAction):
    """Its preflight records which steps' outputs it can see (after waiting, when told, until
    a later step has been planned); its plan tells whoever waits for it."""

    name = "test.seen"
    summary = "test"
    With = SeenArgs

    def plan(self, args: SeenArgs, ctx: StepContext) -> Plan:
        PLANNED.setdefault(ctx.step_id, threading.Event()).set()
        return Plan(summary="seen", data=args.wait_for)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        if plan.data:
            PLANNED.setdefault(plan.data, threading.Event()).wait(5)
        SEEN[ctx.step_id] = sorted(ctx.outputs)
        return []

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        return {}


ALL: list[type[Action]] = [FailOnce, Count, Block, EmitSecret, UseSecret, ReplaceText, Meet, WrappedInterrupt, Seen]


def register_all() -> None:
    from keyresponse import registry

    for cls in ALL:
        registry.register(cls.name, cls)


# Importing this module registers them: a subprocess run gets them through
# KEYRESPONSE_ACTION_MODULES=tests.helpers.actions.
register_all()
