"""`keyresponse validate`, `schema`, `actions` and `playbooks`: checking and listing what is configured."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from keyresponse.commands.common import load_config
from keyresponse.errors import UsageError


def validate(config: Path, names: list[str], json_output: bool) -> int:
    from keyresponse import playbook as pbmod
    from keyresponse.errors import KeyresponseError

    problems: list[KeyresponseError] = []
    checked: list[str] = []
    inventory = None
    try:
        inventory = load_config(config)
        checked.append(str(config))
    except KeyresponseError as exc:
        problems.append(exc)
    root = inventory.root if inventory else Path.cwd()
    paths = [pbmod.find(n, root) for n in names] if names else list(pbmod.available(root).values())
    for path in paths:
        try:
            pbmod.load_playbook(path)
            checked.append(str(path))
        except KeyresponseError as exc:
            problems.append(exc)
    if json_output:
        fields = [f for exc in problems for f in problem_fields(exc)]
        print(json.dumps({"ok": not problems, "checked": checked, "problems": fields}, indent=2))
    else:
        for c in checked:
            print(f"ok    {c}")
        for p in problems:
            print(f"error {p}", file=sys.stderr)
    return 2 if problems else 0


def problem_fields(exc: Exception) -> list[dict[str, Any]]:
    """An error as `validate --json` gives it: one object per problem, with file, line, column,
    message and hint as fields."""
    listed = getattr(exc, "problems", None)
    if isinstance(listed, list) and listed:
        return [dict(p) for p in listed]
    file, line, column = (getattr(exc, name, None) for name in ("file", "line", "column"))
    message = str(getattr(exc, "message", exc))
    prefix = f"{file}:{line}:{column}: " if column is not None else f"{file}:{line}: " if line is not None else f"{file}: "
    if file and message.startswith(prefix):
        message = message[len(prefix):]
    return [{"file": file, "line": line, "column": column, "message": message, "hint": getattr(exc, "hint", None)}]


def schema(kind: str) -> int:
    if kind == "inventory":
        from keyresponse.inventory import json_schema
    elif kind == "playbook":
        from keyresponse.playbook import json_schema
    else:
        raise UsageError(f"schema {kind!r}: choose inventory or playbook")
    print(json.dumps(json_schema(), indent=2))
    return 0


def actions(json_output: bool, markdown: bool = False) -> int:
    from keyresponse import registry

    rows: list[dict[str, Any]] = []
    for name in registry.names():
        cls = registry.get(name)
        options: list[dict[str, str]] = []
        for field, info in cls.With.model_fields.items():
            default = "required" if info.is_required() else f"default {_short(info.get_default(call_default_factory=True))}"
            options.append({"name": info.alias or field, "default": default})
        rows.append({"name": name, "summary": cls.summary, "with": options})
    if json_output:
        print(json.dumps(rows, indent=2))
    elif markdown:
        print("| action | what it does | `with:` options |\n| --- | --- | --- |")
        for r in rows:
            opts = ", ".join(f"`{o['name']}` ({o['default']})" for o in r["with"]) or "none"
            print(f"| `{r['name']}` | {r['summary']} | {opts} |")
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['summary']}")
    return 0


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "…"


def playbooks(config: Path, json_output: bool, markdown: bool = False) -> int:
    from keyresponse import playbook as pbmod
    from keyresponse.errors import KeyresponseError

    inventory = load_config(config, required=False)
    rows: list[dict[str, Any]] = []
    for name, path in pbmod.available(inventory.root).items():
        try:
            book = pbmod.load_playbook(path)
        except KeyresponseError as exc:
            rows.append({"name": name, "path": str(path), "error": str(exc)})
            continue
        rows.append({
            "name": name, "path": str(path), "description": book.model.description.strip(),
            "inputs": {k: v.model_dump(exclude_none=True) for k, v in book.model.inputs.items()},
            "steps": [s.id for s in book.model.steps],
        })
    if json_output:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if markdown:
        for r in rows:
            if "error" in r:
                continue
            print(f"#### `{r['name']}`\n\n{r['description']}\n")
            for k, v in r["inputs"].items():
                kind = v.get("type", "string")
                req = "required" if v.get("required") else (f"default `{v['default']}`" if v.get("default") is not None else "optional")
                choices = f"; one of {', '.join(map(str, v['choices']))}" if v.get("choices") else ""
                print(f"- `{k}` ({kind}, {req}{choices}): {v.get('description', '')}".rstrip(": "))
            print(f"\nSteps: {' → '.join(r['steps'])}\n")
        return 0
    for r in rows:
        print(f"{r['name']}  ({r['path']})")
        if "error" in r:
            print(f"  error: {r['error']}")
            continue
        if r["description"]:
            print("  " + r["description"].splitlines()[0])
        for k, v in r["inputs"].items():
            req = "required" if v.get("required") else f"default {v.get('default')!r}"
            print(f"    --input {k}=…  ({v.get('type', 'string')}, {req}) {v.get('description', '')}")
    return 0
