"""`keyresponse drill`: one key, every key, a live canary rotation, or the history."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from keyresponse.errors import UsageError


def drill(config: Path, key: str | None, all_keys: bool, live: str | None, show_history: bool,
          stale_days: int, yes: bool, json_output: bool) -> int:
    from keyresponse import drills
    from keyresponse.commands import load_config
    from keyresponse.console import PlainReporter, reporter_for

    inventory = load_config(config)
    if show_history:
        return _history(inventory, stale_days, json_output)
    if live is not None:
        return _live(inventory, live, yes, json_output)
    if bool(key) == bool(all_keys):
        raise UsageError("say which keys to drill: --key NAME or --all",
                         hint="`keyresponse drill --history` shows earlier drills")
    if key is not None:
        inventory.key(key)  # an unknown name is a clear error before anything runs
    names = sorted(inventory.model.keys) if all_keys else [key]
    if not names:
        raise UsageError("the inventory has no keys to drill")
    records = []
    for name in names:
        reporter = reporter_for(json_output) if len(names) == 1 else (
            reporter_for(True) if json_output else PlainReporter())
        records.append(drills.drill_key(inventory, str(name), reporter))
    warning = drills.post_summary(inventory, records)
    if json_output:
        print(json.dumps({"event": "drill", "ok": all(r["ok"] for r in records), "drills": records,
                          "warning": warning}))
    else:
        print()
        for r in records:
            print(f"{'PASS' if r['ok'] else 'FAIL'}  {r['key']}  (incident {r['incident']})")
            for p in r["problems"]:
                print(f"      {p}")
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    return 0 if all(r["ok"] for r in records) else 1


def _history(inventory: Any, stale_days: int, json_output: bool) -> int:
    from keyresponse import drills

    records = drills.history(inventory.root)
    stale = drills.stale_keys(inventory, records, stale_days)
    if json_output:
        print(json.dumps({"drills": records, "stale": stale, "stale_days": stale_days}, indent=2))
        return 1 if stale else 0
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault(r["key"], []).append(r)
    for name in sorted(set(by_key) | set(inventory.model.keys)):
        runs = by_key.get(name, [])
        marks = "".join("✔" if r["ok"] else "✘" for r in runs[-20:]) or "(never drilled)"
        last = runs[-1]["at"] if runs else "-"
        flag = ""
        if name in stale:
            flag = f"  STALE: no passing drill in {stale_days} days" + (
                f" (last pass {stale[name]})" if stale[name] else " (never passed)")
        print(f"{name:<24} {marks:<22} last {last}{flag}")
    return 1 if stale else 0


def _live(inventory: Any, key: str, yes: bool, json_output: bool) -> int:
    """A real fire drill: rotate a key marked `canary: true`."""
    from keyresponse import playbook as pbmod
    from keyresponse.console import reporter_for
    from keyresponse.engine import Engine, Mode

    entry = inventory.key(key)
    if not entry.canary:
        raise UsageError(
            f"--live rotates for real, and key {key!r} is not marked `canary: true`",
            hint="live drills run only on a key that exists for them; mark one `canary: true` in the inventory",
        )
    book = pbmod.load_playbook(pbmod.find("rotate", inventory.root))
    inputs = pbmod.coerce_inputs(book, {"key": key})
    engine = Engine(inventory, mode=Mode.APPLY, reporter=reporter_for(json_output), assume_yes=yes,
                    interactive=sys.stdin.isatty() and not json_output)
    return engine.start(book, inputs, key).exit_code
