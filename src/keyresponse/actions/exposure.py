"""`exposure.scan`: where the key leaked.

Two sources: the alert the incident started from (`--from-alert`: repository, file,
line, commit, author, when), and a search of local folders for the leaked value
itself when the run has it. Read-only, so a drill runs it whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from keyresponse.action import BaseAction, Check, Plan, StepContext, With
from keyresponse.secret import Secret

SKIP_DIRS = {".git", ".keyresponse", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
MAX_FILE = 2 * 1024 * 1024
MAX_FILES = 20_000


class ScanArgs(With):
    paths: list[str] = []
    alert: Any = None
    leaked: Any = None


class Scan(BaseAction):
    name = "exposure.scan"
    summary = "Find where the key leaked: the alert's locations, and a search of local folders for the leaked value."
    With = ScanArgs

    def plan(self, args: ScanArgs, ctx: StepContext) -> Plan:
        alert = args.alert if args.alert is not None else ctx.inputs.get("alert")
        leaked = args.leaked if args.leaked is not None else ctx.inputs.get("leaked")
        roots = [ctx.path(p) for p in args.paths]
        changes = [f"search {r} for the leaked value" for r in roots] if isinstance(leaked, Secret) else []
        if roots and not isinstance(leaked, Secret):
            changes.append("no leaked value in this run: local folders are not searched")
        n = len((alert or {}).get("locations") or []) if isinstance(alert, dict) else 0
        return Plan(summary=f"{n} location(s) from the alert, {len(roots)} folder(s) to search",
                    changes=changes, data=(alert, leaked, roots))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        _, _, roots = plan.data
        return [Check(f"folder {r}", r.is_dir(), "" if r.is_dir() else "does not exist",
                      fix=f"create it or drop it from exposure.scan `paths:` ({r})") for r in roots]

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        alert, leaked, roots = plan.data
        findings = []
        if isinstance(alert, dict):
            for loc in alert.get("locations") or []:
                where = ":".join(str(x) for x in (loc.get("repo"), loc.get("path"), loc.get("line")) if x)
                findings.append({"source": f"alert ({alert.get('source')})", "location": where or None,
                                 "url": loc.get("url"), "commit": loc.get("commit"),
                                 "first_seen": loc.get("when") or alert.get("leaked_at") or alert.get("detected_at")})
        scanned = 0
        if isinstance(leaked, Secret):
            needle = leaked.reveal().encode()
            for root in roots:
                for path in _files(root):
                    scanned += 1
                    for line_no in _lines_containing(path, needle):
                        findings.append({"source": "local search", "location": f"{path}:{line_no}",
                                         "url": None, "commit": None, "first_seen": None})
            ctx.progress(f"searched {scanned} files")
        times = sorted(f["first_seen"] for f in findings if f["first_seen"])
        return {"findings": findings, "scanned_files": scanned, "earliest": times[0] if times else None}


def _files(root: Path) -> Any:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or path.stat().st_size > MAX_FILE:
                    continue
            except OSError:
                continue
            count += 1
            if count > MAX_FILES:
                return
            yield path


def _lines_containing(path: Path, needle: bytes) -> list[int]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if needle not in data:
        return []
    return [i for i, line in enumerate(data.splitlines(), 1) if needle in line]
