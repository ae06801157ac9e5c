"""pytest plugin: one sandbox per test session, reset before each test.

Register it once, in the root conftest:  pytest_plugins = ["tests.helpers.sandbox_fixture"]

    def test_something(sandbox):          # a freshly seeded keyresponse.sandbox.Sandbox
        sandbox.urls["openai"], sandbox.env["OPENAI_ADMIN_KEY"], sandbox.state.truth
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from keyresponse.sandbox.server import Sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    """The session's sandbox on a free loopback port. Prefer `sandbox`, which resets it."""
    from keyresponse.sandbox import start

    server = start(port=0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox, back to its freshly seeded state with no faults."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.clear_faults()


@contextmanager
def sandbox_pool(size: int) -> Iterator[queue.Queue[Any]]:
    """`size` sandboxes of their own, for cases run side by side: a case takes one from the
    queue, resets it, and puts it back. All are stopped at the end."""
    from keyresponse.sandbox import start

    started = [start(port=0) for _ in range(size)]
    pool: queue.Queue[Any] = queue.Queue()
    for sb in started:
        pool.put(sb)
    try:
        yield pool
    finally:
        for sb in started:
            sb.stop()
