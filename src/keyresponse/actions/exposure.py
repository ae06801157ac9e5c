"""`exposure.scan`: where and how the key leaked.

Sources: the alert the incident started from (`--from-alert`), the whole git history
of the inventory's `exposure.repos` (every ref, one pass over each object database: see
exposure/gitscan.py), plain folders, and the opt-in places (shell history, notebooks'
outputs, CI logs saved to disk). It looks for the leaked value when the run has it, or
else for the key's redacted prefix+suffix shape. For GitHub repositories (and GitLab
projects, `exposure.repos[].gitlab`) it asks whether the repository is public and whether secret scanning and push protection are on.
Read-only, so a drill runs it whole. It keeps each repository's history index in the
state dir (`.keyresponse/cache/exposure/`, exposure/index.py: blob ids, paths and commit
metadata, no value), which a drill brings up to date, so the scan an incident waits on
runs only the new commits' tree diffs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import Field

from keyresponse.action import BaseAction, Check, Plan, StepContext, With
from keyresponse.secret import Secret

SKIP_DIRS = {".git", ".keyresponse", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
MAX_FILE = 2 * 1024 * 1024
MAX_LOG = 64 * 1024 * 1024  # a saved CI log is often many MB, and the copy near its end
MAX_FILES = 20_000
SHELL_HISTORY = (".bash_history", ".zsh_history", ".local/share/fish/fish_history", ".python_history")


class ScanArgs(With):
    paths: list[str] = Field(default_factory=list)
    repos: list[str] = Field(default_factory=list)
    unreachable: bool = False
    alert: Any = None
    leaked: Any = None


class Scan(BaseAction):
    name = "exposure.scan"
    summary = ("Find where the key leaked: the alert's locations, the whole git history of the inventory's "
               "repositories, and a search of local folders; name the commit that introduced it.")
    With = ScanArgs

    def plan(self, args: ScanArgs, ctx: StepContext) -> Plan:
        from keyresponse.inventory import ExposureRepo, ExposureSettings

        alert = args.alert if args.alert is not None else ctx.inputs.get("alert")
        leaked = args.leaked if args.leaked is not None else ctx.inputs.get("leaked")
        where: ExposureSettings = ctx.inventory.model.exposure.merged(ctx.key.exposure if ctx.key else None)
        where = where.merged(ExposureSettings(folders=list(args.paths),
                                              repos=[ExposureRepo(path=p) for p in args.repos]))
        roots = [ctx.path(p) for p in where.folders]
        repos = [(r, ctx.path(r.path)) for r in where.repos]
        what = "the leaked value" if isinstance(leaked, Secret) else "the key's redacted shape"
        changes = [f"read the history of {path} (every ref) for {what}" for _, path in repos]
        changes += [f"search {r} for {what}" for r in roots]
        n = len((alert or {}).get("locations") or []) if isinstance(alert, dict) else 0
        return Plan(summary=f"{n} location(s) from the alert, {len(repos)} git repo(s), {len(roots)} folder(s)",
                    changes=changes, data=(alert, leaked, roots, repos, where, args.unreachable))

    def preflight(self, plan: Plan, ctx: StepContext) -> list[Check]:
        _, _, roots, repos, _, _ = plan.data
        checks = [Check(f"folder {r}", r.is_dir(), "" if r.is_dir() else "does not exist",
                        fix=f"create it or drop it from `exposure.folders` ({r})") for r in roots]
        for _, path in repos:
            ok = (path / ".git").exists() or (path / "HEAD").is_file()
            checks.append(Check(f"git repository {path}", ok, "" if ok else "is not a git repository",
                                fix=f"clone it there or drop it from `exposure.repos` ({path})"))
        return checks

    def apply(self, plan: Plan, ctx: StepContext) -> dict[str, Any]:
        from keyresponse.exposure import cause
        from keyresponse.exposure.needle import Needle, from_redacted, from_secret

        alert, leaked, roots, repos, where, unreachable = plan.data
        findings = _alert_findings(alert)
        needles: list[Needle] = []
        if isinstance(leaked, Secret):
            needles.append(from_secret(leaked))
        else:
            shape = from_redacted(_redacted(ctx) or "")
            if shape is not None:
                needles.append(shape)
        scanned, checked = 0, []
        if not needles and (repos or roots):
            ctx.warn("no leaked value and no redacted form of the key: repositories and folders are not searched")
        if needles:
            for settings, path in repos:
                row, found = _scan_repo(ctx, settings, path, needles, unreachable or settings.unreachable)
                checked.append(row)
                findings += found
            files = [(p, "file") for r in roots for p in _files(r)]
            files += [(p, "notebook") for r in where.notebooks for p in _files(ctx.path(r)) if p.suffix == ".ipynb"]
            files += [(p, "ci-log") for r in where.ci_logs for p in _files(ctx.path(r), MAX_LOG)]
            if where.shell_history:
                home = Path.home()
                files += [(home / h, "shell-history") for h in SHELL_HISTORY if (home / h).is_file()]
            for path, place in files:
                scanned += 1
                for line_no, match in _lines_matching(path, needles, place):
                    findings.append({"source": place if place != "file" else "local search", "place": place,
                                     "location": f"{path}:{line_no}", "path": str(path), "line": line_no,
                                     "masked": match.masked, "fingerprint": match.fingerprint,
                                     "url": None, "commit": None, "first_seen": None})
            blobs = sum(r.get("blobs", 0) for r in checked)
            ctx.progress(f"read {blobs} object(s) in {len(checked)} repo(s), searched {scanned} file(s)")
        first_abuse = _first_abuse(ctx)
        root = cause.root_cause(findings, checked, first_abuse)
        times = sorted(f["first_seen"] for f in findings if f.get("first_seen"))
        return {"findings": findings, "repos": checked, "scanned_files": scanned,
                "searched_for": [n.kind for n in needles], "earliest": times[0] if times else None,
                "cause": {k: v for k, v in root.items() if k not in ("first", "repo")},
                "first_commit": (root.get("first") or {}).get("commit")}


def _alert_findings(alert: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(alert, dict):
        for loc in alert.get("locations") or []:
            where = ":".join(str(x) for x in (loc.get("repo"), loc.get("path"), loc.get("line")) if x)
            out.append({"source": f"alert ({alert.get('source')})", "location": where or None, "path": loc.get("path"),
                        "url": loc.get("url"), "commit": loc.get("commit"), "place": "alert",
                        "first_seen": loc.get("when") or alert.get("leaked_at") or alert.get("detected_at")})
    return out


def _redacted(ctx: StepContext) -> str | None:
    """The key's redacted form from an earlier step (key.find, key.revoke), or None."""
    for out in ctx.outputs.values():
        value = out.get("redacted_value") if isinstance(out, dict) else None
        if isinstance(value, str) and value:
            return value
    return None


