"""Env files that an atomic replace would get wrong: a hard-linked file (the rename would
leave the leaked key under its other names) is refused when the inventory loads, so
`validate`, `plan` and `run` exit 2 before anything changes; a file that starts with a
UTF-8 byte-order mark is edited and keeps it. (A symlink that points at itself or loops:
test_target_locators.py::test_a_symlink_loop_is_refused.)"""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import World, assert_restored
from tests.e2e.test_target_locators import WORKER, refused_everywhere

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("other", ["apps/worker/.env.orig", "../worker.env"])
def test_a_hard_linked_env_file_is_refused_before_anything_changes(world: World, other: str) -> None:
    os.link(world.dir / "apps/worker/.env", world.dir / other)
    err = refused_everywhere(world, WORKER.removeprefix("- "), "hard link", "2 names")
    assert "refuses" in err
    assert (world.dir / other).read_bytes() == (world.dir / "apps/worker/.env").read_bytes()


def test_an_env_file_with_a_byte_order_mark_is_edited_and_keeps_it(world: World) -> None:
    worker = world.dir / "apps/worker/.env"
    before = worker.read_bytes()
    worker.write_bytes(BOM + before)
    plan = world.kr("plan", "leaked-key", "--key", "chatbot-prod")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-2000:]
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    value = assert_restored(world)
    after = worker.read_bytes()
    assert after.startswith(BOM) and not after[3:].startswith(BOM)
    old = before.decode().rsplit("OPENAI_API_KEY=", 1)[0]
    assert after == BOM + f"{old}OPENAI_API_KEY={value}\n".encode()
