"""Files as an ordinary user would have them. CI runs as root, for whom permission bits
barely matter, so the CLI runs here as `nobody` (setpriv --reuid 65534) in a folder that
user owns: a read-only env file, an env file in a read-only folder, a read-only
inventory; and, under `prlimit --fsize`, an env file and an inventory too large for the
limit (a write there fails as on a full disk). Each write fails cleanly, the run goes on
with the others (the leaked key still dies), and every original file is intact, byte for
byte and mode for mode, with no temp or lock file beside it."""

from __future__ import annotations

import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from keyresponse.atomicfile import LOCK_MARK, TMP_MARK
from tests.e2e.conftest import World, leaked
from tests.reliability.harness import GITHUB_TARGETS, KEY, TARGET_FILES, make_world, run
from tests.reliability.leaks import LeakHunt

NOBODY = 65534
AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
FSIZE = 200_000  # bytes: above a whole run's journal, below the padded files


def _can_run_as_nobody() -> str | None:
    if os.geteuid() != 0:
        return "needs root to switch to an unprivileged user (and as that user, permissions are already real)"
    for tool in ("setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import keyresponse"], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    if probe.returncode != 0:
        return f"the interpreter cannot run as uid {NOBODY}: {probe.stderr.decode(errors='replace')[-300:]}"
    return None


@pytest.fixture
def nobody_root(tmp_path: Path) -> Iterator[Path]:
    """A folder `nobody` owns, outside pytest's (root-only) temp tree; what it held is
    copied into tmp_path afterwards, where the leak hunt reads it."""
    why = _can_run_as_nobody()
    if why:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="keyresponse-nobody-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.copytree(root, tmp_path / "as-nobody", symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def _chown_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, NOBODY, NOBODY)


def _snapshot(p: Path) -> tuple[bytes, int]:
    return p.read_bytes(), stat.S_IMODE(p.stat().st_mode)


def _world(sb: Any, root: Path) -> World:
    world = make_world(sb, root)
    world.env["HOME"] = str(root)
    return world


def _readonly(world: World) -> dict[Path, tuple[bytes, int]]:
    """A read-only env file, an env file in a read-only folder, a read-only inventory."""
    (world.dir / "apps/chatbot/.env").chmod(0o444)
    world.config.chmod(0o444)
    return {p: _snapshot(p) for p in (world.dir / "apps/chatbot/.env", world.dir / "apps/worker/.env", world.config)}


def _too_large(world: World) -> dict[Path, tuple[bytes, int]]:
    """An env file and an inventory that no longer fit under the file-size limit."""
    pad = "# " + "x" * 1000 + "\n"
    for p in (world.dir / "apps/chatbot/.env", world.config):
        p.write_text(p.read_text() + pad * (FSIZE // len(pad) + 20))
    return {p: _snapshot(p) for p in (world.dir / "apps/chatbot/.env", world.config)}


def test_unwritable_and_full_files_stay_intact_as_an_ordinary_user(
        sandbox_pool: queue.Queue[Any], nobody_root: Path, leak_hunt: LeakHunt, tmp_path: Path) -> None:
    leak_hunt.folder(tmp_path, exclude=TARGET_FILES)

    def case(name: str) -> str | None:
        sb = sandbox_pool.get()
        try:
            world = _world(sb, nobody_root / name)
            _chown_tree(nobody_root / name)
            before = _readonly(world) if name == "read-only" else _too_large(world)
            if name == "read-only":
                (world.dir / "apps/worker").chmod(0o555)  # after the chown: its owner cannot write it either
            prefix = AS_NOBODY if name == "read-only" else ("prlimit", f"--fsize={FSIZE}", *AS_NOBODY)
            ran = run(world, nobody_root / name / "run.log", "run", "leaked-key", "--key", KEY, "--yes", prefix=prefix)
            out = ran.output
            (world.dir / "apps/worker").chmod(0o755)
            assert ran.returncode == 1, f"{name}: exit {ran.returncode}: {out[-3000:]}"
            assert "Traceback" not in out and "unexpected error" not in out, out[-3000:]
            assert not leaked(world)["live"], f"{name}: the leaked key survived a failed write"
            for p, (data, mode) in before.items():
                now = _snapshot(p)
                assert now[0] == data, f"{name}: {p.relative_to(world.dir)} changed"
                assert now[1] == mode, f"{name}: {p.relative_to(world.dir)} mode {oct(now[1])}, was {oct(mode)}"
                beside = [q.name for q in p.parent.iterdir() if TMP_MARK in q.name or LOCK_MARK in q.name]
                assert not beside, f"{name}: left beside {p.name}: {beside}"
            state = sb.state
            live = [k for k in state.openai_keys() if k["live"] and k["id"] not in world.seeded_keys]
            assert len(live) == 1, f"{name}: {len(live)} live replacements"
            value = state.openai_key_value(live[0]["id"])
            for scope, secret in GITHUB_TARGETS:  # the other targets were written all the same
                assert state.github_secret_value(scope, secret) == value, f"{name}: {scope}"
            if name == "too-large":
                assert "too large" in out or "no room" in out or "No space" in out, out[-3000:]
            return None
        except AssertionError as exc:
            return str(exc)
        finally:
            leak_hunt.snapshot(sb, f"nobody-{name}")
            sandbox_pool.put(sb)

    with ThreadPoolExecutor(2) as ex:
        errors = [e for e in ex.map(case, ["read-only", "too-large"]) if e]
    assert not errors, "\n\n".join(errors)


def test_a_playbook_folder_this_user_cannot_read_is_passed_over(nobody_root: Path) -> None:
    """Found running as `nobody`: a folder on the playbook search path the user may not
    enter (`~/.config/...` under someone else's HOME, as with `sudo -u`) made the lookup
    raise PermissionError: exit 3 and a traceback, instead of using the next folder."""
    folder = nobody_root / "work"
    folder.mkdir()
    _chown_tree(nobody_root)
    locked = nobody_root / "locked"
    locked.mkdir(mode=0o700)  # root's: nobody cannot enter it
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update({"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "NO_COLOR": "1", "HOME": str(locked),
                "TMPDIR": str(folder)})
    out = subprocess.run([*AS_NOBODY, sys.executable, "-m", "keyresponse", "plan", "hello"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert not list(folder.glob("keyresponse-crash-*"))
