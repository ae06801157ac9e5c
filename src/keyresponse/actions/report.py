"""`report.render`: write the incident report (Markdown, HTML, JSON) into the incident folder.

It renders from the journal, like `keyresponse report ID`, so the report says only
what the journal holds at that moment: this step and the ones after it are not
in it, and the report says when it was rendered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from keyresponse.action import BaseAction, Check, Plan, StepContext, With

Format = Literal["md", "html", "json"]
ALL_FORMATS: tuple[Format, ...] = ("md", "html", "json")


class RenderArgs(With):
    formats: list[Format] = Field(default_factory=lambda: list(ALL_FORMATS), min_length=1)


class Render(BaseAction):
    name = "report.render"
    summary = "Render the incident report from the journal: report.md, report.html (with the usage chart), report.json."
    With = RenderArgs

    def plan(self, args: RenderArgs, ctx: StepContext) -> Plan:
        formats = list(dict.fromkeys(args.formats))
        names = ", ".join(f"report.{f}" for f in formats)
        return Plan(summary=f"write {names} into {ctx.incident.dir}", data=formats)

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        from keyresponse.errors import ConfigError
        from keyresponse.report import render

        # A broken user template should show up in a dry run or drill, not mid-incident.
        try:
            dirs = render.template_dir(ctx.inventory)
            for fmt in plan.data:
                if fmt in render.TEMPLATES:
                    render.environment(dirs, fmt).get_template(render.TEMPLATES[fmt])
        except ConfigError as exc:
            return [Check("report templates", ok=False, detail=exc.message, fix=exc.hint)]
        except Exception as exc:  # noqa: BLE001 - jinja's syntax errors carry file and line
            return [Check("report templates", ok=False, detail=f"{type(exc).__name__}: {exc}",
                          fix="fix the template, or remove report.template_dir to use the built-in ones")]
        where = f"templates from {dirs} then built-in" if dirs else "built-in templates"
        return [Check("report templates", ok=True, detail=where)]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse.report.render import render_incident

        paths = render_incident(ctx.incident, ctx.inventory, plan.data, current_step=ctx.step_id)
        for fmt, path in paths.items():
            ctx.progress(f"report ({fmt}): {path}")
        return {"paths": {fmt: str(path) for fmt, path in paths.items()}}

    @staticmethod
    def after_run(incident: Any, inventory: Any, outputs: dict[str, Any]) -> None:
        """Once the run is over, render again: the final report holds every step, the
        closing notice included, and the run's end status."""
        from keyresponse.report.render import render_incident

        formats = [f for f in (outputs.get("paths") or {}) if f in ALL_FORMATS]
        if formats:
            render_incident(incident, inventory, formats)
