"""A target's identity is kind + platform + locator, not its description: two GitHub
platforms holding a secret of the same repo and name are two targets, deployed,
journaled and tracked apart (key.retire reads which target holds which key from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from keyresponse.actions.key_common import held_masks
from keyresponse.actions.targets import Deploy, DeployArgs
from keyresponse.http import build_client
from keyresponse.targets.base import build_targets
from tests.helpers.target_contract import check_equal, make_ctx, new_secret, notes
from tests.unit.test_targets_github import TOKEN, FakeGitHub

URLS = {"github": "https://github.example/api", "ghe": "https://ghe.example/api"}  # FakeGitHub serves below /api/


@pytest.fixture
def two_githubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, FakeGitHub]]:
    fakes = {name: FakeGitHub() for name in URLS}
    for fake in fakes.values():
        fake.seed("repo:acme/api", "OPENAI_API_KEY")
    monkeypatch.setenv("KR_T_GH_ONE", TOKEN)
    monkeypatch.setenv("KR_T_GH_TWO", TOKEN)
    by_url = {URLS[name]: fake for name, fake in fakes.items()}
    made: dict[str, httpx.Client] = {}

    def http(service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
        if base_url not in made:
            made[base_url] = build_client(service, base_url, headers, transport=httpx.MockTransport(by_url[base_url]))
        return made[base_url]

    inventory = {
        "concurrency": 1,  # one after the other: the second must not pass for the first
        "platforms": {"github": {"kind": "github", "base_url": URLS["github"], "token_env": "KR_T_GH_ONE"},
                      "ghe": {"kind": "github", "base_url": URLS["ghe"], "token_env": "KR_T_GH_TWO"}},
        "keys": {"k": {"targets": [
            {"kind": "github", "platform": "github", "repo": "acme/api", "secret": "OPENAI_API_KEY"},
            {"kind": "github", "platform": "ghe", "repo": "acme/api", "secret": "OPENAI_API_KEY"},
        ]}},
    }
    ctx, _ = make_ctx(tmp_path, inventory, http=http)
    return ctx, fakes


def test_same_repo_and_secret_on_two_platforms_are_two_targets(two_githubs: tuple[Any, dict[str, FakeGitHub]]) -> None:
    ctx, fakes = two_githubs
    secret = new_secret()
    out = Deploy().apply(Deploy().plan(DeployArgs(secret=secret), ctx), ctx)
    for fake in fakes.values():  # each platform got the value, not one of them twice
        check_equal(fake.value("repo:acme/api", "OPENAI_API_KEY"), secret.reveal())
    ids = [r["id"] for r in out["targets"]]
    assert len(set(ids)) == 2 and out["applied"] == 2
    assert all(r["note"] is None or "earlier attempt" not in r["note"] for r in out["targets"])
    assert sorted(n["target_id"] for n in notes(ctx.incident)) == sorted(ids)
    assert sorted(n["target_id"] for n in notes(ctx.incident, "target.writing")) == sorted(ids)
    # stable: the same inventory gives the same identities in another run
    assert [t.identity for t in build_targets(ctx, ctx.require_key())] == ids


def test_which_target_holds_which_key_is_tracked_per_platform(two_githubs: tuple[Any, dict[str, FakeGitHub]]) -> None:
    ctx, fakes = two_githubs
    first, second = new_secret("R1"), new_secret("R2")
    out = Deploy().apply(Deploy().plan(DeployArgs(secret=first), ctx), ctx)
    one, two = (r["id"] for r in out["targets"])
    Deploy().apply(Deploy().plan(DeployArgs(secret=second, only=[two]), ctx), ctx)
    check_equal(fakes["github"].value("repo:acme/api", "OPENAI_API_KEY"), first.reveal())
    check_equal(fakes["ghe"].value("repo:acme/api", "OPENAI_API_KEY"), second.reveal())
    # key.retire must see that the first platform still holds the first key
    assert held_masks(ctx) == {one: {first.masked}, two: {second.masked}}


def test_only_refuses_a_description_two_targets_share(two_githubs: tuple[Any, dict[str, FakeGitHub]]) -> None:
    from keyresponse.errors import UsageError

    ctx, _ = two_githubs
    descriptions = [t.describe() for t in build_targets(ctx, ctx.require_key())]
    assert len(set(descriptions)) == 2  # the second names its platform
    assert descriptions[0] == "GitHub secret acme/api:OPENAI_API_KEY"
    with pytest.raises(UsageError, match="no target"):
        Deploy().plan(DeployArgs(secret=new_secret(), only=["nope"]), ctx)


def test_two_command_targets_that_differ_only_in_env_name_are_two_places(tmp_path: Path) -> None:
    from keyresponse.targets.command import Command, CommandTarget

    a = Command(CommandTarget(kind="command", argv=["./push.sh"], secret_via="env", env_name="A_KEY"), tmp_path)
    b = Command(CommandTarget(kind="command", argv=["./push.sh"], secret_via="env", env_name="B_KEY"), tmp_path)
    assert a.identity != b.identity


def test_one_place_listed_twice_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from keyresponse.errors import ConfigError

    entry = {"kind": "envfile", "path": "app.env", "variables": ["OPENAI_API_KEY"]}
    ctx, _ = make_ctx(tmp_path, {"keys": {"k": {"targets": [entry, dict(entry)]}}})
    assert ctx.key is not None
    with pytest.raises(ConfigError, match="#1 and #2 are the same place"):
        build_targets(ctx, ctx.key)
