"""Paths a real incident takes: the key already gone, sibling keys on one service
account, a replacement configuration that cannot work, and the replacement's
restrictions and lifetime. Each through the CLI, against the sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from keyresponse.sandbox import seed
from tests.e2e.conftest import World, assert_restored, leaked, replacements


def _option(world: World, option: str) -> None:
    world.sandbox._in_loop(lambda: seed.apply_option(world.sandbox.state, option))


def _key(world: World, name: str) -> dict[str, Any]:
    return next(k for k in world.sandbox.state.openai_keys() if k["name"] == name)


def _inventory(world: World, **entries: dict[str, Any]) -> None:
    """Add (or replace) entries under `keys:` in the sandbox's inventory."""
    doc = yaml.safe_load(world.config.read_text())
    doc["keys"].update(entries)
    world.config.write_text(yaml.safe_dump(doc, sort_keys=False))


def _entry(world: World, key: dict[str, Any], env_path: str, **extra: Any) -> dict[str, Any]:
    (world.dir / env_path).parent.mkdir(parents=True, exist_ok=True)
    (world.dir / env_path).write_text("OPENAI_API_KEY=old\n")
    return {"provider": "openai", "project": key["project_id"], "key_id": key["id"],
            "targets": [{"kind": "envfile", "path": env_path, "variables": ["OPENAI_API_KEY"]}], **extra}


def _result(out: Any) -> dict[str, Any]:
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _statuses(result: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in result["steps"]}


def _report(world: World, result: dict[str, Any]) -> str:
    return (world.dir / ".keyresponse" / "incidents" / str(result["incident"]) / "report.md").read_text()


# --- 1. the key is already gone ------------------------------------------------------------


def test_a_key_the_provider_already_disabled_is_replaced_and_deployed(world: World) -> None:
    _option(world, "disabled-by-provider")
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = _result(out)
    statuses = _statuses(result)
    assert {statuses[s] for s in ("find", "revoke", "dead", "issue", "deploy", "live", "record")} == {"applied"}
    revoke = next(s for s in result["steps"] if s["id"] == "revoke")
    assert revoke["outputs"]["already_gone"] is True
    assert_restored(world)  # every target holds the one live replacement
    report = _report(world, result)
    assert "| Already gone | yes |" in report
    assert "| Revoked first by | OpenAI itself" in report


def test_a_gone_key_given_by_its_leaked_value_is_still_replaced(world: World) -> None:
    _option(world, "disabled-by-provider")
    value = world.sandbox.env["SANDBOX_LEAKED_KEY"]
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--leaked-stdin", "--yes", "--json",
                   stdin=value + "\n")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = _result(out)
    dead = next(s for s in result["steps"] if s["id"] == "dead")
    assert dead["status"] == "applied" and dead["outputs"]["method"] == "models"  # proven by the value
    assert_restored(world)
    assert value not in world.everything_written(out.stdout, out.stderr)


# --- 2. sibling keys on one service account --------------------------------------------------


