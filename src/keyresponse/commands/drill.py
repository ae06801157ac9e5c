"""`keyresponse drill`: prove, changing nothing, that a response would work today.

One key, every key, a live canary rotation (`--live`), or the history (`--history`).

Each drill runs the `drill` playbook (plan + preflight only) for one key, turns
every failed check into one line that says how to fix it, and keeps the result
in `.keyresponse/drills/` so `--history` can show pass/fail over time and flag
keys whose drill has not passed recently.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.commands.common import check_key_name, load_config
from keyresponse.errors import UsageError

if TYPE_CHECKING:
    from keyresponse.engine import Reporter, RunResult


def drill(config: Path, key: str | None, all_keys: bool, live: str | None, show_history: bool,
          stale_days: int, yes: bool, json_output: bool, *, sandbox: bool = False) -> int:
    if sandbox:  # the same drill, against a freshly seeded sandbox whose config is written here
        from keyresponse.commands.demo import sandbox_session

        with sandbox_session(Path.cwd()):
            return drill(Path.cwd() / "keyresponse.yaml", key, all_keys, live, show_history, stale_days, yes,
                         json_output)
    from keyresponse.console import PlainReporter, reporter_for

    inventory = load_config(config)
    if show_history:
        return _history(inventory, stale_days, json_output)
    if live is not None:
        return _live(inventory, live, yes, json_output)
    if bool(key) == bool(all_keys):
        raise UsageError("say which keys to drill: --key NAME or --all",
                         hint="`keyresponse drill --history` shows earlier drills")
    check_key_name(inventory, key)  # an unknown name is a clear error before anything runs
    names = sorted(inventory.model.keys) if all_keys else [key]
    if not names:
        raise UsageError("the inventory has no keys to drill")
    records = []
    for name in names:
        reporter = reporter_for(json_output) if len(names) == 1 else (
            reporter_for(True) if json_output else PlainReporter())
        records.append(drill_key(inventory, str(name), reporter))
    warnings = [w for w in (_slack_unchecked(inventory), post_summary(inventory, records)) if w]
    warning = "; ".join(warnings) or None
    if json_output:
        print(json.dumps({"event": "result", "ok": all(r["ok"] for r in records), "drills": records,
                          "warning": warning, "warnings": warnings}))
    else:
        print()
        for r in records:
            print(f"{'PASS' if r['ok'] else 'FAIL'}  {r['key']}  (incident {r['incident']})")
            for p in r["problems"]:
                print(f"      {p}")
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
    return 0 if all(r["ok"] for r in records) else 1


def _slack_unchecked(inventory: Any) -> str | None:
    if inventory.model.notify.slack is not None:
        return None
    return ("no notify.slack in the inventory, so Slack was not checked (an incident would tell nobody); "
            "add notify: {slack: {token_env: SLACK_BOT_TOKEN, channel: C…}} to check it")


def _history(inventory: Any, stale_days: int, json_output: bool) -> int:
    records = history(inventory.root)
    stale = stale_keys(inventory, records, stale_days)
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

    check_key_name(inventory, key)
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


def problems_of(result: RunResult) -> list[str]:
    """One line per problem: the step, what failed, and the fix."""
    lines: list[str] = []
    for step in result.steps:
        if step.status != "failed":
            continue
        failed = [c for c in step.checks if not c.ok]
        if failed:
            for c in failed:
                line = f"{step.id}: {c.what}" + (f": {c.detail}" if c.detail else "")
                lines.append(line + (f" -> fix: {c.fix}" if c.fix else ""))
        else:
            lines.append(f"{step.id}: {step.error}" + (f" -> fix: {step.hint}" if step.hint else ""))
    return lines


def drill_key(inventory: Any, key_name: str, reporter: Reporter, playbook_name: str = "drill") -> dict[str, Any]:
    from keyresponse import playbook as pbmod
    from keyresponse.engine import Engine, Mode
    from keyresponse.journal import utcnow

    if playbook_name == "drill" and inventory.key(key_name).kind == "admin":
        playbook_name = "leaked-admin-key"  # an admin key's own response, planned and preflighted only
    book = pbmod.load_playbook(pbmod.find(playbook_name, inventory.root))
    inputs = pbmod.coerce_inputs(book, {"key": key_name} if "key" in book.model.inputs else {})
    result = Engine(inventory, mode=Mode.PLAN, reporter=reporter).start(book, inputs, key_name)
    problems = problems_of(result)
    if not inventory.key(key_name).targets:
        problems.append(f"targets: keys.{key_name} lists no targets, so a leaked-key response would revoke it and "
                        "restore nothing -> fix: list where the key is deployed under keys."
                        f"{key_name}.targets (see `keyresponse schema inventory`)")
    problems += orphan_problems(inventory, key_name)
    _warm_exposure(inventory, key_name)
    record = {
        "key": key_name,
        "at": utcnow(),
        "ok": result.ok and not problems,
        "incident": result.incident.id,
        "problems": problems,
        "steps": {s.id: s.status for s in result.steps},
    }
    _save(inventory.root / ".keyresponse" / "drills", record)
    return record


def _warm_exposure(inventory: Any, key_name: str) -> None:
    """The exposure scan's history indexes, brought up to date in the state dir (no blob is
    read, nothing else is written), so an incident's scan runs only new commits' tree diffs.
    A repository that cannot be indexed is the scan's own business: the drill goes on."""
    from keyresponse.actions.exposure import warm

    try:
        warm(inventory, key_name)
    except Exception:  # noqa: BLE001 - a cache must never fail the drill
        pass


