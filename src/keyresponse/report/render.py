"""Render the report model to Markdown, HTML and JSON in the incident folder.

Templates come from the user's `report.template_dir` first, then the built-in
ones beside this module. Every value a template prints is data from the journal
(key names, service answers): the HTML environment autoescapes, the Markdown one
escapes every printed value through `finalize`, so a template cannot forget to.
Values are never parsed as templates, and the environment is sandboxed because a
template dir is configuration someone else may have written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.errors import ConfigError
from keyresponse.report import model as report_model
from keyresponse.report import times

if TYPE_CHECKING:
    import jinja2

    from keyresponse.inventory import LoadedInventory
    from keyresponse.journal import Incident

FORMATS = ("md", "html", "json")
BUILTIN = Path(__file__).parent / "templates"
TEMPLATES = {"md": "report.md.j2", "html": "report.html.j2"}


def render_incident(
    incident: Incident, inventory: LoadedInventory | None, formats: Iterable[str] = FORMATS,
    *, current_step: str | None = None,
) -> dict[str, Path]:
    """Build the model from the incident's journal and write report.<fmt> for each format.

    `current_step` is the report step rendering it from inside a run (left out: it is not done)."""
    from keyresponse.journal import utcnow

    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown report format(s): {', '.join(unknown)}", hint="use md, html or json")
    model = report_model.build(
        incident.journal.records(), incident_id=incident.id, incident_dir=str(incident.dir),
        running=incident.is_locked(), rendered_at=utcnow(), current_step=current_step,
    )
    folder = template_dir(inventory)
    return {fmt: incident.write_file(f"report.{fmt}", render(model, fmt, folder)) for fmt in formats}


def render(model: dict[str, Any], fmt: str, template_dir: Path | None = None) -> str:
    if fmt == "json":
        return json.dumps(model, indent=2, ensure_ascii=False, default=str) + "\n"
    import jinja2

    env = environment(template_dir, fmt)
    try:
        template = env.get_template(TEMPLATES[fmt])
        return template.render(report=model, chart=_chart(model, fmt), **model)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"report template {exc.name}: {exc.message}", file=exc.filename, line=exc.lineno) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"report template {TEMPLATES[fmt]}: {exc.message or exc}",
                          hint="compare it with the built-in template of the same name") from None


def environment(template_dir: Path | None, fmt: str) -> jinja2.Environment:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    search = [str(template_dir)] if template_dir else []
    loader = jinja2.FileSystemLoader([*search, str(BUILTIN)])
    if fmt == "html":
        env = SandboxedEnvironment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                   trim_blocks=True, lstrip_blocks=True, finalize=_dash)
    else:
        env = SandboxedEnvironment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined,
                                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                   finalize=_md_finalize)
    env.filters.update(
        md=md_escape, when=times.human, iso=times.iso, dur=times.duration, money=_money,
        num=_num, yesno=_yesno, status_class=_status_class,
    )
    return env


def template_dir(inventory: LoadedInventory | None) -> Path | None:
    if inventory is None or inventory.model.report.template_dir is None:
        return None
    path = Path(inventory.model.report.template_dir)
    path = path if path.is_absolute() else inventory.root / path
    if not path.is_dir():
        raise ConfigError(f"report.template_dir {path} is not a folder",
                          hint="create it, or remove `report.template_dir` to use the built-in templates")
    return path


def _chart(model: dict[str, Any], fmt: str) -> Any:
    audit = model.get("audit") or {}
    if fmt != "html" or not audit.get("ran"):
        return ""
    from markupsafe import Markup

    from keyresponse.report.svg import usage_chart

    # usage_chart escapes every text it places; Markup keeps autoescape from escaping the tags.
    return Markup(usage_chart(audit.get("hourly") or [], leak_time=audit.get("leak_time") or model["summary"]["leaked_at"]))


# --- Markdown escaping

_MD_SPECIAL = re.compile(r"([\\`*\[\]|~])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# Only what would start a block at the start of a line: a heading, list item, rule or setext underline.
_MD_LEADING = re.compile(r"^(\s*)([#+=-](?=[\s#+=-]|$)|\d+(?=[.)](?:\s|$)))")


def md_escape(value: Any) -> Any:
    """Inline Markdown text that renders as the literal value, in a paragraph or a table cell.

    HTML-significant characters become entities (so `<script>` is text), Markdown
    punctuation is backslash-escaped (so `|` cannot split a table cell and `*` or
    `[` cannot format or link), and newlines become spaces (a cell is one line)."""
    from markupsafe import Markup

    if isinstance(value, Markup):
        return value
    text = _dash(value)
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"[\r\n]+", " ", text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_UNDERSCORE.sub(r"\\_", text)
    m = _MD_LEADING.match(text)
    if m:
        lead, mark = m.group(1), m.group(2)
        text = lead + (mark + "\\" if mark[0].isdigit() else "\\" + mark) + text[m.end():]
    return Markup(text)  # marked done, so `finalize` does not escape it twice


def _md_finalize(value: Any) -> Any:
    from markupsafe import Markup

    if isinstance(value, Markup) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return str(value)
    return md_escape(value)


def _dash(value: Any) -> Any:
    return "—" if value is None else value


def _money(value: Any) -> str:
    return f"${value:,.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _yesno(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _status_class(value: Any) -> str:
    text = str(value or "").lower()
    if text in ("applied", "succeeded", "resolved", "dead", "live", "restricted", "ok", "done", "planned", "yes"):
        return "good"
    if text in ("failed", "needs attention", "interrupted", "no", "open", "unknown"):
        return "bad"
    return "neutral"