def _search_inventory(world: World, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    indexer, rerank = _key(world, "search-indexer"), _key(world, "search-rerank")
    assert indexer["owner_id"] == rerank["owner_id"]  # two keys, one service account
    _inventory(world, **{"search-indexer": _entry(world, indexer, "apps/search/.env", **extra),
                         "search-rerank": _entry(world, rerank, "apps/rerank/.env")})
    return indexer, rerank


def test_revoking_a_service_account_key_leaves_its_siblings_and_account_alive(world: World) -> None:
    indexer, rerank = _search_inventory(world)
    out = world.kr("run", "leaked-key", "--key", "search-indexer", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    state = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert not state[indexer["id"]]["live"]
    assert state[rerank["id"]]["live"], "a sibling key died with the leaked one"
    assert world.sandbox.state.service_accounts[indexer["owner_id"]]["deleted_at"] is None
    revoke = next(s for s in _result(out)["steps"] if s["id"] == "revoke")
    assert revoke["outputs"]["method"].endswith(f"/api_keys/{indexer['id']}")
    assert not revoke["outputs"]["also_revoked"]


def test_where_only_the_account_can_go_siblings_stop_the_revoke_and_are_named(world: World) -> None:
    indexer, rerank = _search_inventory(world)
    _option(world, "refuse-service-account-key-delete")
    plan = world.kr("run", "leaked-key", "--key", "search-indexer", "--dry-run", "--json")
    planned = next(s for s in _result(plan)["steps"] if s["id"] == "revoke")
    said = json.dumps(planned)
    assert rerank["id"] in said and "inventory: search-rerank" in said  # the plan names what else may die

    out = world.kr("run", "leaked-key", "--key", "search-indexer", "--yes", "--json")
    assert out.returncode == 1
    revoke = next(s for s in _result(out)["steps"] if s["id"] == "revoke")
    assert revoke["status"] == "failed" and "STILL LIVE" in revoke["error"]
    assert rerank["id"] in revoke["error"] and "search-rerank" in revoke["error"]
    assert "sibling_keys: revoke" in (revoke["hint"] or "")
    state = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert state[indexer["id"]]["live"] and state[rerank["id"]]["live"]  # nothing deleted behind our back
    assert replacements(world) == []


def test_sibling_keys_revoke_takes_the_account_and_says_which_keys_died(world: World) -> None:
    indexer, rerank = _search_inventory(world, revoke={"sibling_keys": "revoke"})
    _option(world, "refuse-service-account-key-delete")
    out = world.kr("run", "leaked-key", "--key", "search-indexer", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    state = {k["id"]: k for k in world.sandbox.state.openai_keys()}
    assert not state[indexer["id"]]["live"] and not state[rerank["id"]]["live"]
    result = _result(out)
    revoke = next(s for s in result["steps"] if s["id"] == "revoke")
    assert revoke["outputs"]["also_revoked"] == [rerank["id"]]
    assert f"its keys {rerank['id']}" in _report(world, result)


# --- 3. a replacement configuration that cannot work ---------------------------------------------


def test_a_drill_fails_minting_on_the_account_the_revoke_deletes(world: World) -> None:
    doc = yaml.safe_load(world.config.read_text())
    doc["keys"]["chatbot-prod"]["issue"] = {"mode": "service_account_key",
                                           "service_account_id": leaked(world)["owner_id"]}
    world.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = world.kr("drill", "--key", "chatbot-prod")
    assert out.returncode != 0, out.stdout[-3000:]
    text = out.stdout + out.stderr
    assert "may delete service account" in text and "mode: service_account" in text
    assert leaked(world)["live"] and replacements(world) == []


# --- 4. the replacement keeps the old key's restrictions and lifetime ----------------------------


def test_the_replacement_copies_scopes_and_is_named_after_the_incident(world: World) -> None:
    old = _key(world, "reporting-readonly")
    assert old["scopes"] == ["api.usage.read"]
    _inventory(world, reporting=_entry(world, old, "apps/reporting/.env"))
    out = world.kr("run", "leaked-key", "--key", "reporting", "--yes", "--json")
    result = _result(out)
    assert _statuses(result)["issue"] == "applied", out.stdout[-3000:] + out.stderr[-3000:]
    # a key scoped away from GET /models answers "insufficient permissions": it authenticates, so it is live
    assert _statuses(result)["live"] == "applied", out.stdout[-3000:] + out.stderr[-3000:]
    assert out.returncode == 0
    [new] = replacements(world)
    assert new["scopes"] == ["api.usage.read"]
    assert new["name"] == f"keyresponse-{result['incident']}-1"


def test_the_replacement_expires_as_the_organization_policy_requires(world: World) -> None:
    _option(world, "key-expiry-required")
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    issue = next(s for s in _result(out)["steps"] if s["id"] == "issue")
    assert issue["status"] == "failed" and "expires_in_seconds" in (issue["hint"] or "")
    assert [k for k in replacements(world) if k["live"]] == []  # nothing half-made left live

    world.sandbox.reset()
    _option(world, "key-expiry-required")
    doc = yaml.safe_load(world.config.read_text())
    doc["keys"]["chatbot-prod"]["issue"] = {"expires_in_seconds": 30 * 86400}
    world.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = int(time.time())
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_restored(world)
    [live] = [k for k in replacements(world) if k["live"]]
    expires = world.sandbox.state.keys[live["id"]]["expires_at"]
    assert before + 30 * 86400 <= expires <= int(time.time()) + 30 * 86400
