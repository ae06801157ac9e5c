"""A target that names a place it must not (an env file outside the inventory's folder, a
device, a folder, a path with a NUL or a newline; a GitHub or GitLab locator that climbs
out of its URL with `..` or `/`) is refused when the inventory loads: `validate`, `plan`
and `run` all exit 2 naming file:line and the target, before anything changes — no
request that changes anything, every file byte-identical, no incident opened."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World

WORKER = "- {kind: envfile, path: apps/worker/.env, variables: [OPENAI_API_KEY]}"


def fingerprint(folder: Path) -> dict[str, Any]:
    """Every entry under `folder` as it is on disk: a file's bytes and link count, a symlink's
    target, a folder's mode (so a file created or replaced anywhere shows)."""
    out: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        name = str(p.relative_to(folder))
        if p.is_symlink():
            out[name] = ("symlink", os.readlink(p))
        elif p.is_file():
            out[name] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_nlink, st.st_mode)
        else:
            out[name] = ("other", st.st_mode)
    return out


def with_target(world: World, target: str) -> int:
    """Put `target` (one YAML flow mapping) where the worker's env file is: target #2 of
    chatbot-prod. Returns its line in the inventory."""
    text = world.config.read_text()
    assert WORKER in text
    world.config.write_text(text.replace(WORKER, "- " + target))
    return text[: text.index(WORKER)].count("\n") + 1


def refused_everywhere(world: World, target: str, *words: str) -> str:
    """validate, plan and run each exit 2 at the target's line, and nothing changed."""
    line = with_target(world, target)
    outside = world.dir.parent / "outside.env"
    outside.write_text("OPENAI_API_KEY=kept\n")
    before_files, before_outside = fingerprint(world.dir), outside.read_bytes()
    before = world.sandbox.state.mutation_count
    for args in (("validate",), ("plan", "leaked-key", "--key", "chatbot-prod"),
                 ("run", "leaked-key", "--key", "chatbot-prod", "--yes")):
        out = world.kr(*args)
        err = out.stderr
        assert out.returncode == 2, f"{args}: rc={out.returncode}\n{out.stdout[-2000:]}\n{err[-2000:]}"
        assert "Traceback" not in err and "unexpected" not in err, err[-2000:]
        assert f"keyresponse.yaml:{line}:" in err, err[-2000:]
        assert "target #2" in err or "targets.1" in err, err[-2000:]  # ours, or pydantic's path
        for word in words:
            assert word in err, f"{word!r} not in:\n{err[-2000:]}"
    assert world.sandbox.state.mutations[before:] == []
    assert fingerprint(world.dir) == before_files
    assert outside.read_bytes() == before_outside
    assert not (world.dir / ".keyresponse" / "incidents").exists() or not any(
        (world.dir / ".keyresponse" / "incidents").iterdir()), "a refused inventory opened an incident"
    return err


ENVFILE = "{{kind: envfile, path: {}, variables: [OPENAI_API_KEY]}}"


@pytest.mark.parametrize(("path", "words"), [
    ("../outside.env", ["'..'", "allow_outside"]),
    ("/etc/passwd", ["outside", "allow_outside"]),
    ("/dev/null", ["outside"]),
    ('"apps/x\\0.env"', ["NUL"]),
    ('"apps/worker/.env\\n"', ["newline"]),
    ('"apps/worker/\\t.env"', ["control character"]),
])
def test_an_env_file_path_that_leaves_the_folder_or_cannot_be_a_name_is_refused(
        world: World, path: str, words: list[str]) -> None:
    refused_everywhere(world, ENVFILE.format(path), *words)


def test_a_device_is_refused_even_when_outside_paths_are_allowed(world: World) -> None:
    refused_everywhere(world, "{kind: envfile, path: /dev/null, variables: [OPENAI_API_KEY], allow_outside: true}",
                       "not a regular file")


def test_a_folder_is_refused(world: World) -> None:
    refused_everywhere(world, ENVFILE.format("apps/worker"), "a folder")


def test_a_symlink_to_etc_is_refused(world: World) -> None:
    (world.dir / "etc").symlink_to("/etc")
    refused_everywhere(world, ENVFILE.format("etc/passwd"), "through a symlink", "outside")


@pytest.mark.parametrize("name", ["self.env", "a.env"])
def test_a_symlink_loop_is_refused(world: World, name: str) -> None:
    (world.dir / "apps" / "self.env").symlink_to("self.env")
    (world.dir / "apps" / "a.env").symlink_to("b.env")
    (world.dir / "apps" / "b.env").symlink_to("a.env")
    refused_everywhere(world, ENVFILE.format(f"apps/{name}"), "symlink loop")


@pytest.mark.parametrize(("target", "words"), [
    ('{kind: github, org: "acme/../../repos/acme/worker", secret: OPENAI_API_KEY}', ["org"]),
    ("{kind: github, org: '..', secret: OPENAI_API_KEY}", ["org"]),
    ("{kind: github, repo: acme/.., secret: OPENAI_API_KEY}", ["repo"]),
    ("{kind: github, repo: acme/../x, secret: OPENAI_API_KEY}", ["repo"]),
    ("{kind: github, repo: acme/chatbot, environment: prod/../../x, secret: OPENAI_API_KEY}", ["environment"]),
    ('{kind: github, repo: acme/chatbot, environment: "prod\\nx", secret: OPENAI_API_KEY}', ["environment"]),
    ("{kind: gitlab, project: acme/../../groups/acme, variable: OPENAI_API_KEY}", ["project"]),
    ("{kind: gitlab, project: '..', variable: OPENAI_API_KEY}", ["project"]),
    ("{kind: gitlab, group: acme//x, variable: OPENAI_API_KEY}", ["group"]),
    ('{kind: gitlab, project: "acme/chatbot?x=1", variable: OPENAI_API_KEY}', ["project"]),
])
def test_a_platform_locator_that_climbs_out_of_its_url_is_refused(
        world: World, target: str, words: list[str]) -> None:
    refused_everywhere(world, target, *words)