def orphan_problems(inventory: Any, key_name: str) -> list[str]:
    """Read-only: a replacement an incident of this key minted (or tried to) that is live
    and that no target holds (a mint that landed after anyone looked): one line each, with the fix."""
    from keyresponse import http
    from keyresponse.actions.key_common import connect, provider_settings
    from keyresponse.actions.key_issue import orphans
    from keyresponse.errors import KeyresponseError
    from keyresponse.journal import Incident

    incidents = [i for i in Incident.all(inventory.root / ".keyresponse")
                 if i.summary().get("key") == key_name and i.summary().get("mode") != "plan"]
    journals = [(i, list(i.journal.records())) for i in incidents]
    journals = [(i, r) for i, r in journals if any(x.get("note") in ("key.issue.intent", "admin_key.intent")
                                                   for x in r)]
    if not journals:
        return []
    entry = inventory.key(key_name)
    clients: list[Any] = []

    def client(service: str, base_url: str, headers: dict[str, str]) -> Any:
        clients.append(http.build_client(service, base_url, headers, read_only=True))
        return clients[-1]

    lines: list[str] = []
    try:
        _, cfg = provider_settings(inventory, entry.provider)
        if entry.kind == "admin":
            lines += _admin_orphans(inventory, cfg, client, journals, in_use={entry.key_id} - {None})
            return lines
        provider = connect(inventory, cfg, client)
        for incident, records in journals:
            for project, found in orphans(records, provider, in_use={entry.key_id} - {None}):
                what = "service account" if found.service_account_id else "key"
                lines.append(f"orphans: {what} {found.ident} ({found.name}) in {project} is live, named after incident "
                             f"{incident.id}, and no target holds it -> fix: `keyresponse resume {incident.id}` "
                             f"revokes it (or delete it in the {provider.title} dashboard)")
    except KeyresponseError as exc:
        lines.append(f"orphans: could not look up the replacements earlier incidents minted: {exc.message}"
                     + (f" -> fix: {exc.hint}" if exc.hint else ""))
    finally:
        for c in clients:
            c.close()
    return lines


def _admin_orphans(inventory: Any, cfg: Any, client: Any, journals: list[tuple[Any, list[dict[str, Any]]]],
                   in_use: set[str]) -> list[str]:
    from keyresponse.actions.admin_key import orphans
    from keyresponse.providers import openai_admin

    keys = openai_admin.connect(cfg, inventory.credential(cfg.admin_key_env, "admin credential"), client)
    return [f"orphans: admin key {k.key_id} ({k.name}) is live, named after incident {incident.id}, and no target "
            f"holds it -> fix: `keyresponse resume {incident.id}` deletes it (or delete it in the dashboard)"
            for incident, records in journals for k in orphans(records, keys, in_use=in_use)]


def _save(folder: Path, record: dict[str, Any]) -> None:
    from keyresponse.journal import write_private

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{record['at'].replace(':', '').replace('.', '')}-{record['key']}.json"
    write_private(folder / name, json.dumps(record, indent=2).encode("utf-8"))


def history(root: Path) -> list[dict[str, Any]]:
    folder = root / ".keyresponse" / "drills"
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda r: r["at"])


def stale_keys(inventory: Any, records: list[dict[str, Any]], days: int,
               now: dt.datetime | None = None) -> dict[str, str | None]:
    """Keys whose drill has not passed within `days` days -> the last pass (or None)."""
    now = now or dt.datetime.now(dt.UTC)
    last_pass: dict[str, str] = {}
    for r in records:
        if r.get("ok"):
            last_pass[r["key"]] = max(last_pass.get(r["key"], ""), r["at"])
    stale: dict[str, str | None] = {}
    for name in inventory.model.keys:
        when = last_pass.get(name)
        if when is None:
            stale[name] = None
            continue
        passed = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        if now - passed > dt.timedelta(days=days):
            stale[name] = when
    return stale


def post_summary(inventory: Any, records: list[dict[str, Any]]) -> str | None:
    """Post the pass/fail summary to the drill channel, if one is set; a warning on failure."""
    slack = inventory.model.notify.slack
    if slack is None or not slack.drill_channel:
        return None
    try:
        from keyresponse.slack import post_drill_summary
    except ImportError:
        return "Slack drill summary is not available in this build"
    try:
        post_drill_summary(inventory, slack, records)
    except Exception as exc:  # noqa: BLE001 - a drill summary must never fail the drill
        from keyresponse.secret import redact

        return redact(f"could not post the drill summary to Slack: {exc}")
    return None
