"""Playbooks: a named, ordered list of steps, validated whole before step one runs.

Everything that can be known at load time is checked at load time, with the file,
line and column: unknown `uses:`, unknown or missing `with:` fields, duplicate ids,
expressions that do not parse or read a step that does not come earlier.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyresponse.errors import ConfigError

STEP_ID = r"^[a-z][a-z0-9_]*$"
CONTEXT_NAMES = {"inputs", "key", "steps", "incident"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Input(_Model):
    type: Literal["string", "integer", "number", "boolean", "secret", "object", "datetime"] = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    choices: list[Any] | None = None


class Step(_Model):
    id: str = Field(pattern=STEP_ID, description="Unique id; later steps read steps.<id>.outputs")
    name: str | None = Field(None, description="Human title shown in progress and the report")
    uses: str = Field(description="The action, e.g. key.revoke")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    if_: str | bool | None = Field(None, alias="if", description="Run only when this is true")
    on_failure: Literal["stop", "continue"] = "stop"
    always: bool = Field(False, description="Run even after an earlier step failed and stopped the run")
    retries: int = Field(0, ge=0, le=10)
    timeout: float = Field(600, gt=0, le=86400, description="Seconds")

    @property
    def title(self) -> str:
        return self.name or self.id


class Playbook(_Model):
    name: str
    description: str = ""
    plan_only: bool = Field(False, description="Never apply: `run` plans it, as `drill` does")
    inputs: dict[str, Input] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, v: dict[str, Input]) -> dict[str, Input]:
        for name in v:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"input name {name!r}: use lower-case letters, digits and _")
        return v


class LoadedPlaybook:
    def __init__(self, model: Playbook, path: Path, text: str, deps: dict[str, dict[str, set[str] | None]]) -> None:
        self.model = model
        self.path = path
        self.text = text
        # step id -> {id of a step its expressions read -> the names of its outputs they read (None: any)}
        self.deps = deps

    @property
    def name(self) -> str:
        return self.model.name


def search_path(project_root: Path | None = None) -> list[Path]:
    """Where playbook names are looked up: the project's, the user's, the built-in ones."""
    dirs = []
    if project_root is not None:
        dirs.append(project_root / "playbooks")
    dirs.append(Path.cwd() / "playbooks")
    user = os.environ.get("KEYRESPONSE_PLAYBOOKS")
    if user:
        dirs.extend(Path(p) for p in user.split(os.pathsep) if p)
    dirs.append(Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "keyresponse" / "playbooks")
    dirs.append(Path(__file__).parent / "playbooks")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find(name_or_path: str, project_root: Path | None = None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path or p.exists():
        if p.is_file():
            return p
        raise ConfigError(f"playbook file {name_or_path} does not exist")
    dirs = search_path(project_root)
    for d in dirs:
        for ext in (".yaml", ".yml"):
            candidate = d / f"{name_or_path}{ext}"
            if _readable(candidate.is_file):
                return candidate
    available = sorted({f.stem for d in dirs if _readable(d.is_dir) for f in d.glob("*.y*ml")})
    raise ConfigError(
        f"no playbook named {name_or_path!r}",
        hint=f"available: {', '.join(available) or 'none'}; looked in: "
        + ", ".join(str(d) for d in dirs if _readable(d.is_dir)),
    )


def _readable(check: Callable[[], bool]) -> bool:
    """A folder on the search path this user may not enter (someone else's HOME under
    `sudo -u`) holds no playbook for them: passed over, not a crash."""
    try:
        return check()
    except PermissionError:
        return False


def available(project_root: Path | None = None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in search_path(project_root):
        if _readable(d.is_dir):
            for f in sorted(d.glob("*.y*ml")):
                found.setdefault(f.stem, f)
    return found


def load_playbook(path: str | Path) -> LoadedPlaybook:
    from pydantic import ValidationError

    from keyresponse.yamlio import load_file

    doc = load_file(path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a playbook must be a mapping with `name:` and `steps:`")
    from keyresponse.inventory import refuse_literal_credentials

    refuse_literal_credentials(doc, doc.data, ())
    try:
        model = Playbook.model_validate(doc.data)
    except ValidationError as exc:
        from keyresponse.yamlio import pydantic_errors

        raise pydantic_errors(doc, exc, "playbook") from None
    deps = _check_steps(doc, model)
    text = Path(path).read_text(encoding="utf-8")
    return LoadedPlaybook(model, Path(path), text, deps)


def _check_steps(doc: Any, model: Playbook) -> dict[str, dict[str, set[str] | None]]:
    from keyresponse import expr, registry

    seen: dict[str, int] = {}
    deps: dict[str, dict[str, set[str] | None]] = {}
    for i, step in enumerate(model.steps):
        loc: tuple[Any, ...] = ("steps", i)
        if step.id in seen:
            raise doc.error(
                loc + ("id",),
                f"duplicate step id {step.id!r} (also step {seen[step.id] + 1})",
                hint="every step needs its own id",
            )
        if step.uses not in registry.names():
            from difflib import get_close_matches

            close = get_close_matches(step.uses, registry.names(), n=1)
            raise doc.error(
                loc + ("uses",),
                f"unknown action {step.uses!r}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "`keyresponse actions` lists them all",
            )
        action = registry.get(step.uses)
        _check_with(doc, loc, step, action)
        deps[step.id] = {}
        sources = list(expr.expressions_in(step.with_))
        field_of: list[tuple[str, tuple[Any, ...]]] = [(s, loc + ("with",)) for s in sources]
        if isinstance(step.if_, str):
            m = expr.WHOLE.match(step.if_)
            field_of.append((m.group(1) if m else step.if_, loc + ("if",)))
        for source, where in field_of:
            try:
                expr.check_syntax(source)
            except expr.ExpressionError as exc:
                raise doc.error(where, exc.message) from None
            used = expr.names_used(source)
            unknown = used - CONTEXT_NAMES
            if unknown:
                raise doc.error(
                    where,
                    f"expression reads unknown name(s) {', '.join(sorted(unknown))}",
                    hint="expressions can read inputs, key, steps and incident",
                )
            if not used:  # a constant: its value is known now, so is any refusal (never mid-incident)
                try:
                    expr.render("${{" + source + "}}", {})
                except expr.ExpressionError as exc:
                    raise doc.error(where, exc.message) from None
            reads = expr.output_reads(source)
            if "*" in reads:
                del reads["*"]
                reads.update({ref: None for ref in seen})
            for ref, names in reads.items():
                if ref not in seen:
                    later = any(s.id == ref for s in model.steps)
                    raise doc.error(
                        where,
                        f"step {step.id!r} reads steps.{ref}, which "
                        + ("comes later" if later else "does not exist"),
                        hint="a step can only read the outputs of steps before it",
                    )
                known = deps[step.id].get(ref, set())
                deps[step.id][ref] = None if known is None or names is None else known | names
        seen[step.id] = i
    for name, spec in model.inputs.items():
        if spec.choices is not None and spec.default is not None and spec.default not in spec.choices:
            raise doc.error(("inputs", name, "default"), f"default {spec.default!r} is not one of the choices")
    return deps


def _check_with(doc: Any, loc: tuple[Any, ...], step: Step, action: Any) -> None:
    """Field names always; whole validation when no value is an expression."""
    from pydantic import ValidationError

    from keyresponse import expr

    model = action.With
    fields = model.model_fields
    allowed = set(fields) | {f.alias for f in fields.values() if f.alias}
    for k in step.with_:
        if k not in allowed:
            raise doc.error(
                loc + ("with", k),
                f"{step.uses} has no option {k!r}",
                hint=f"its options: {', '.join(sorted(allowed)) or 'none'}",
            )
    for name, f in fields.items():
        if f.is_required() and name not in step.with_ and (f.alias or name) not in step.with_:
            raise doc.error(loc + ("with",), f"{step.uses} needs `with: {{{f.alias or name}: ...}}`")
    if not any(True for _ in expr.expressions_in(step.with_)):
        problem = secret_problem(step.with_)
        if problem:
            raise doc.error(loc + ("with", "secret"), f"{step.uses}: {problem}",
                            hint="pass a secret whole, e.g. `secret: ${{ steps.issue.outputs.secret }}`")
        try:
            model.model_validate(step.with_)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = loc + ("with",) + tuple(p for p in err["loc"])
            raise doc.error(where, f"{step.uses}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def secret_problem(with_: Any) -> str | None:
    """Why a `with:` block's `secret` cannot be a key: text that is a mask (what a secret
    shows of itself, `sk-…wxyz`), or holds what no key holds (spaces, non-ASCII)."""
    value = with_.get("secret") if isinstance(with_, dict) else None
    if not isinstance(value, str) or not value or "known after apply>" in value:
        return None
    if "…" in value or "..." in value:
        return "with.secret is a masked value (what a secret shows of itself), not the secret"
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        return "with.secret is text no key holds (spaces, control or non-ASCII characters)"
    return None


def _datetime_input(name: str, value: Any) -> str:
    """ISO 8601 (a trailing Z allowed) or Unix seconds, kept as given; anything else is refused now."""
    import datetime as dt

    from keyresponse.errors import UsageError

    text = str(value).strip()
    try:
        if text.isdigit():
            dt.datetime.fromtimestamp(int(text), dt.UTC)
        else:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"input {name!r} must be a time in ISO 8601 (e.g. 2026-11-30T14:05:00Z) or Unix seconds, "
                         f"got {text[:40]!r}") from None
    return text


def coerce_inputs(playbook: LoadedPlaybook, given: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults, types and choices to the inputs a run was given."""
    from keyresponse.errors import UsageError
    from keyresponse.secret import Secret

    spec = playbook.model.inputs
    unknown = set(given) - set(spec)
    if unknown:
        raise UsageError(
            f"playbook {playbook.name!r} has no input(s) {', '.join(sorted(unknown))}",
            hint=f"its inputs: {', '.join(spec) or 'none'}",
        )
    out: dict[str, Any] = {}
    for name, s in spec.items():
        value = given.get(name, s.default)
        if value is None:
            if s.required:
                raise UsageError(
                    f"playbook {playbook.name!r} needs input {name!r}" + (f" ({s.description})" if s.description else ""),
                    hint=f"pass --input {name}=VALUE" + (" or --key NAME" if name == "key" else ""),
                )
            out[name] = None
            continue
        try:
            if s.type == "integer":
                value = int(value)
            elif s.type == "number":
                value = float(value)
            elif s.type == "boolean" and isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            elif s.type == "object" and not isinstance(value, dict):
                raise UsageError(f"input {name!r} is structured data (e.g. --from-alert), not text")
            elif s.type == "datetime":
                value = _datetime_input(name, value)
            elif s.type == "secret" and not isinstance(value, Secret):
                raise UsageError(f"input {name!r} is a secret: pass it on stdin or through an env var, never argv")
        except ValueError:
            raise UsageError(f"input {name!r} must be a {s.type}, got {value!r}") from None
        if s.choices is not None and value not in s.choices:
            raise UsageError(f"input {name!r} must be one of {s.choices}, got {value!r}")
        out[name] = value
    return out


def json_schema() -> dict[str, Any]:
    from keyresponse import registry

    schema = Playbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "keyresponse playbook"
    step = schema["$defs"]["Step"]
    step["properties"]["uses"]["enum"] = registry.names()
    return schema
