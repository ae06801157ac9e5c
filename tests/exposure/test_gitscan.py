"""The history scan on a real repository built in the test (see story.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from keyresponse.exposure import gitscan
from keyresponse.exposure.needle import from_redacted, from_secret
from keyresponse.sandbox.seed_git import git
from keyresponse.secret import Secret
from tests.conftest import fake_key
from tests.exposure import story


@pytest.fixture(scope="module")
def told(tmp_path_factory: pytest.TempPathFactory) -> story.Story:
    s = story.build(tmp_path_factory.mktemp("repo") / "app", fake_key("hist"))
    # a stash (loose objects) holding the key in a tracked file
    readme = s.repo / "README.md"
    readme.write_text(readme.read_text() + f"token {s.value}\n")
    git(s.repo, "stash", "-q", when=story.T0 + 10**6)
    return s


def _by_path(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for f in findings:
        assert f["path"] not in out, f"two findings for {f['path']}"
        out[f["path"]] = f
    return out


def _check(s: story.Story, findings: list[dict[str, Any]]) -> None:
    c = s.commits
    got = _by_path(findings)
    stash = git(s.repo, "rev-parse", "refs/stash").strip()
    noted = c["noted"]
    assert set(got) == {".env", "config/settings.py", "app/settings.py", "notes/try.md", "assets/model.bin",
                        "README.md", noted}, sorted(got)

    env = got[".env"]
    assert (env["commit"], env["line"], env["removed_in"]) == (c["env_added"], 2, c["env_removed"])
    assert env["author"] == "Bob Okafor <bob@acme.example>" and env["committer"].startswith("Alice Nakamura")
    assert env["authored_at"] == env["committed_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime(story.T0 + 600 * 101))
    assert env["in_head"] is False and env["tracked"] is False and env["in_worktree"] is False
    assert env["refs_at_tip"] == ["refs/heads/feature/old", "refs/tags/v2.0"]
    assert {"refs/heads/main", "refs/heads/feature/old", "refs/heads/hotfix", "refs/tags/v2.0",
            "refs/heads/experiment", "refs/tags/exp-v1", "stash@{0}"} <= set(env["refs"])
    assert "refs/tags/v1.0" not in env["refs"]

    hard = got["config/settings.py"]
    assert (hard["commit"], hard["line"], hard["removed_in"]) == (c["hardcoded"], 5, c["renamed"])
    moved = got["app/settings.py"]
    assert (moved["commit"], moved["moved_from"], moved["removed_in"]) == (c["renamed"], ["config/settings.py"], None)
    assert moved["in_head"] and moved["tracked"] and moved["in_worktree"] and moved["line"] == 5
    assert "refs/heads/main" in moved["refs_at_tip"]

    only = got["notes/try.md"]
    assert only["commit"] == c["experiment"] and only["line"] == 3
    assert only["refs"] == ["refs/heads/experiment", "refs/tags/exp-v1"] == only["refs_at_tip"]
    assert only["author"].startswith("Carol Diaz") and not only["in_head"]

    binary = got["assets/model.bin"]
    assert binary["commit"] == c["binary"] and binary["binary"] and binary["line"] is None

    stashed = got["README.md"]
    assert stashed["refs"] == ["stash@{0}"] and stashed["commit"] == stash and not stashed["in_head"]
    assert stashed["tracked"] and stashed["in_worktree"] is False  # the stash took it out of the file

    note = got[noted]
    assert note["refs"] == ["refs/notes/commits"] and note["line"] == 1


def test_every_copy_with_its_commit_path_and_refs(told: story.Story) -> None:
    scan = gitscan.scan_repo(told.repo, [from_secret(Secret(told.value))])
    assert scan.stats.commits > story.NOISE
    _check(told, scan.findings)
    text = json.dumps(scan.findings)
    assert told.value not in text and all(f["masked"].endswith(told.value[-4:]) for f in scan.findings)


def test_shape_of_the_redacted_value_finds_the_same_copies(told: story.Story) -> None:
    needle = from_redacted(told.value[:8] + "..." + told.value[-4:])
    assert needle is not None
    scan = gitscan.scan_repo(told.repo, [needle])
    _check(told, scan.findings)
    assert {f["kind"] for f in scan.findings} == {"shape"}
    assert {f["fingerprint"] for f in scan.findings} == {from_secret(Secret(told.value)).matches(told.value.encode())[0].fingerprint}
    other = from_redacted(told.value[:8] + "..." + "zzzz")
    assert other is not None and gitscan.scan_repo(told.repo, [other]).findings == []


def test_the_value_is_never_in_a_git_argv(told: story.Story, monkeypatch: pytest.MonkeyPatch) -> None:
    argvs: list[list[str]] = []
    real_run, real_popen = subprocess.run, subprocess.Popen

    def run(args: Any, *a: Any, **k: Any) -> Any:
        argvs.append(list(args))
        return real_run(args, *a, **k)

    class Popen(real_popen):  # type: ignore[misc,valid-type]
        def __init__(self, args: Any, *a: Any, **k: Any) -> None:
            argvs.append(list(args))
            super().__init__(args, *a, **k)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    assert gitscan.scan_repo(told.repo, [from_secret(Secret(told.value))]).findings
    assert argvs and not any(told.value in " ".join(a) for a in argvs)


def test_packed_and_unreachable(told: story.Story, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--mirror", str(told.repo), str(clone / ".git")], check=True)
    subprocess.run(["git", "-C", str(clone), "config", "--bool", "core.bare", "false"], check=True)
    subprocess.run(["git", "-C", str(clone), "reset", "-q", "--hard"], check=True)
    # a commit undone: unreachable once the reflog is gone, kept by gc --prune=never
    (clone / "leak.txt").write_text(f"k={told.value}\n")
    git(clone, "add", "leak.txt")
    git(clone, "commit", "-qm", "oops", when=story.T0 + 2 * 10**6)
    git(clone, "reset", "-q", "--hard", "HEAD^")
    git(clone, "hash-object", "-w", "--stdin", stdin=f"pasted {told.value}\n".encode())  # never committed
    git(clone, "reflog", "expire", "--expire=now", "--all")
    git(clone, "gc", "-q", "--prune=never")
    git(clone, "repack", "-q", "-a", "-d", "--keep-unreachable")
    git(clone, "prune-packed")
    assert not list((clone / ".git" / "objects").glob("??/*")), "everything is packed"
    needle = from_secret(Secret(told.value))
    plain = gitscan.scan_repo(clone, [needle])
    assert "leak.txt" not in {f["path"] for f in plain.findings}
    assert {f["path"] for f in plain.findings} >= {".env", "app/settings.py", "notes/try.md"}
    deep = gitscan.scan_repo(clone, [needle], unreachable=True)
    leak = next(f for f in deep.findings if f["path"] == "leak.txt")
    assert leak["refs"] == [] and leak["line"] == 1 and not leak["in_head"] and not leak["in_worktree"]
    loose = [f for f in deep.findings if f["path"] is None]
    assert len(loose) == 1 and loose[0]["source"] == "git objects" and not loose[0]["reachable"]
    assert json.dumps(deep.findings).count(told.value) == 0


def test_the_command_finds_the_copies_and_never_prints_the_value(told: story.Story) -> None:
    import sys

    out = subprocess.run([sys.executable, "-m", "keyresponse", "exposure", "scan", "--repo", str(told.repo),
                          "--leaked-stdin", "--json"], input=told.value + "\n", capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1, out.stderr
    assert told.value not in out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert {f["path"]: f["commit"] for f in result["findings"]}[".env"] == told.commits["env_added"]
    assert any(p["title"] == f"Ignore .env in {told.repo}" and not p["done"] for p in result["prevention"])


def test_a_copy_at_a_path_that_no_tip_holds(tmp_path: Path) -> None:
    """The same bytes at a path deleted before every tip and at a path a tip still holds: the
    tips name only the second, and the history must still give the first. Also a rename,
    and one content at two paths."""
    from keyresponse.sandbox.seed_git import FastImport

    value = fake_key("gone")
    leak = b"token=" + value.encode() + b"\n"
    conf = b"# conf\n\nKEY = '" + value.encode() + b"'\n"
    fi = FastImport()
    t = story.T0
    prev = fi.commit("refs/heads/main", t, "initial", {"README.md": b"# app\n"})
    marks: dict[str, int] = {}
    for i in range(60):
        t += 600
        files: dict[str, bytes | None] = {f"src/m{i % 7}.py": f"x = {i}\n".encode()}
        name = {5: "old_added", 20: "old_removed", 30: "kept", 40: "two", 50: "renamed"}.get(i)
        if i == 5:
            files["old/leak.txt"] = leak
        elif i == 20:
            files["old/leak.txt"] = None
        elif i == 30:
            files["keep/leak.txt"] = leak  # byte-identical to old/leak.txt: the same blob
        elif i == 40:
            files |= {"cfg/a.py": conf, "cfg/b.py": conf}
        if i == 50:
            prev = fi.commit("refs/heads/main", t, "move a", renames={"cfg/a.py": "app/a.py"}, parent=prev)
        else:
            prev = fi.commit("refs/heads/main", t, f"change {i}", files, parent=prev)
        if name:
            marks[name] = prev
        if i == 35:
            fi.commit("refs/heads/side", t + 1, "side", {"side.txt": b"s\n"}, parent=prev)
            fi.tag("v1", prev, t + 2, "one")
    shas = fi.run(tmp_path / "repo")
    c = {n: shas[m] for n, m in marks.items()}
    scan = gitscan.scan_repo(tmp_path / "repo", [from_secret(Secret(value))])
    got = {f["path"]: (f["commit"], f["removed_in"], f["moved_from"], f["line"]) for f in scan.findings}
    assert got == {
        "old/leak.txt": (c["old_added"], c["old_removed"], [], 1),
        "keep/leak.txt": (c["kept"], None, [], 1),
        "cfg/a.py": (c["two"], c["renamed"], [], 3),
        "cfg/b.py": (c["two"], None, [], 3),
        "app/a.py": (c["renamed"], None, ["cfg/a.py"], 3),
    }, got
    assert value not in json.dumps(scan.findings)


def test_the_history_cut_in_parts_gives_the_same_findings(told: story.Story, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long history's log runs in parts side by side: every commit in exactly one of them."""
    whole = gitscan.scan_repo(told.repo, [from_secret(Secret(told.value))]).findings
    monkeypatch.setattr(gitscan, "SPLIT_AT", 60)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert len(gitscan._cuts(gitscan._graph(told.repo, b""))) == 3
    cut = gitscan.scan_repo(told.repo, [from_secret(Secret(told.value))]).findings
    _check(told, cut)
    assert cut == whole
