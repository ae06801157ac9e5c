"""Git repositories built at run time with `git fast-import`: the demo's leaky repository,
and the histories the exposure tests and bench scan.

The stream goes to git's stdin, so the fake keys written into files are never in argv.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def git_env(when: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", LC_ALL="C",
               GIT_AUTHOR_NAME="Sandbox", GIT_AUTHOR_EMAIL="sandbox@acme.example",
               GIT_COMMITTER_NAME="Sandbox", GIT_COMMITTER_EMAIL="sandbox@acme.example")
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{when} +0000"
    return env


def git(repo: Path, *args: str, stdin: bytes | None = None, when: int | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          env=git_env(when), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace')[:300]}")
    return proc.stdout.decode(errors="replace")


@dataclass
class FastImport:
    """A fast-import stream, written commit by commit; `run()` feeds it to a new repository."""

    parts: list[bytes] = field(default_factory=list)
    marks: int = 0

    def _data(self, content: bytes) -> None:
        self.parts.append(b"data %d\n" % len(content) + content + b"\n")

    def commit(self, ref: str, when: int, message: str, files: dict[str, bytes | None] | None = None, *,
               parent: int | None = None, merge: list[int] | None = None, author: str = "Dev <dev@acme.example>",
               committer: str | None = None, renames: dict[str, str] | None = None) -> int:
        """One commit on `ref`; `files` maps path -> content (None deletes). Returns its mark."""
        self.marks += 1
        ident = f"{when} +0000".encode()
        self.parts.append(b"commit %s\nmark :%d\n" % (ref.encode(), self.marks))
        self.parts.append(b"author %s %s\n" % (author.encode(), ident))
        self.parts.append(b"committer %s %s\n" % ((committer or author).encode(), ident))
        self._data(message.encode())
        if parent is not None:
            self.parts.append(b"from :%d\n" % parent)
        for m in merge or []:
            self.parts.append(b"merge :%d\n" % m)
        for old, new in (renames or {}).items():
            self.parts.append(b'R "%s" "%s"\n' % (old.encode(), new.encode()))
        for path, content in (files or {}).items():
            if content is None:
                self.parts.append(b'D "%s"\n' % path.encode())
            else:
                self.parts.append(b'M 100644 inline "%s"\n' % path.encode())
                self._data(content)
        return self.marks

    def tag(self, name: str, mark: int, when: int, message: str = "") -> None:
        """An annotated tag (a lightweight one: `reset`)."""
        self.parts.append(b"tag %s\nfrom :%d\ntagger Release <release@acme.example> %d +0000\n"
                          % (name.encode(), mark, when))
        self._data(message.encode())

    def reset(self, ref: str, mark: int) -> None:
        self.parts.append(b"reset %s\nfrom :%d\n\n" % (ref.encode(), mark))

    def note(self, target: int, when: int, text: bytes, parent: int | None = None) -> int:
        """A commit on refs/notes/commits holding a note on commit `target`."""
        self.marks += 1
        self.parts.append(b"commit refs/notes/commits\nmark :%d\ncommitter Notes <notes@acme.example> %d +0000\n"
                          % (self.marks, when))
        self._data(b"notes")
        if parent is not None:
            self.parts.append(b"from :%d\n" % parent)
        self.parts.append(b"N inline :%d\n" % target)
        self._data(text)
        return self.marks

    def run(self, repo: Path, head: str = "main") -> dict[int, str]:
        """Import the stream into a new repository at `repo`, check out `head`, and return
        each mark's commit id."""
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", head)
        marks = repo / ".git" / "fast-import-marks"
        git(repo, "fast-import", "--quiet", "--done", f"--export-marks={marks}",
            stdin=b"".join(self.parts) + b"done\n")
        shas = {int(m[1:]): sha for m, sha in (line.split() for line in marks.read_text().splitlines())}
        marks.unlink()
        if (repo / ".git" / "refs" / "heads" / head).exists() or f"refs/heads/{head}" in git(repo, "show-ref"):
            git(repo, "reset", "-q", "--hard")
        return shas


DEMO_REPO = "repos/chatbot"
_DEMO_MARK = "keyresponse-sandbox-repo"
_APP = b'"""Acme chatbot."""\n\nimport os\n\nfrom openai import OpenAI\n\nclient = OpenAI(api_key=os.environ["OPENAI_API_KEY"])\n'


def demo_repo(folder: Path, leaked: str, started_at: int, attack_start: int) -> dict[str, str]:
    """The chatbot's clone in the demo folder: the leaked key committed in `.env` six hours
    before the abuse began, "removed" two commits later, and a branch that still holds it.
    Returns the commits of the story by name."""
    import shutil

    repo = folder / DEMO_REPO
    if repo.exists():
        if not (repo / ".git" / _DEMO_MARK).exists():
            raise RuntimeError(f"{repo} exists and was not written by the sandbox")
        shutil.rmtree(repo)
    fi, day, hour = FastImport(), 86400, 3600
    bob, alice = "Bob Okafor <bob@acme.example>", "Alice Nakamura <alice@acme.example>"
    t = started_at - 60 * day
    prev = fi.commit("refs/heads/main", t, "chatbot: first version",
                     {"README.md": b"# chatbot\n", ".gitignore": b"__pycache__/\n*.pyc\n", "app.py": _APP}, author=alice)
    leaked_at = attack_start - 6 * hour
    marks: dict[str, int] = {}
    i = 0
    while t + day < leaked_at:
        t += day
        i += 1
        prev = fi.commit("refs/heads/main", t, f"chatbot: tune prompt {i}",
                         {"prompts/system.txt": f"You are Acme's helpful assistant (v{i}).\n".encode()},
                         parent=prev, author=alice if i % 3 else bob)
        if i == 20:
            fi.tag("v1.4.0", prev, t, "release 1.4.0")
    marks["leak"] = prev = fi.commit(
        "refs/heads/main", leaked_at, "local config for the staging demo",
        {".env": b"APP_ENV=staging\nLOG_LEVEL=debug\nOPENAI_API_KEY=" + leaked.encode() + b"\n"}, parent=prev, author=bob)
    marks["branch"] = fi.commit("refs/heads/feature/streaming", leaked_at + hour, "streaming: first cut",
                                {"stream.py": b"# streaming replies\n"}, parent=prev, author=bob)
    prev = fi.commit("refs/heads/main", leaked_at + 2 * hour, "chatbot: retry on 429",
                     {"app.py": _APP + b"\nMAX_RETRIES = 3\n"}, parent=prev, author=alice)
    marks["removed"] = prev = fi.commit("refs/heads/main", leaked_at + 3 * hour, "remove .env (oops)",
                                        {".env": None}, parent=prev, author=bob)
    while t + day < started_at:
        t = max(t + day, leaked_at + 4 * hour)
        i += 1
        prev = fi.commit("refs/heads/main", t, f"chatbot: tune prompt {i}",
                         {"prompts/system.txt": f"You are Acme's helpful assistant (v{i}).\n".encode()},
                         parent=prev, author=alice)
    shas = fi.run(repo)
    (repo / ".git" / _DEMO_MARK).write_text("written by keyresponse sandbox\n")
    return {name: shas[m] for name, m in marks.items()}


DEMO_EXPOSURE = f"""
# where exposure.scan looks for copies of a leaked key (written by the demo)
exposure:
  repos:
    - {{path: {DEMO_REPO}, name: acme/chatbot, github: acme/chatbot, platform: github}}
"""