def _first_abuse(ctx: StepContext) -> str | None:
    for out in ctx.outputs.values():
        if isinstance(out, dict) and isinstance(out.get("first_anomalous_hour"), str):
            return str(out["first_anomalous_hour"])
    return None


def _scan_repo(ctx: StepContext, settings: Any, path: Path, needles: list[Any], unreachable: bool
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from keyresponse.exposure import gitscan

    name = settings.name or settings.path
    row: dict[str, Any] = {"name": name, "path": str(path), "github": settings.github, "public": settings.public}
    if settings.gitlab is not None:
        row["gitlab"] = settings.gitlab
    try:
        scan = gitscan.scan_repo(path, needles, unreachable=unreachable, label=name, cache=cache_dir(ctx.inventory.root))
    except (gitscan.GitError, OSError) as exc:
        ctx.warn(f"git repository {name}: {exc}")
        return row | {"error": str(exc)}, []
    row.update(blobs=scan.stats.blobs, commits=scan.stats.commits, refs=scan.stats.refs,
               ignored=gitscan.ignored(path, sorted({f["path"] for f in scan.findings if f.get("path")})))
    if settings.github:
        row.update(_github_repo(ctx, settings))
    elif settings.gitlab is not None:
        row.update(_gitlab_project(ctx, settings))
    for f in scan.findings:
        f["first_seen"] = f.get("committed_at")
        f["public"] = row.get("public")
        if f.get("commit"):
            f["source"] = f"commit {f['short']} in {name}"
    return row, scan.findings


def cache_dir(root: Path) -> Path:
    """Where the history indexes of a project's repositories live (exposure/index.py)."""
    from keyresponse.journal import STATE_DIR

    return root / STATE_DIR / "cache" / "exposure"


def warm(inventory: Any, key: str | None) -> list[str]:
    """Bring the history index of every repository `exposure.scan` would read for `key` up to
    date, reading no blob (what a drill does): one line per repository it could not index."""
    from keyresponse.exposure import gitscan

    where = inventory.model.exposure.merged(inventory.key(key).exposure if key else None)
    problems = []
    for r in where.repos:
        path = (inventory.root / r.path) if not Path(r.path).is_absolute() else Path(r.path)
        try:
            gitscan.index_repo(path, cache_dir(inventory.root), unreachable=r.unreachable)
        except (gitscan.GitError, OSError) as exc:
            problems.append(f"{r.name or r.path}: {exc}")
    return problems


def _github_repo(ctx: StepContext, settings: Any) -> dict[str, Any]:
    """Visibility and code security settings from GET /repos/{owner}/{repo}."""
    from keyresponse.targets.github import GitHubPlatform, github_client

    platforms = ctx.inventory.model.platforms
    name = settings.platform or next((n for n, p in platforms.items() if isinstance(p, GitHubPlatform)), None)
    platform = platforms.get(name) if name else None
    if not isinstance(platform, GitHubPlatform) or name is None:
        return {"github_error": "no github platform in the inventory to ask"}
    try:
        response = github_client(ctx, name, platform).get(f"repos/{settings.github}")
    except Exception as exc:  # noqa: BLE001 - the scan's findings stand without these facts
        return {"github_error": f"GitHub did not answer: {type(exc).__name__}"}
    if response.status_code != 200:
        return {"github_error": f"GET /repos/{settings.github} answered {response.status_code}"}
    body = response.json()
    sa = body.get("security_and_analysis") or {}
    return {"public": not body.get("private", True), "visibility": body.get("visibility"),
            "html_url": body.get("html_url"),
            "secret_scanning": (sa.get("secret_scanning") or {}).get("status"),
            "push_protection": (sa.get("secret_scanning_push_protection") or {}).get("status")}


def _gitlab_project(ctx: StepContext, settings: Any) -> dict[str, Any]:
    """Visibility from GitLab's GET /projects/:id (`private`, `internal`: any signed-in user of
    the instance, or `public`)."""
    from urllib.parse import quote

    from keyresponse.targets.gitlab import GitLabPlatform, gitlab_client

    platforms = ctx.inventory.model.platforms
    name = settings.platform or next((n for n, p in platforms.items() if isinstance(p, GitLabPlatform)), None)
    platform = platforms.get(name) if name else None
    if not isinstance(platform, GitLabPlatform) or name is None:
        return {"gitlab_error": "no gitlab platform in the inventory to ask"}
    project = quote(str(settings.gitlab), safe="")
    try:
        response = gitlab_client(ctx, name, platform).get(f"projects/{project}")
    except Exception as exc:  # noqa: BLE001 - the scan's findings stand without these facts
        return {"gitlab_error": f"GitLab did not answer: {type(exc).__name__}"}
    if response.status_code != 200:
        return {"gitlab_error": f"GET /projects/{project} answered {response.status_code}"}
    body = response.json()
    visibility = body.get("visibility")
    if visibility not in ("private", "internal", "public"):
        return {"gitlab_error": f"GET /projects/{project} gave no visibility"}
    return {"public": visibility == "public", "visibility": visibility, "html_url": body.get("web_url")}


def _files(root: Path, max_size: int = MAX_FILE) -> Any:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or path.stat().st_size > max_size:
                    continue
            except OSError:
                continue
            count += 1
            if count > MAX_FILES:
                return
            yield path


def _lines_matching(path: Path, needles: list[Any], place: str) -> list[tuple[int, Any]]:
    from keyresponse.exposure.needle import line_of

    try:
        data = path.read_bytes()
    except OSError:
        return []
    if place == "notebook":
        return _notebook_matches(data, needles)
    if not any(n.quick(data) for n in needles):
        return []
    return [(line_of(data, m.offset), m) for n in needles for m in n.matches(data)]


def _notebook_matches(data: bytes, needles: list[Any]) -> list[tuple[int, Any]]:
    """Copies in a notebook's cell outputs (where a printed key hides), each with the line of
    the .ipynb file that holds it. The outputs are searched decoded: in the file a value is
    JSON-escaped and may follow an escape (`...\\nsk-...`), which a shape's word boundary
    would not see. A file that is no notebook is searched as it is."""
    from keyresponse.exposure.needle import line_of

    try:
        cells = json.loads(data).get("cells") or []
    except (ValueError, AttributeError, UnicodeDecodeError):
        return [(line_of(data, m.offset), m) for n in needles for m in n.matches(data)]
    out: list[tuple[int, Any]] = []
    cursor = 0
    for text in (t for cell in cells if isinstance(cell, dict) for o in cell.get("outputs") or []
                 for t in _strings(o)):
        raw = text.encode("utf-8", "surrogatepass")
        for n in needles:
            for m in n.matches(raw):
                # where the file holds this copy: its JSON form, from the previous copy on
                encoded = json.dumps(m.value.decode("utf-8", "replace"))[1:-1].encode()
                at = data.find(encoded, cursor)
                if at < 0:
                    at = data.find(encoded)
                cursor = at + 1 if at >= 0 else cursor
                out.append((line_of(data, max(at, 0)), m))
    return out


def _strings(node: Any) -> Any:
    """Every string in an output (stream text, each data mime type, an error's traceback), in order."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for key, item in node.items():
            if key not in ("metadata", "output_type", "name", "execution_count"):
                yield from _strings(item)
