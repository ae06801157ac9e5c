"""GitLab CI/CD variables target against a small in-memory fake."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from keyresponse.errors import TargetError
from keyresponse.http import build_client
from keyresponse.targets.base import Shared
from keyresponse.targets.gitlab import GitLabTarget, GitLabVariable
from tests.helpers.target_contract import check_equal, new_secret, run_target

TOKEN = "gl-test-token-" + "y" * 20


class FakeGitLab:
    def __init__(self) -> None:
        self.owners = {"projects/acme/chatbot", "projects/43", "groups/acme"}
        self.vars: dict[str, list[dict[str, Any]]] = {o: [] for o in self.owners}
        self.pipelines: list[dict[str, Any]] = []
        self.puts: list[dict[str, Any]] = []

    def add(self, owner: str, key: str, value: str, scope: str = "*", **attrs: Any) -> None:
        self.vars[owner].append({"key": key, "value": value, "environment_scope": scope, "masked": False,
                                 "protected": False, "raw": False, "variable_type": "env_var",
                                 "description": None, **attrs})

    def find(self, owner: str, key: str, scope: str) -> dict[str, Any] | None:
        return next((v for v in self.vars[owner] if v["key"] == key and v["environment_scope"] == scope), None)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("private-token") != TOKEN:
            return httpx.Response(401, json={"message": "401 Unauthorized"})
        raw = request.url.raw_path.decode().split("?")[0].removeprefix("/api/v4/")
        m = re.fullmatch(r"(projects|groups)/([^/]+)(?:/(variables|pipeline)(?:/([^/]+))?)?", raw)
        if not m or f"{m[1]}/{unquote(m[2])}" not in self.owners:
            return httpx.Response(404, json={"message": "404 Project Not Found"})
        owner = f"{m[1]}/{unquote(m[2])}"
        scope = request.url.params.get("filter[environment_scope]", "*")
        body = json.loads(request.content or b"{}")
        if m[3] is None:
            return httpx.Response(200, json={"id": 42})
        if m[3] == "pipeline":
            self.pipelines.append({"owner": owner, **body})
            return httpx.Response(201, json={"id": 5001, "ref": body["ref"], "status": "created"})
        if request.method == "POST":
            self.vars[owner].append(body)
            return httpx.Response(201, json=body)
        var = self.find(owner, m[4], scope)
        if var is None:
            return httpx.Response(404, json={"message": "404 Variable Not Found"})
        if request.method == "PUT":
            self.puts.append(body)
            var.update(body)
        shown = {**var, "value": None} if var.get("hidden") else var
        return httpx.Response(200, json=shown)


@pytest.fixture
def gl() -> FakeGitLab:
    fake = FakeGitLab()
    fake.add("projects/acme/chatbot", "OPENAI_API_KEY", "old-prod-value-1", masked=True, protected=True)
    fake.add("projects/acme/chatbot", "OPENAI_API_KEY", "old-staging-value", "staging", masked=True)
    fake.add("groups/acme", "OPENAI_API_KEY", "old-group-value", hidden=True, masked=True)
    return fake


def make(gl: FakeGitLab, **cfg: Any) -> GitLabVariable:
    client = build_client("gitlab", "https://gl.test/api/v4", {"PRIVATE-TOKEN": TOKEN},
                          transport=httpx.MockTransport(gl))
    return GitLabVariable(GitLabTarget(kind="gitlab", variable="OPENAI_API_KEY", **cfg), lambda: client, Shared())


def test_project_variable_updated_in_its_scope_keeping_attributes(gl: FakeGitLab) -> None:
    secret = new_secret()
    run = run_target(make(gl, project="acme/chatbot", environment_scope="staging"), secret)
    assert run.verified is True
    staging = gl.find("projects/acme/chatbot", "OPENAI_API_KEY", "staging")
    prod = gl.find("projects/acme/chatbot", "OPENAI_API_KEY", "*")
    assert staging and prod
    check_equal(staging["value"], secret.reveal())
    assert prod["value"] == "old-prod-value-1"  # the other scope is untouched
    assert staging["masked"] is True and gl.puts[0]["environment_scope"] == "staging"
    assert {"masked", "protected", "raw", "variable_type"} <= set(gl.puts[0])


def test_group_hidden_variable_cannot_be_read_back(gl: FakeGitLab) -> None:
    run = run_target(make(gl, group="acme"), new_secret())
    assert run.verified is False  # hidden: GitLab never shows the value
    assert "masked" not in gl.puts[0]


def test_missing_variable_created_only_when_asked(gl: FakeGitLab) -> None:
    [check] = make(gl, project=43).preflight()
    assert not check.ok and "create: true" in (check.fix or "")
    secret = new_secret()
    run = run_target(make(gl, project=43, create=True), secret)
    assert run.note == "created"
    var = gl.find("projects/43", "OPENAI_API_KEY", "*")
    assert var and var["masked"] is True and var["protected"] is False


def test_unknown_project_is_a_clear_error(gl: FakeGitLab) -> None:
    [check] = make(gl, project="acme/nope", create=True).preflight()
    assert not check.ok and "404" in check.detail and "Maintainer" in (check.fix or "")
    with pytest.raises(TargetError, match="404"):
        make(gl, project="acme/nope").write(new_secret())


def test_pipeline_restart(gl: FakeGitLab) -> None:
    t = make(gl, project="acme/chatbot", pipeline_ref="main")
    assert t.restart() is True and gl.pipelines == [{"owner": "projects/acme/chatbot", "ref": "main"}]
    [check] = make(gl, group="acme", pipeline_ref="main").preflight()
    assert not check.ok and "needs `project:`" in check.detail
