"""How it leaked: the first exposure among the findings, its class, and the fixes for it.

Pure functions over the scan's outputs (findings, repositories and the checks made on
them) and the audit's first abusive hour; the report and the command both use them.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

CLASSES = {
    "committed-env": "committed .env file",
    "hardcoded": "hardcoded in source",
    "notebook": "notebook output",
    "ci-log": "CI log",
    "shell-history": "shell history",
    "unknown": "pasted elsewhere / unknown",
}
SOURCE_EXT = {".py", ".js", ".ts", ".tsx", ".jsx", ".go", ".rb", ".java", ".kt", ".cs", ".php", ".rs", ".swift",
              ".sh", ".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".tf", ".md", ".txt", ".properties"}


def classify(finding: dict[str, Any]) -> str:
    kind = finding.get("place")
    if kind in ("notebook", "ci-log", "shell-history"):
        return str(kind)
    path = str(finding.get("path") or finding.get("location") or "")
    name = PurePosixPath(path.split(":")[0] if not finding.get("path") else path).name.lower()
    if name.startswith(".env") or name.endswith(".env"):
        return "committed-env" if finding.get("commit") else "hardcoded"
    if name.endswith(".ipynb"):
        return "notebook"
    if name.endswith(".log"):
        return "ci-log"
    if path:
        return "hardcoded"
    return "unknown"


def _ts(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def first_exposure(findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earliest copy: a git finding's commit time, an alert's location time; findings
    with no time (a file found today) come last."""
    timed = sorted(findings, key=lambda f: (_ts(f.get("first_seen")) is None, _ts(f.get("first_seen")) or 0.0,
                                            not f.get("commit")))
    reachable = [f for f in timed if f.get("reachable", True)]
    pool = reachable or timed
    return pool[0] if pool else None


def root_cause(findings: list[dict[str, Any]], repos: list[dict[str, Any]], first_abuse: str | None
               ) -> dict[str, Any]:
    """Where and when the key first became exposed, how long before the first abuse, and why."""
    first = first_exposure(findings)
    if first is None:
        return {"known": False, "class": "unknown", "label": CLASSES["unknown"], "first": None,
                "exposed_at": None, "first_abuse": first_abuse, "window_seconds": None, "public": None}
    repo = next((r for r in repos if r.get("name") == first.get("repo")), {})
    exposed_at = first.get("first_seen")
    start, abuse = _ts(exposed_at), _ts(first_abuse)
    cls = classify(first)
    return {
        "known": True, "class": cls, "label": CLASSES[cls], "first": first,
        "exposed_at": exposed_at, "first_abuse": first_abuse,
        "window_seconds": (abuse - start) if start is not None and abuse is not None else None,
        "public": repo.get("public") if repo else first.get("public"),
        "visibility": repo.get("visibility") if repo else None,
        "repo": repo or None,
    }


def prevention(cause: dict[str, Any], findings: list[dict[str, Any]], repos: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Concrete fixes, each with what the scan checked (`done` when the check says it is in place)."""
    out: list[dict[str, Any]] = []
    git = [f for f in findings if f.get("commit") and f.get("path")]
    for repo in repos:
        mine = [f for f in git if f.get("repo") == repo.get("name")]
        if not mine:
            continue
        name = repo.get("name")
        envs = sorted({f["path"] for f in mine if classify(f) == "committed-env"})
        for path in envs:
            ignored = (repo.get("ignored") or {}).get(path)
            out.append({"title": f"Ignore {path} in {name}", "done": bool(ignored),
                        "detail": f"{path} is already ignored by .gitignore" if ignored else
                        f"add the line `{PurePosixPath(path).name}` to {name}'s .gitignore (checked: it is not "
                        "ignored), and keep an `.env.example` without values"})
        sources = sorted({f["path"] for f in mine if classify(f) == "hardcoded" and f.get("in_head")})
        for path in sources:
            out.append({"title": f"Move the key out of {path}", "done": False,
                        "detail": f"{name}:{path} still holds a copy at HEAD (checked): read it from an environment "
                                  "variable (os.environ[\"OPENAI_API_KEY\"]) or a secret manager"})
        tracked = sorted({f["path"] for f in mine if f.get("tracked") and f.get("in_worktree")})
        if tracked:
            out.append({"title": f"Untrack the copies in {name}", "done": False,
                        "detail": "still tracked and in the working tree (checked): "
                                  + ", ".join(tracked) + "; then `git rm --cached` and commit"})
        paths = sorted({f["path"] for f in mine} | {p for f in mine for p in f.get("moved_from") or []})
        refs = sorted({r for f in mine for r in f.get("refs") or []})
        cmd = "git filter-repo --invert-paths " + " ".join(f"--path {shlex.quote(p)}" for p in paths)
        public = repo.get("public")
        out.append({
            "title": f"Rewrite {name}'s history", "done": False,
            "detail": f"{len(refs)} ref(s) still reach a copy ({', '.join(refs[:6])}{'…' if len(refs) > 6 else ''}); "
                      f"in a fresh clone: `{cmd}` (or `git filter-repo --replace-text FILE` with the masked "
                      "value's line, to keep the files), then force-push every ref and ask collaborators to re-clone."
                      + (" The repository is public: the copy stays leaked in forks and caches whatever the rewrite"
                         " does; the revoke is the fix, the rewrite is hygiene." if public else
                         " A public leak stays leaked whatever the rewrite does: the revoke is the fix."),
        })
        if repo.get("github"):
            pp, ss = repo.get("push_protection"), repo.get("secret_scanning")
            on = pp == "enabled" and ss == "enabled"
            checked = f"checked via the GitHub API: secret scanning {ss or 'unknown'}, push protection {pp or 'unknown'}"
            out.append({"title": f"Turn on secret scanning and push protection for {repo['github']}", "done": on,
                        "detail": checked if on else
                        f"{checked}; enable both in Settings → Code security (or PATCH /repos/{repo['github']} with "
                        "security_and_analysis.secret_scanning_push_protection.status = enabled)"})
    if git or cause.get("known"):
        out.append({"title": "Add a pre-commit secret scan", "done": False,
                    "detail": "a `.pre-commit-config.yaml` hook running gitleaks (repo: "
                              "https://github.com/gitleaks/gitleaks, hook id: gitleaks) and the same scan in CI, "
                              "so the next copy is refused before it is pushed"})
    if cause.get("class") == "notebook":
        out.append({"title": "Clear notebook outputs before committing", "done": False,
                    "detail": "add nbstripout (`nbstripout --install`) and read the key from the environment"})
    if cause.get("class") == "ci-log":
        out.append({"title": "Mask the key in CI logs", "done": False,
                    "detail": "pass it as a masked CI secret, never echo it, and delete the saved logs that hold it"})
    return out
