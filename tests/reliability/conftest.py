"""Shared by every reliability test: the knobs for a long soak, the leak hunt (run after
every test, zero hits the only pass) and a pool of sandboxes for cases run side by side.

Knobs (environment variables, so `pytest -q` stays the one command):
    KEYRESPONSE_KILLS=N        random SIGKILLs in the kill harness (default 40)
    KEYRESPONSE_KILL_SEED=S    the harness's seed (default: a fresh one, printed on failure)
    KEYRESPONSE_KILL_WORKERS=W cases at once (default 4)
    KEYRESPONSE_HYPOTHESIS=N   examples for the state machine and the fuzzers (default: CI-sized)
"""

from __future__ import annotations

import os
import queue
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers.sandbox_fixture import sandbox_pool as pool_of
from tests.reliability.harness import PLAYBOOKS, TARGET_FILES
from tests.reliability.leaks import LeakHunt

KILLS = int(os.environ.get("KEYRESPONSE_KILLS", "40"))
KILL_SEED = int(os.environ.get("KEYRESPONSE_KILL_SEED") or random.SystemRandom().randrange(1, 10**9))
WORKERS = int(os.environ.get("KEYRESPONSE_KILL_WORKERS", "4"))
EXAMPLES = int(os.environ.get("KEYRESPONSE_HYPOTHESIS", "0"))

settings.register_profile("reliability-ci", deadline=None, derandomize=False, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def leak_hunt(tmp_path: Path) -> Iterator[LeakHunt]:
    """Every reliability test registers what it produced (folders, outputs, sandboxes,
    secret values); after it, all of it is searched. A hit fails the test."""
    hunt = LeakHunt(tmp_path)
    yield hunt
    hits = hunt.check()
    assert not hits, "secret values found in artifacts:\n  " + "\n  ".join(map(str, hits[:20]))


@pytest.fixture(scope="session")
def sandbox_pool() -> Iterator[queue.Queue[Any]]:
    """WORKERS sandboxes of their own (not the session's: cases run at once); a case
    takes one, resets it, and puts it back."""
    with pool_of(WORKERS) as pool:
        yield pool


@pytest.fixture(scope="session")
def durations(sandbox_pool: queue.Queue[Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """How long a whole `leaked-key` and `rotate` take here under LATENCY_MS, each measured
    once (and checked like any case): random signal moments are drawn over these."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.reliability.harness import measure

    root = tmp_path_factory.mktemp("measure")
    hunt = LeakHunt(root)
    with ThreadPoolExecutor(2) as ex:
        out = dict(zip(PLAYBOOKS, ex.map(lambda p: measure(sandbox_pool, root, p, hunt), PLAYBOOKS), strict=True))
    hunt.folder(root, exclude=TARGET_FILES)
    hits = hunt.check()
    assert not hits, "secret values found in artifacts:\n  " + "\n  ".join(map(str, hits[:20]))
    return out
