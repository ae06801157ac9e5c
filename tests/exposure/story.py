"""A repository with a history worth scanning, built with fast-import in well under a second:
hundreds of commits, branches, tags (light and annotated), a merge, notes, a stash, a
binary file, a rename, a copy added then removed, one only on an unmerged branch, and
(after `build`) loose objects that `git gc` packs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from keyresponse.sandbox.seed_git import FastImport

T0 = 1_700_000_000
NOISE = 400


@dataclass
class Story:
    repo: Path
    value: str = field(repr=False)
    commits: dict[str, str] = field(default_factory=dict)  # name -> sha


def build(repo: Path, value: str) -> Story:
    v = value.encode()
    fi = FastImport()
    marks: dict[str, int] = {}
    t = T0
    prev = fi.commit("refs/heads/main", t, "initial", {"README.md": b"# app\n", ".gitignore": b"__pycache__/\n"})
    for i in range(NOISE):
        t += 600
        if i == 50:
            fi.reset("refs/tags/v1.0", prev)
        if i == 100:
            marks["env_added"] = prev = fi.commit(
                "refs/heads/main", t, "add local config", {".env": b"DEBUG=1\nOPENAI_API_KEY=" + v + b"\n"},
                parent=prev, author="Bob Okafor <bob@acme.example>", committer="Alice Nakamura <alice@acme.example>")
            continue
        if i == 120:
            marks["hardcoded"] = prev = fi.commit(
                "refs/heads/main", t, "settings", {"config/settings.py": b"import os\n\n\n\nKEY = '" + v + b"'\n"},
                parent=prev)
            continue
        if i == 130:
            fi.tag("v2.0", prev, t, "release 2")
            # a branch from here that nobody merged: it still has the .env at its tip
            marks["old_branch"] = fi.commit("refs/heads/feature/old", t + 1, "wip", {"wip.txt": b"wip\n"}, parent=prev)
        if i == 150:
            marks["env_removed"] = prev = fi.commit("refs/heads/main", t, "remove .env", {".env": None}, parent=prev)
            continue
        if i == 170:
            marks["renamed"] = prev = fi.commit("refs/heads/main", t, "move settings",
                                                renames={"config/settings.py": "app/settings.py"}, parent=prev)
            continue
        if i == 200:
            # an unmerged branch, the only place with this copy; an annotated tag on it
            base = prev
            marks["experiment"] = e = fi.commit("refs/heads/experiment", t, "try", {"notes/try.md": b"x\n\nkey " + v + b"\n"},
                                                parent=base, author="Carol Diaz <carol@acme.example>")
            for j in range(5):
                e = fi.commit("refs/heads/experiment", t + j + 1, f"try {j}", {f"notes/n{j}.md": b"n\n"}, parent=e)
            fi.tag("exp-v1", e, t + 10, "experiment")
        if i == 250:
            marks["binary"] = prev = fi.commit("refs/heads/main", t, "add blob",
                                               {"assets/model.bin": b"\x00\x01BIN\x00" + v + b"\x00\xff" * 20}, parent=prev)
            continue
        if i == 300:
            h = fi.commit("refs/heads/hotfix", t, "hotfix", {"src/hotfix.py": b"fix\n"}, parent=prev)
            marks["merge"] = prev = fi.commit("refs/heads/main", t + 1, "merge hotfix", parent=prev, merge=[h])
            continue
        if i == 320:
            marks["noted"] = prev
            fi.note(prev, t, b"deployed with " + v + b"\n")
        prev = fi.commit("refs/heads/main", t, f"change {i}", {f"src/mod{i % 40}.py": f"x = {i}\n".encode()},
                         parent=prev)
    marks["head"] = prev
    shas = fi.run(repo)
    return Story(repo, value, {name: shas[m] for name, m in marks.items()})
