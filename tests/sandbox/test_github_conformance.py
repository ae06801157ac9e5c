"""Every GitHub operation in the description, called over HTTP, answers per its schema.

The description documents no error bodies; CheckedClient checks those against
GitHub's basic-error shape (message, documentation_url, status).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from nacl.public import PublicKey, SealedBox

from tests.sandbox.spec_client import CheckedClient

Scenario = Callable[[CheckedClient, Any], None]
SCENARIOS: dict[str, tuple[Scenario, tuple[str, ...]]] = {}
REPO = "/repos/{owner}/{repo}"
ORG = "/orgs/{org}/actions/secrets"


def scenario(*operations: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[fn.__name__.strip("_")] = (fn, operations)
        return fn

    return register


def sealed(gh: CheckedClient, base: str, value: str) -> dict[str, str]:
    """A PUT body the way every GitHub client builds one."""
    key = gh.get(f"{base}/public-key").json()
    box = SealedBox(PublicKey(base64.b64decode(key["key"])))
    return {"encrypted_value": base64.b64encode(box.encrypt(value.encode())).decode(), "key_id": key["key_id"]}


def _secret_store(gh: CheckedClient, base: str, sandbox_scope: str, sb: Any) -> None:
    listed = gh.get(base, params={"per_page": 1})
    assert listed.status_code == 200 and len(listed.json()["secrets"]) == 1
    assert gh.get(f"{base}/public-key").status_code == 200
    created = gh.put(f"{base}/NEW_SECRET", json=sealed(gh, base, "first"))
    assert created.status_code == 201 and created.json() == {}
    assert gh.put(f"{base}/new_secret", json=sealed(gh, base, "second")).status_code == 204
    assert sb.state.github_secret_value(sandbox_scope, "NEW_SECRET") == "second"
    assert gh.get(f"{base}/NEW_SECRET").json()["name"] == "NEW_SECRET"
    assert gh.put(f"{base}/NEW_SECRET", json={"encrypted_value": "Z2FyYmFnZQ==", "key_id": "1"}).status_code == 422
    assert gh.delete(f"{base}/NEW_SECRET").status_code == 204
    assert gh.get(f"{base}/NEW_SECRET").status_code == 404
    assert gh.delete(f"{base}/NEW_SECRET").status_code == 404


@scenario(f"GET {REPO}/actions/secrets", f"GET {REPO}/actions/secrets/public-key",
          f"GET {REPO}/actions/secrets/{{secret_name}}", f"PUT {REPO}/actions/secrets/{{secret_name}}",
          f"DELETE {REPO}/actions/secrets/{{secret_name}}")
def _repo_secrets(gh: CheckedClient, sb: Any) -> None:
    _secret_store(gh, "/repos/acme/chatbot/actions/secrets", "repo:acme/chatbot", sb)
    assert gh.get("/repos/acme/nope/actions/secrets").status_code == 404


@scenario(f"GET {REPO}/environments/{{environment_name}}/secrets",
          f"GET {REPO}/environments/{{environment_name}}/secrets/public-key",
          f"GET {REPO}/environments/{{environment_name}}/secrets/{{secret_name}}",
          f"PUT {REPO}/environments/{{environment_name}}/secrets/{{secret_name}}",
          f"DELETE {REPO}/environments/{{environment_name}}/secrets/{{secret_name}}")
def _environment_secrets(gh: CheckedClient, sb: Any) -> None:
    base = "/repos/acme/chatbot/environments/production/secrets"
    gh.put(f"{base}/EXTRA", json=sealed(gh, base, "x"))
    _secret_store(gh, base, "env:acme/chatbot:production", sb)
    assert gh.get("/repos/acme/chatbot/environments/nowhere/secrets").status_code == 404


@scenario(f"GET {REPO}/dependabot/secrets", f"GET {REPO}/dependabot/secrets/public-key",
          f"GET {REPO}/dependabot/secrets/{{secret_name}}", f"PUT {REPO}/dependabot/secrets/{{secret_name}}",
          f"DELETE {REPO}/dependabot/secrets/{{secret_name}}")
def _dependabot_secrets(gh: CheckedClient, sb: Any) -> None:
    _secret_store(gh, "/repos/acme/chatbot/dependabot/secrets", "dependabot:acme/chatbot", sb)


@scenario(f"GET {ORG}", f"GET {ORG}/public-key", f"GET {ORG}/{{secret_name}}", f"PUT {ORG}/{{secret_name}}",
          f"DELETE {ORG}/{{secret_name}}")
def _org_secrets(gh: CheckedClient, sb: Any) -> None:
    base = "/orgs/acme/actions/secrets"
    listed = gh.get(base).json()["secrets"]
    assert {s["visibility"] for s in listed} == {"selected", "private"}
    body = sealed(gh, base, "org-wide") | {"visibility": "all"}
    assert gh.put(f"{base}/SHARED", json=body).status_code == 201
    assert gh.get(f"{base}/SHARED").json()["visibility"] == "all"
    assert sb.state.github_secret_value("org:acme", "SHARED") == "org-wide"
    assert gh.put(f"{base}/SHARED", json=sealed(gh, base, "x")).status_code == 422  # visibility is required
    assert gh.delete(f"{base}/SHARED").status_code == 204
    assert gh.get("/orgs/other/actions/secrets").status_code == 404


@scenario(f"GET {ORG}/{{secret_name}}/repositories", f"PUT {ORG}/{{secret_name}}/repositories",
          f"PUT {ORG}/{{secret_name}}/repositories/{{repository_id}}",
          f"DELETE {ORG}/{{secret_name}}/repositories/{{repository_id}}")
def _org_selected_repositories(gh: CheckedClient, sb: Any) -> None:
    base = "/orgs/acme/actions/secrets/OPENAI_API_KEY/repositories"
    repos = gh.get(base).json()
    assert [r["full_name"] for r in repos["repositories"]] == ["acme/chatbot", "acme/worker"]
    ids = {r["full_name"]: r["id"] for r in sb.state.github["repos"].values()}
    assert gh.put(base, json={"selected_repository_ids": [ids["acme/chatbot"]]}).status_code == 204
    assert gh.put(f"{base}/{ids['acme/website']}").status_code == 204
    assert gh.get(base).json()["total_count"] == 2
    assert gh.delete(f"{base}/{ids['acme/website']}").status_code == 204
    assert gh.get(base).json()["total_count"] == 1
    private = "/orgs/acme/actions/secrets/NPM_TOKEN/repositories"
    assert gh.put(f"{private}/{ids['acme/chatbot']}").status_code == 409
    assert gh.delete(f"{private}/{ids['acme/chatbot']}").status_code == 409


@scenario(f"POST {REPO}/actions/workflows/{{workflow_id}}/dispatches")
def _workflow_dispatch(gh: CheckedClient, sb: Any) -> None:
    path = "/repos/acme/chatbot/actions/workflows/deploy.yml/dispatches"
    assert gh.post(path, json={"ref": "main", "inputs": {"reason": "key rotation"}}).status_code == 204
    detailed = gh.post(path, json={"ref": "main", "return_run_details": True})
    assert detailed.status_code == 200 and detailed.json()["workflow_run_id"] > 0
    assert gh.post(path, json={}).status_code == 422
    assert gh.post(path, json={"ref": "no-such-branch"}).status_code == 422
    assert gh.post("/repos/acme/chatbot/actions/workflows/missing.yml/dispatches", json={"ref": "main"}).status_code == 404
    assert [d["ref"] for d in sb.state.github_dispatches] == ["main", "main"]


@scenario(f"GET {REPO}")
def _repository(gh: CheckedClient, sb: Any) -> None:
    public = gh.get("/repos/acme/chatbot").json()
    assert (public["full_name"], public["private"], public["visibility"]) == ("acme/chatbot", False, "public")
    assert public["security_and_analysis"]["secret_scanning_push_protection"]["status"] == "disabled"
    private = gh.get("/repos/acme/worker").json()
    assert (private["private"], private["visibility"]) == (True, "private")
    assert private["html_url"].endswith("/acme/worker")
    assert gh.get("/repos/acme/nope").status_code == 404


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_routes_conform(name: str, gh: CheckedClient, sandbox: Any) -> None:
    run, operations = SCENARIOS[name]
    run(gh, sandbox)
    for operation in operations:
        statuses = [status for op, status in gh.seen if op == operation]
        assert any(200 <= s < 300 for s in statuses), f"{operation} was never answered successfully"


def test_every_operation_in_the_description_has_a_scenario(github_book: Any) -> None:
    covered = {op for _, operations in SCENARIOS.values() for op in operations}
    assert github_book.operations == covered
