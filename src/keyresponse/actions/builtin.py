"""Built-in actions that need no provider: a log line and a human approval gate."""

from __future__ import annotations

from typing import Any

from keyresponse.action import BaseAction, Plan, StepContext, With
from keyresponse.errors import ApprovalRefused


class LogArgs(With):
    message: str
    level: str = "info"


class LogMessage(BaseAction):
    name = "log.message"
    summary = "Write a message to the progress output and the journal."
    With = LogArgs

    def plan(self, args: LogArgs, ctx: StepContext) -> Plan:
        return Plan(summary=f"log: {args.message}", data=args)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        ctx.progress(plan.data.message)
        return {"message": plan.data.message}


class ApprovalArgs(With):
    prompt: str = "Continue?"


class WaitApproval(BaseAction):
    name = "wait.approval"
    summary = "Stop until a person confirms on the terminal; refuses without --yes when nobody can answer."
    With = ApprovalArgs

    def plan(self, args: ApprovalArgs, ctx: StepContext) -> Plan:
        return Plan(summary=f"ask: {args.prompt}", data=args)

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        if ctx.assume_yes:
            return {"approved": True, "by": "--yes"}
        if not ctx.interactive:
            raise ApprovalRefused(
                f"approval needed ({plan.data.prompt}) but there is no terminal to ask on",
                hint="run it from a terminal, or pass --yes to approve in advance",
            )
        import typer

        if not typer.confirm(plan.data.prompt, default=False, err=True):
            raise ApprovalRefused("not approved at the prompt")
        return {"approved": True, "by": "terminal"}
