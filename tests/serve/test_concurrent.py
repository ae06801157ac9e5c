"""Many deliveries at once: one incident and one mint per key, no alert lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import World
from tests.serve.conftest import Hooks, github_alert, gitleaks_alert

EXTRA = ("chatbot-staging", "search-indexer", "search-rerank")


@pytest.fixture
def world(world: World) -> World:
    """Five inventory keys, each with its live value in an env var and one env file."""
    doc = yaml.safe_load(world.config.read_text())
    by_name = {k["name"]: k for k in world.sandbox.state.openai_keys()}
    for name in ("analytics-dev", *EXTRA):
        k = by_name[name]
        env = name.upper().replace("-", "_") + "_OPENAI_KEY"
        value = world.sandbox.state.openai_key_value(k["id"])
        world.env[env] = value
        rel = f"apps/{name}/.env"
        (world.dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (world.dir / rel).write_text(f"OPENAI_API_KEY={value}\n")
        doc["keys"][name] = {"provider": "openai", "project": k["project_id"], "key_id": k["id"], "secret_env": env,
                             "targets": [{"kind": "envfile", "path": rel, "variables": ["OPENAI_API_KEY"]}]}
    world.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return world


def _post_all(hooks: Hooks, calls: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=25) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_fifty_copies_of_one_alert_open_one_incident(hooks: Hooks) -> None:
    seeded = hooks.world.seeded_keys
    payload = github_alert()
    answers = _post_all(hooks, [lambda: hooks.github(payload) for _ in range(50)])
    assert sorted({r.status_code for r in answers}) == [202], [r.text for r in answers if r.status_code != 202]
    statuses = [r.json()["status"] for r in answers]
    hooks.settle()
    incidents = hooks.serve_incidents()
    assert [(i["key"], i["status"]) for i in incidents] == [("chatbot-prod", "succeeded")]
    # each delivery either opened the incident or joined it (a copy arriving after it ended opens another)
    assert statuses.count("accepted") == 1 and statuses.count("joined") == 49
    minted = [k for k in hooks.world.sandbox.state.openai_keys() if k["id"] not in seeded]
    assert len(minted) == 1


def test_twenty_alerts_for_five_keys(hooks: Hooks) -> None:
    world = hooks.world
    seeded = world.seeded_keys
    names = ["chatbot-prod", "analytics-dev", *EXTRA]
    calls: list[Any] = []
    for i in range(20):
        name = names[i % 5]
        if name == "chatbot-prod" and i % 2:
            calls.append(lambda n=i: hooks.github(github_alert(number=n)))
        else:
            env = "CHATBOT_PROD_OPENAI_KEY" if name == "chatbot-prod" else name.upper().replace("-", "_") + "_OPENAI_KEY"
            calls.append(lambda v=world.env[env], n=i: hooks.generic(gitleaks_alert(v), delivery=f"ci-run-{n}"))
    answers = _post_all(hooks, calls)
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    hooks.settle()
    incidents = hooks.serve_incidents()
    assert sorted((i["key"], i["status"]) for i in incidents) == sorted((n, "succeeded") for n in names)
    minted = [k for k in world.sandbox.state.openai_keys() if k["id"] not in seeded]
    assert len(minted) == 5
    by_id = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert not any(by_id[i]["live"] for i in seeded if by_id[i]["name"] in names)
    # no alert lost: every delivery is journaled as accepted or joined
    events = [r["event"] for r in hooks.deliveries() if r["event"] in ("accepted", "joined")]
    assert len(events) == 20
