"""`keyresponse run`, `plan` and `resume`: one incident through the engine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from keyresponse.commands.common import check_key_name, load_config, open_incident
from keyresponse.errors import UsageError


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--input {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def _leaked(leaked_stdin: bool, leaked_env: str | None) -> Any:
    from keyresponse.secret import secret_from_env, secret_from_stdin

    if leaked_stdin and leaked_env:
        raise UsageError("give the leaked value once: --leaked-stdin or --leaked-env, not both")
    if leaked_stdin:
        return secret_from_stdin()
    if leaked_env:
        value = secret_from_env(leaked_env)
        if value is None:
            raise UsageError(f"--leaked-env {leaked_env}: that environment variable is empty or unset")
        return value
    return None


def run(playbook_name: str, config: Path, key: str | None, input_pairs: list[str], leaked_stdin: bool,
        leaked_env: str | None, *, plan_only: bool, yes: bool, json_output: bool,
        from_alert: Path | None = None, sandbox: bool = False) -> int:
    if sandbox:  # the same run, against a freshly seeded sandbox whose config is written here
        from keyresponse.commands.demo import sandbox_session

        with sandbox_session(Path.cwd()):
            return run(playbook_name, Path.cwd() / "keyresponse.yaml", key, input_pairs, leaked_stdin, leaked_env,
                       plan_only=plan_only, yes=yes, json_output=json_output, from_alert=from_alert)
    from keyresponse import playbook as pbmod
    from keyresponse.console import reporter_for
    from keyresponse.engine import Engine, Mode

    inventory = load_config(config, required=False)
    book = pbmod.load_playbook(pbmod.find(playbook_name, inventory.root))
    given = _parse_inputs(input_pairs)
    if key is not None:
        given["key"] = key
    leaked = _leaked(leaked_stdin, leaked_env)
    if from_alert is not None:
        leaked = _apply_alert(book, given, from_alert, leaked)
    if leaked is not None:
        if "leaked" not in book.model.inputs:
            raise UsageError(f"playbook {book.name!r} takes no leaked value (it has no `leaked` input)")
        given["leaked"] = leaked
        if given.get("key") is None and inventory.path is not None:
            given["key"] = _locate(inventory, leaked)
    for name in ("key",):
        if name in given and name not in book.model.inputs:
            raise UsageError(f"playbook {book.name!r} has no `{name}` input; drop --{name}")
    inputs = pbmod.coerce_inputs(book, given)
    if {"key", "leaked"} <= set(book.model.inputs) and inputs.get("key") is None and inputs.get("leaked") is None:
        raise UsageError(
            f"playbook {book.name!r} needs to know which key: nothing identifies it",
            hint="pass --key NAME (see `keyresponse validate`), the value with --leaked-stdin or "
                 "--leaked-env VAR, or --from-alert FILE",
        )
    key_name = inputs.get("key")
    check_key_name(inventory, key_name)
    engine = Engine(
        inventory,
        mode=Mode.PLAN if plan_only else Mode.APPLY,
        reporter=reporter_for(json_output),
        assume_yes=yes,
        interactive=sys.stdin.isatty() and not json_output,
    )
    return engine.start(book, inputs, key_name).exit_code


def _apply_alert(book: Any, given: dict[str, Any], path: Path, leaked: Any) -> Any:
    """Fold a scanner's alert into the inputs: its locations, when it leaked, and the
    value itself when the payload carries one (and none was given on stdin/env)."""
    from keyresponse import alerts

    found = alerts.load(path)
    values = {a.secret.reveal(): a.secret for a in found if a.secret is not None}
    if len(values) > 1:
        raise UsageError(
            f"--from-alert {path}: it holds {len(values)} different secrets "
            f"({', '.join(s.masked for s in values.values())}); one incident handles one key",
            hint="split the report, or pass the one that leaked with --leaked-stdin",
        )
    merged = found[0].summary()
    merged["locations"] = [loc for a in found for loc in a.summary()["locations"]]
    times = sorted(t for a in found for t in (a.leaked_at, a.detected_at) if t)
    if "alert" in book.model.inputs:
        given["alert"] = merged
    if "leaked_at" in book.model.inputs and times and given.get("leaked_at") is None:
        given["leaked_at"] = times[0]
    if leaked is None and values:
        leaked = next(iter(values.values()))
    return leaked


def _locate(inventory: Any, leaked: Any) -> str | None:
    """Which inventory key a leaked value belongs to (None: the provider lookup decides)."""
    import os

    for name, entry in inventory.model.keys.items():
        if entry.secret_env and os.environ.get(entry.secret_env, "").strip() == leaked.reveal():
            return str(name)
    try:
        from keyresponse.actions.key import locate_in_inventory
    except ImportError:
        return None
    found: str | None = locate_in_inventory(inventory, leaked)
    return found


def resume(incident_id: str, config: Path, *, yes: bool, json_output: bool) -> int:
    from keyresponse.console import reporter_for
    from keyresponse.engine import Engine, Mode

    inventory = load_config(config, required=False)
    incident = open_incident(inventory, incident_id)
    summary = incident.summary()
    opened: dict[str, Any] = next((r for r in incident.journal.records() if r["event"] == "incident.opened"), {})
    if inventory.path is None and opened.get("inventory"):
        inventory = load_config(Path(opened["inventory"]))
    engine = Engine(inventory, mode=Mode.APPLY, reporter=reporter_for(json_output), assume_yes=yes,
                    interactive=sys.stdin.isatty() and not json_output)
    if summary["status"] in ("succeeded", "planned"):
        what = "a plan (nothing to continue)" if summary["status"] == "planned" else "finished: every step succeeded"
        if engine.report_again(incident):  # the process that ended it was stopped while writing the reports
            sys.stderr.write(f"incident {incident.id} is {what}; its last run stopped while writing the final "
                             "reports: rendered them again.\n")
            return 0
        sys.stderr.write(f"incident {incident.id} is already {what}; there is nothing to resume.\n"
                         f"  `keyresponse report {incident.id}` renders its report again\n")
        return 0
    return engine.resume(incident).exit_code
