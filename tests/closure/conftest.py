"""Proof of closure: the real CLI against the sandbox with its live usage turned on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import World, world  # noqa: F401 - the e2e world fixture, reused

RATE = 1200.0  # sandbox seconds per real second: a sandbox minute lasts 0.05 s


def go_live(w: World, **options: Any) -> World:
    """Turn on the sandbox's simulated consumers (the unlisted one and the attacker too,
    unless told not to), on a fast clock."""
    from keyresponse.sandbox import consumers

    w.sandbox._in_loop(lambda: consumers.enable(w.sandbox.state, rate=RATE, **options))
    return w


@pytest.fixture
def live(world: World) -> World:  # noqa: F811
    """A leak in progress: consumers on the leaked key, the unlisted one, the attacker."""
    return go_live(world)


@pytest.fixture
def rotation(world: World) -> World:  # noqa: F811
    """A routine rotation: consumers and the unlisted one on the key, no attacker."""
    return go_live(world, attacker=False)


def stop_unlisted(w: World) -> None:
    from keyresponse.sandbox import consumers

    w.sandbox._in_loop(lambda: consumers.remove(w.sandbox.state, "not in the inventory"))


def events(w: World, incident_id: str) -> list[dict[str, Any]]:
    import json

    path = w.dir / ".keyresponse" / "incidents" / incident_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
