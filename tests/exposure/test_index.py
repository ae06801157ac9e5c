"""The history index kept between runs: a warm scan finds exactly what a cold one finds, after
new commits, a force-push, a corrupt or truncated index, in unreachable mode; the index
holds no value, and a drill warms it."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from keyresponse.exposure import gitscan, index
from keyresponse.exposure.needle import Needle, from_redacted, from_secret
from keyresponse.sandbox.seed_git import git
from keyresponse.secret import Secret
from tests.conftest import fake_key
from tests.exposure import story


@pytest.fixture(scope="module")
def told(tmp_path_factory: pytest.TempPathFactory) -> story.Story:
    s = story.build(tmp_path_factory.mktemp("repo") / "app", fake_key("warm"))
    readme = s.repo / "README.md"
    readme.write_text(readme.read_text() + f"token {s.value}\n")
    git(s.repo, "stash", "-q", when=story.T0 + 10**6)
    return s


def _needles(s: story.Story) -> list[list[Needle]]:
    shape = from_redacted(s.value[:8] + "..." + s.value[-4:])
    assert shape is not None
    return [[from_secret(Secret(s.value))], [shape]]


def _same(repo: Path, needles: list[Needle], cache: Path, unreachable: bool = False) -> list[dict[str, Any]]:
    cold = gitscan.scan_repo(repo, needles, unreachable=unreachable).findings
    warm = gitscan.scan_repo(repo, needles, unreachable=unreachable, cache=cache).findings
    assert warm == cold
    return warm


def _index_file(cache: Path) -> Path:
    (found,) = list(cache.glob(f"*/{index.NAME}"))
    return found


def test_warm_equals_cold_through_new_commits_force_push_and_corruption(told: story.Story, tmp_path: Path) -> None:
    repo = tmp_path / "app"
    shutil.copytree(told.repo, repo, symlinks=True)
    cache = tmp_path / "state" / "cache" / "exposure"
    for needles in _needles(told):
        first = _same(repo, needles, cache)  # builds the index
        assert len(first) == 7
        assert index.load(_index_file(cache).parent).fresh is False
        _same(repo, needles, cache)  # warm: every commit indexed already

    # commits after the index was made: a new copy on a new branch, and noise on main
    git(repo, "checkout", "-q", "-b", "later")
    (repo / "late.py").write_text(f"K = '{told.value}'\n")
    git(repo, "add", "late.py")
    git(repo, "commit", "-qm", "late copy", when=story.T0 + 3 * 10**6)
    git(repo, "checkout", "-q", "main")
    (repo / "src" / "mod1.py").write_text("x = 'after'\n")
    git(repo, "commit", "-qam", "after", when=story.T0 + 3 * 10**6 + 5)
    before = len(index.load(_index_file(cache).parent).commits)
    for needles in _needles(told):
        found = _same(repo, needles, cache)
        assert {f["path"] for f in found} >= {"late.py", "notes/try.md"}
    assert len(index.load(_index_file(cache).parent).commits) == before + 2

    # a force-push: the experiment branch and its tag rewritten to before the copy there
    git(repo, "update-ref", "refs/heads/experiment", told.commits["env_added"])
    git(repo, "tag", "-d", "exp-v1")
    for needles in _needles(told):
        found = _same(repo, needles, cache)
        assert "notes/try.md" not in {f["path"] for f in found}

    # the unreachable mode still sees the dropped commit's copy, warm as cold
    deep = _same(repo, [from_secret(Secret(told.value))], cache, unreachable=True)
    assert "notes/try.md" in {f["path"] for f in deep}

    # a truncated, an altered and a foreign index are thrown away and rebuilt, never trusted
    path = _index_file(cache)
    whole = path.read_bytes()
    # a plausible lie: an index that says every commit is known but holds no record of any
    lie = index.Index(path, set(index.load(path.parent).commits), b"", b"", fresh=False).encode()
    for broken in (whole[: len(whole) // 2], whole.replace(b"notes/", b"nOtes/", 1), lie[:-1] + b"x",
                   b"garbage", b""):
        path.write_bytes(broken)
        for needles in _needles(told):
            _same(repo, needles, cache)
        again = index.load(path.parent)
        assert again.fresh is False and again.rebuilt is None and again.commits


def test_the_index_holds_no_value_and_is_private(told: story.Story, tmp_path: Path) -> None:
    cache = tmp_path / ".keyresponse" / "cache" / "exposure"
    cache.parent.parent.mkdir(mode=0o700)
    assert gitscan.index_repo(told.repo, cache) > story.NOISE
    assert gitscan.index_repo(told.repo, cache) == 0  # nothing new
    gitscan.scan_repo(told.repo, [from_secret(Secret(told.value))], cache=cache)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [index.NAME]
    shape = re.compile(re.escape(told.value[:8]).encode() + rb"[A-Za-z0-9_\-]{8,}")
    for p in files:
        data = p.read_bytes()
        assert told.value.encode() not in data and told.value[8:-4].encode() not in data
        assert not shape.search(data) and b"add local config" not in data  # no value, no commit message
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    for folder in [cache, *[p for p in cache.rglob("*") if p.is_dir()]]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not [p for p in cache.rglob("*keyresponse-tmp*")]


def test_a_drill_warms_the_index_and_writes_only_in_the_state_dir(told: story.Story, tmp_path: Path) -> None:
    """The drill's hook (commands/drill.py) indexes the inventory's exposure repositories."""
    from keyresponse.actions.exposure import cache_dir
    from keyresponse.commands.drill import _warm_exposure
    from keyresponse.inventory import load_inventory

    repo = tmp_path / "app"
    shutil.copytree(told.repo, repo, symlinks=True)
    cfg = tmp_path / "proj" / "keyresponse.yaml"
    (cfg.parent / ".keyresponse").mkdir(parents=True, mode=0o700)
    cfg.write_text("providers:\n  openai: {admin_key_env: OPENAI_ADMIN_KEY}\n"
                   f"exposure:\n  repos: [{repo}, {tmp_path / 'missing'}]\n"
                   "keys:\n  chatbot: {project: proj_x, key_id: key_x}\n")

    def listing() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in tmp_path.rglob("*")
                if ".keyresponse" not in p.relative_to(tmp_path).parts}

    before = listing()
    inventory = load_inventory(cfg)
    _warm_exposure(inventory, "chatbot")
    assert listing() == before
    cache = cache_dir(cfg.parent)
    assert index.load(_index_file(cache).parent).commits
    assert gitscan.index_repo(repo, cache) == 0
