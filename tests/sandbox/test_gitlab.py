"""GitLab CI/CD variables and the pipeline trigger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

VARS = "/projects/acme%2Fchatbot/variables"
SCOPED = {"filter[environment_scope]": "*"}


@pytest.fixture
def gl(sandbox: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.urls["gitlab"], timeout=10,
                      headers={"PRIVATE-TOKEN": sandbox.env["GITLAB_TOKEN"]}) as client:
        yield client


def test_the_seeded_variable_holds_the_leaked_key_in_two_scopes(sandbox: Any, gl: httpx.Client) -> None:
    listed = gl.get(VARS)
    assert listed.status_code == 200 and listed.headers["X-Total"] == "3"
    # the same key in two environment scopes: GitLab wants filter[environment_scope]
    r = gl.get(f"{VARS}/OPENAI_API_KEY")
    assert r.status_code == 409 and "filter[environment_scope]" in r.json()["message"]
    var = gl.get(f"{VARS}/OPENAI_API_KEY", params=SCOPED).json()
    assert var["value"] == sandbox.env["SANDBOX_LEAKED_KEY"] and var["masked"] and var["environment_scope"] == "*"
    assert gl.get("/projects/42/variables/OPENAI_API_KEY", params={"filter[environment_scope]": "staging"}).json()[
        "value"] != var["value"]


def test_update_create_delete(sandbox: Any, gl: httpx.Client) -> None:
    new = "replacement-value-" + "y" * 30
    r = gl.put(f"{VARS}/OPENAI_API_KEY", params=SCOPED, json={"value": new, "masked": True})
    assert r.status_code == 200 and r.json()["value"] == new
    assert sandbox.state.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY")["value"] == new
    # form bodies work too (curl, older clients)
    r = gl.post(VARS, data={"key": "NEW_VAR", "value": "v", "protected": "true"})
    assert r.status_code == 201 and r.json()["protected"] is True
    assert gl.post(VARS, json={"key": "NEW_VAR", "value": "again"}).status_code == 400
    assert gl.post(VARS, json={"key": "NEW_VAR", "value": "other", "environment_scope": "review/*"}).status_code == 201
    assert gl.delete(f"{VARS}/NEW_VAR", params={"filter[environment_scope]": "review/*"}).status_code == 204
    assert gl.delete(f"{VARS}/NEW_VAR").status_code == 204
    assert gl.get(f"{VARS}/NEW_VAR").status_code == 404


def test_validation_follows_gitlab(gl: httpx.Client) -> None:
    assert gl.post(VARS, json={"key": "bad-key", "value": "v"}).status_code == 400
    assert gl.post(VARS, json={"key": "K"}).json() == {"error": "value is missing"}
    masked = gl.post(VARS, json={"key": "SHORT", "value": "abc", "masked": True})
    assert masked.status_code == 400 and masked.json() == {"message": {"value": ["is invalid"]}}
    hidden = gl.post(VARS, json={"key": "HIDDEN", "value": "a-long-enough-value", "masked_and_hidden": True})
    assert hidden.status_code == 201 and hidden.json()["value"] is None


def test_group_variables(gl: httpx.Client) -> None:
    assert [v["key"] for v in gl.get("/groups/acme/variables").json()] == ["DEPLOY_REGION"]
    assert gl.put("/groups/7/variables/DEPLOY_REGION", json={"value": "us-east-1"}).json()["value"] == "us-east-1"


def test_tokens_and_unknown_projects(sandbox: Any) -> None:
    base = sandbox.urls["gitlab"]
    assert httpx.get(base + VARS, headers={"PRIVATE-TOKEN": "nope"}).status_code == 401
    assert httpx.get(base + VARS).json() == {"message": "401 Unauthorized"}
    ok = {"Authorization": f"Bearer {sandbox.env['GITLAB_TOKEN']}"}
    assert httpx.get(base + "/projects/acme%2Fmissing/variables", headers=ok).json() == {
        "message": "404 Project Not Found"}
    assert httpx.get(base + "/user", headers=ok).json()["username"] == "keyresponse-bot"


def test_pipeline_trigger_is_recorded_without_variable_values(sandbox: Any, gl: httpx.Client) -> None:
    r = gl.post("/projects/acme%2Fchatbot/pipeline", params={"ref": "main"},
                json={"variables": [{"key": "REASON", "value": "secret-ish"}]})
    assert r.status_code == 201 and r.json()["status"] == "created" and r.json()["ref"] == "main"
    [pipeline] = sandbox.state.gitlab_pipelines
    assert pipeline["project_path"] == "acme/chatbot" and pipeline["variables"] == ["REASON"]
    assert gl.post("/projects/42/pipeline", json={"ref": "nope"}).json() == {"message": {"base": ["Reference not found"]}}
