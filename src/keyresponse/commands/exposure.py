"""`keyresponse exposure scan`: look for copies of a key in git histories and folders,
outside an incident (after rotating: is any copy left?)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from keyresponse.errors import UsageError


def scan(repos: list[Path], folders: list[Path], leaked_stdin: bool, leaked_env: str | None, redacted: str | None,
         unreachable: bool, json_output: bool) -> int:
    """Exit 0: no copy found; 1: copies found (each printed, masked); 2: usage error."""
    from keyresponse.actions.exposure import _files, _lines_matching
    from keyresponse.commands.run import _leaked
    from keyresponse.exposure import cause, gitscan
    from keyresponse.exposure.needle import from_redacted, from_secret

    secret = _leaked(leaked_stdin, leaked_env)
    needle = from_secret(secret) if secret is not None else from_redacted(redacted or "")
    if needle is None:
        raise UsageError("nothing to look for", hint="pipe the value with --leaked-stdin, or give --redacted sk-...abcd")
    if not repos and not folders:
        repos = [Path.cwd()]
    cache = _cache()
    findings = []
    rows = []
    for repo in repos:
        try:
            result = gitscan.scan_repo(repo, [needle], unreachable=unreachable, label=str(repo), cache=cache)
        except gitscan.GitError as exc:
            raise UsageError(f"{repo}: {exc}", hint="give a git repository's folder with --repo") from None
        ignored = gitscan.ignored(repo, sorted({f["path"] for f in result.findings if f.get("path")}))
        rows.append({"name": str(repo), "path": str(repo), "ignored": ignored, "blobs": result.stats.blobs,
                     "commits": result.stats.commits})
        for f in result.findings:
            f["first_seen"] = f.get("committed_at")
        findings += result.findings
    for folder in folders:
        for path in _files(folder):
            for line, m in _lines_matching(path, [needle], "file"):
                findings.append({"source": "local search", "location": f"{path}:{line}", "path": str(path),
                                 "line": line, "masked": m.masked, "fingerprint": m.fingerprint, "commit": None})
    root = cause.root_cause(findings, rows, None)
    fixes = cause.prevention(root, findings, rows) if findings else []
    if json_output:
        print(json.dumps({"findings": findings, "repos": rows, "cause": root["label"] if findings else None,
                          "prevention": fixes}, default=str))
    else:
        print(f"looked for {needle.label} ({needle.kind}) in {len(repos)} repo(s) and {len(folders)} folder(s): "
              f"{len(findings)} copy(ies)")
        for f in findings:
            where = f"{f.get('location')}"
            if f.get("commit"):
                where += (f"  introduced in {f['commit'][:10]} by {f['author']} at {f['committed_at']}"
                          f"; refs: {', '.join(f['refs']) or 'none'}"
                          + ("; still at HEAD" if f.get("in_head") else "")
                          + (f"; removed in {f['removed_in'][:10]}" if f.get("removed_in") else ""))
            print(f"  {where}")
        for fix in fixes:
            print(f"  - {fix['title']}: {fix['detail']}")
    sys.stdout.flush()
    return 1 if findings else 0


def _cache() -> Path | None:
    """The project's history-index folder, when the command runs in a project (its inventory at
    $KEYRESPONSE_CONFIG or ./keyresponse.yaml): the scan keeps the index there warm for an
    incident. Elsewhere no index is kept (nothing is written beside the user's repositories)."""
    import os

    from keyresponse.actions.exposure import cache_dir

    config = Path(os.environ.get("KEYRESPONSE_CONFIG") or "keyresponse.yaml")
    return cache_dir(config.resolve().parent) if config.is_file() else None
