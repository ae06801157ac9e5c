"""GitHub secrets: real sealed boxes, token scopes, key rotation, dispatches."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from nacl.public import PublicKey, SealedBox

SECRETS = "/repos/acme/chatbot/actions/secrets"


@pytest.fixture
def gh(sandbox: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.urls["github"], timeout=10,
                      headers={"Authorization": f"Bearer {sandbox.env['GITHUB_TOKEN']}"}) as client:
        yield client


def seal(public_key: dict[str, str], value: str) -> dict[str, str]:
    box = SealedBox(PublicKey(base64.b64decode(public_key["key"])))
    return {"encrypted_value": base64.b64encode(box.encrypt(value.encode())).decode(),
            "key_id": public_key["key_id"]}


def test_a_value_sealed_with_the_public_key_is_what_the_sandbox_stores(sandbox: Any, gh: httpx.Client) -> None:
    key = gh.get(f"{SECRETS}/public-key").json()
    value = "replacement-" + "x" * 40
    assert gh.put(f"{SECRETS}/OPENAI_API_KEY", json=seal(key, value)).status_code == 204  # seeded: an update
    assert sandbox.state.github_secret_value("repo:acme/chatbot", "OPENAI_API_KEY") == value
    hook = httpx.get(f"{sandbox.base_url}/_sandbox/github/secret",
                     params={"scope": "repo:acme/chatbot", "name": "openai_api_key"}).json()
    assert hook["value"] == value


def test_seeded_targets_hold_the_leaked_key(sandbox: Any) -> None:
    leaked = sandbox.env["SANDBOX_LEAKED_KEY"]
    for scope in ("repo:acme/chatbot", "env:acme/chatbot:production", "org:acme"):
        assert sandbox.state.github_secret_value(scope, "OPENAI_API_KEY") == leaked


def test_garbage_encrypted_value_is_rejected(sandbox: Any, gh: httpx.Client) -> None:
    key = gh.get(f"{SECRETS}/public-key").json()
    before = sandbox.state.github_secret_value("repo:acme/chatbot", "OPENAI_API_KEY")
    for junk in ("bm90IGEgc2VhbGVkIGJveA==", "%%% not base64 %%%", ""):
        r = gh.put(f"{SECRETS}/OPENAI_API_KEY", json={"encrypted_value": junk, "key_id": key["key_id"]})
        assert r.status_code == 422, junk
        assert set(r.json()) == {"message", "documentation_url", "status"}
    assert sandbox.state.github_secret_value("repo:acme/chatbot", "OPENAI_API_KEY") == before


def test_a_box_sealed_for_another_scope_or_key_id_is_rejected(gh: httpx.Client) -> None:
    env_key = gh.get("/repos/acme/chatbot/environments/production/secrets/public-key").json()
    repo_key = gh.get(f"{SECRETS}/public-key").json()
    wrong_box = seal(env_key, "v") | {"key_id": repo_key["key_id"]}
    assert gh.put(f"{SECRETS}/X", json=wrong_box).status_code == 422
    assert gh.put(f"{SECRETS}/X", json=seal(repo_key, "v") | {"key_id": "123"}).status_code == 422


def test_secret_names_follow_githubs_rules(gh: httpx.Client) -> None:
    key = gh.get(f"{SECRETS}/public-key").json()
    for bad in ("1ABC", "GITHUB_TOKEN", "WITH-DASH"):
        assert gh.put(f"{SECRETS}/{bad}", json=seal(key, "v")).status_code == 422, bad
    assert gh.put(f"{SECRETS}/_ok_name", json=seal(key, "v")).status_code == 201
    assert "_OK_NAME" in {s["name"] for s in gh.get(SECRETS).json()["secrets"]}


def test_tokens_see_only_their_repositories(sandbox: Any) -> None:
    base = sandbox.urls["github"]
    limited = {"Authorization": f"token {sandbox.env['GITHUB_TOKEN_LIMITED']}"}
    assert httpx.get(f"{base}{SECRETS}", headers=limited).status_code == 200
    denied = httpx.get(f"{base}/repos/acme/billing-api/actions/secrets/public-key", headers=limited)
    assert denied.status_code == 404 and denied.json()["message"] == "Not Found"
    assert httpx.get(f"{base}{SECRETS}", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{base}{SECRETS}").status_code == 401


def test_rotating_the_public_key_between_calls_gives_a_422_then_works(sandbox: Any, gh: httpx.Client) -> None:
    stale = gh.get(f"{SECRETS}/public-key").json()
    sandbox.add_fault(service="github", method="PUT", path="/repos/*/actions/secrets/*", kind="rotate_public_key",
                      count=1)
    assert gh.put(f"{SECRETS}/OPENAI_API_KEY", json=seal(stale, "v1")).status_code == 422
    fresh = gh.get(f"{SECRETS}/public-key").json()
    assert fresh["key_id"] != stale["key_id"]
    assert gh.put(f"{SECRETS}/OPENAI_API_KEY", json=seal(fresh, "v2")).status_code == 204
    assert sandbox.state.github_secret_value("repo:acme/chatbot", "OPENAI_API_KEY") == "v2"
    # other scopes keep their keys, and what they hold stays readable
    assert sandbox.state.github_secret_value("org:acme", "OPENAI_API_KEY") == sandbox.env["SANDBOX_LEAKED_KEY"]


def test_environment_names_are_url_decoded(gh: httpx.Client) -> None:
    assert gh.get("/repos/acme/chatbot/environments/produc%74ion/secrets").status_code == 200


def test_workflow_dispatches_are_recorded(sandbox: Any, gh: httpx.Client) -> None:
    workflow_id = sandbox.state.github["repos"]["acme/chatbot"]["workflows"]["deploy.yml"]
    r = gh.post(f"/repos/acme/chatbot/actions/workflows/{workflow_id}/dispatches",
                json={"ref": "refs/heads/main", "inputs": {"why": "rotation"}})
    assert r.status_code == 204
    [dispatch] = sandbox.state.github_dispatches
    assert (dispatch["repo"], dispatch["workflow"], dispatch["inputs"]) == ("acme/chatbot", "deploy.yml",
                                                                             {"why": "rotation"})
    assert sandbox.state.mutation_count == 1


def test_org_secret_update_keeps_its_selected_repositories(sandbox: Any, gh: httpx.Client) -> None:
    base = "/orgs/acme/actions/secrets"
    key = gh.get(f"{base}/public-key").json()
    r = gh.put(f"{base}/OPENAI_API_KEY", json=seal(key, "new") | {"visibility": "selected"})
    assert r.status_code == 204
    names = [repo["name"] for repo in gh.get(f"{base}/OPENAI_API_KEY/repositories").json()["repositories"]]
    assert names == ["chatbot", "worker"]


def test_the_github_target_against_fine_grained_permissions_new_org_secrets_and_run_details(sandbox: Any) -> None:
    """One run over real sockets: a fine-grained token's permissions on environment secrets,
    a new org secret's visibility, and the dispatched run the restart names."""
    from keyresponse.errors import TargetError
    from keyresponse.http import build_client
    from keyresponse.secret import Secret
    from keyresponse.targets.base import Shared
    from keyresponse.targets.github import GitHubSecret, GitHubTarget

    tokens = sandbox.state.github["tokens"]
    fine = {"name": "fine-grained", "repos": None, "org_admin": False,
            "permissions": {"secrets": "write", "environments": "read"}}
    no_env = "fine-noenv-" + "x" * 20
    read_env = "fine-readenv-" + "x" * 20
    tokens[no_env] = {**fine, "permissions": {"secrets": "write"}}
    tokens[read_env] = fine

    clients: list[httpx.Client] = []

    def target(token: str, **cfg: Any) -> GitHubSecret:
        client = build_client("github", sandbox.urls["github"], {"Authorization": f"Bearer {token}"})
        clients.append(client)
        return GitHubSecret(GitHubTarget(kind="github", secret=cfg.pop("secret", "OPENAI_API_KEY"), **cfg),
                            lambda: client, Shared(), base_url=sandbox.urls["github"])

    try:
        env = {"repo": "acme/chatbot", "environment": "production"}
        # no Environments permission at all: the read-only preflight already fails, and says what to grant
        [check] = target(no_env, **env).preflight()
        assert not check.ok and "403" in check.detail
        assert "'Environments: read and write'" in (check.fix or "") and "environments=read" in (check.fix or "")
        # repository secrets need no Environments permission
        assert target(no_env, repo="acme/chatbot").preflight()[0].ok
        # Environments read: the preflight passes and says the write needs more; the write is refused
        env_target = target(read_env, **env)
        [check] = env_target.preflight()
        assert check.ok and "Environments: write" in check.detail
        with pytest.raises(TargetError, match="403") as info:
            env_target.write(Secret("replacement-" + "y" * 40))
        assert "environments=write" in (info.value.hint or "")
        assert sandbox.state.github_secret_value("env:acme/chatbot:production", "OPENAI_API_KEY") == \
            sandbox.env["SANDBOX_LEAKED_KEY"]

        full = sandbox.env["GITHUB_TOKEN"]
        # a missing org secret: created `selected`, visible to no repository, and the note says so
        org_target = target(full, org="acme", secret="NEW_ORG_KEY", create=True)
        assert "no repositories" in org_target.preflight()[0].detail
        note = org_target.write(Secret("replacement-" + "z" * 40))
        assert note and "no repositories" in note
        stored = sandbox.state.github["secrets"]["org:acme"]["NEW_ORG_KEY"]
        assert stored["visibility"] == "selected" and stored["selected_repository_ids"] == []

        # the restart asks for the run and hands back its page
        run_page = target(full, repo="acme/chatbot", workflow="deploy.yml").restart()
        [dispatch] = sandbox.state.github_dispatches
        assert run_page == f"https://github.com/acme/chatbot/actions/runs/{dispatch['run_id']}"
    finally:
        for client in clients:
            client.close()
