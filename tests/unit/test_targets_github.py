"""GitHub secrets target against a small in-memory fake (httpx.MockTransport)."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import httpx
import pytest

from keyresponse.errors import TargetError
from keyresponse.http import build_client
from keyresponse.targets.base import Shared
from keyresponse.targets.github import GitHubSecret, GitHubTarget
from tests.helpers.target_contract import check_equal, check_not_in, new_secret, run_target

TOKEN = "test-token-" + "x" * 20


class FakeGitHub:
    """Secrets per scope, sealed-box keys per scope, and a token that may not see some repos."""

    def __init__(self) -> None:
        from nacl.public import PrivateKey

        self.keys: dict[str, Any] = {}
        self.secrets: dict[str, dict[str, dict[str, Any]]] = {}
        self.denied: set[str] = set()
        self.inject: list[httpx.Response] = []
        self.requests: list[tuple[str, str]] = []
        self.dispatches: list[dict[str, Any]] = []
        self.selected = {"OPENAI_API_KEY": [11, 12, 13]}
        self._private = PrivateKey
        self.serial = 0

    def key(self, scope: str) -> Any:
        if scope not in self.keys:
            self.serial += 1
            self.keys[scope] = (self._private.generate(), f"kid-{self.serial}")
        return self.keys[scope]

    def value(self, scope: str, name: str) -> str:
        from nacl.public import SealedBox

        stored = self.secrets[scope][name]
        private, kid = self.key(scope)
        assert stored["key_id"] == kid
        return SealedBox(private).decrypt(base64.b64decode(stored["encrypted_value"])).decode()

    def seed(self, scope: str, name: str, **extra: Any) -> None:
        self.secrets.setdefault(scope, {})[name] = {"name": name, "created_at": "2025-01-01T00:00:00Z",
                                                    "updated_at": "2025-02-01T00:00:00Z", **extra}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode().split("?")[0].removeprefix("/api/")
        self.requests.append((request.method, path))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"message": "Bad credentials"})
        if self.inject:
            return self.inject.pop(0)
        if any(path.startswith(f"repos/{r}/") for r in self.denied):
            return httpx.Response(404, json={"message": "Not Found"})
        m = re.fullmatch(r"repos/([^/]+/[^/]+)/actions/workflows/([^/]+)/dispatches", path)
        if m:
            body = _json(request)
            self.dispatches.append({"repo": m[1], "workflow": m[2], **body})
            if body.get("return_run_details") is True:  # as the description says: 200 with the run
                run = 9000 + len(self.dispatches)
                return httpx.Response(200, json={
                    "workflow_run_id": run, "run_url": f"https://gh.test/api/repos/{m[1]}/actions/runs/{run}",
                    "html_url": f"https://github.com/{m[1]}/actions/runs/{run}"})
            return httpx.Response(204)
        scope = _scope(path)
        rest = path.rsplit("/secrets/", 1)[1]
        if rest == "public-key":
            private, kid = self.key(scope)
            return httpx.Response(200, json={"key_id": kid, "key": base64.b64encode(bytes(private.public_key)).decode()})
        name, _, sub = rest.partition("/")
        current = self.secrets.get(scope, {}).get(name)
        if sub == "repositories":
            ids = self.selected.get(name, current.get("selected_repository_ids", []) if current else [])
            return httpx.Response(200, json={"total_count": len(ids), "repositories": [{"id": i} for i in ids]})
        if request.method == "GET":
            return httpx.Response(200, json=current) if current else httpx.Response(404, json={"message": "Not Found"})
        body = _json(request)
        if body["key_id"] != self.key(scope)[1]:
            return httpx.Response(422, json={"message": "key_id does not match"})
        if scope.startswith("org:") and "visibility" not in body:
            return httpx.Response(422, json={"message": "visibility is required"})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.secrets.setdefault(scope, {})[name] = {**(current or {"created_at": stamp, "name": name}),
                                                    "updated_at": stamp, **body}
        return httpx.Response(204) if current else httpx.Response(201, json={})


def _json(request: httpx.Request) -> dict[str, Any]:
    import json

    return dict(json.loads(request.content or b"{}"))


def _scope(path: str) -> str:
    from urllib.parse import unquote

    if m := re.match(r"repos/([^/]+/[^/]+)/environments/([^/]+)/", path):
        return f"env:{m[1]}:{unquote(m[2])}"
    if m := re.match(r"repos/([^/]+/[^/]+)/dependabot/", path):
        return f"dependabot:{m[1]}"
    if m := re.match(r"repos/([^/]+/[^/]+)/", path):
        return f"repo:{m[1]}"
    return "org:" + path.split("/")[1]


@pytest.fixture
def gh() -> FakeGitHub:
    fake = FakeGitHub()
    fake.seed("repo:acme/chatbot", "OPENAI_API_KEY")
    fake.seed("env:acme/chatbot:prod/eu", "OPENAI_API_KEY")
    fake.seed("org:acme", "OPENAI_API_KEY", visibility="selected")
    fake.seed("dependabot:acme/chatbot", "OPENAI_API_KEY")
    return fake


def make(gh: FakeGitHub, shared: Shared | None = None, **cfg: Any) -> GitHubSecret:
    client = build_client("github", "https://gh.test/api", {"Authorization": f"Bearer {TOKEN}"},
                          transport=httpx.MockTransport(gh))
    config = GitHubTarget(kind="github", secret=cfg.pop("secret", "openai_api_key"), **cfg)
    return GitHubSecret(config, lambda: client, shared or Shared(), base_url="https://gh.test/api")


@pytest.mark.parametrize("cfg, scope", [
    ({"repo": "acme/chatbot"}, "repo:acme/chatbot"),
    ({"repo": "acme/chatbot", "environment": "prod/eu"}, "env:acme/chatbot:prod/eu"),
    ({"org": "acme"}, "org:acme"),
    ({"repo": "acme/chatbot", "dependabot": True}, "dependabot:acme/chatbot"),
])
def test_each_scope_holds_exactly_the_new_value(gh: FakeGitHub, cfg: dict[str, Any], scope: str) -> None:
    secret = new_secret()
    run = run_target(make(gh, **cfg), secret)
    assert run.verified is True
    check_equal(gh.value(scope, "OPENAI_API_KEY"), secret.reveal())  # names go upper-case


def test_org_secret_keeps_visibility_and_selected_repos(gh: FakeGitHub) -> None:
    run_target(make(gh, org="acme"), new_secret())
    stored = gh.secrets["org:acme"]["OPENAI_API_KEY"]
    assert stored["visibility"] == "selected" and stored["selected_repository_ids"] == [11, 12, 13]


def test_environment_name_is_url_encoded(gh: FakeGitHub) -> None:
    make(gh, repo="acme/chatbot", environment="prod/eu").write(new_secret())
    assert ("PUT", "repos/acme/chatbot/environments/prod%2Feu/secrets/OPENAI_API_KEY") in [
        (m, p) for m, p in gh.requests]


def test_missing_secret_needs_create(gh: FakeGitHub) -> None:
    [check] = make(gh, repo="acme/worker").preflight()
    assert not check.ok and "does not exist" in check.detail and "create: true" in (check.fix or "")
    secret = new_secret()
    run = run_target(make(gh, repo="acme/worker", create=True), secret)
    assert run.note == "created" and run.verified is True
    check_equal(gh.value("repo:acme/worker", "OPENAI_API_KEY"), secret.reveal())


def test_no_access_is_a_clear_per_target_error(gh: FakeGitHub) -> None:
    gh.denied.add("acme/chatbot")
    t = make(gh, repo="acme/chatbot")
    [check] = t.preflight()
    assert not check.ok and "404" in check.detail and "GET" in check.detail
    assert "token cannot see or write secrets in acme/chatbot" in (check.fix or "")
    with pytest.raises(TargetError, match="404"):
        t.write(new_secret())


def test_public_key_fetched_once_per_scope(gh: FakeGitHub) -> None:
    shared = Shared()
    for name in ("A_KEY", "B_KEY", "C_KEY"):
        gh.seed("org:acme", name, visibility="private")
        make(gh, shared, org="acme", secret=name).write(new_secret())
    assert [p for m, p in gh.requests].count("orgs/acme/actions/secrets/public-key") == 1


def test_rotated_public_key_is_fetched_again(gh: FakeGitHub) -> None:
    shared = Shared()
    t = make(gh, shared, repo="acme/chatbot")
    t.preflight()  # caches the key
    del gh.keys["repo:acme/chatbot"]  # GitHub rotated it
    secret = new_secret()
    t.write(secret)
    check_equal(gh.value("repo:acme/chatbot", "OPENAI_API_KEY"), secret.reveal())


def test_secondary_rate_limit_waits_as_told(gh: FakeGitHub) -> None:
    gh.inject = [httpx.Response(403, headers={"retry-after": "1"},
                                json={"message": "You have exceeded a secondary rate limit"})]
    started = time.monotonic()
    run_target(make(gh, repo="acme/chatbot"), new_secret())
    assert time.monotonic() - started >= 0.9


def test_verify_fails_when_updated_at_did_not_move(gh: FakeGitHub) -> None:
    t = make(gh, repo="acme/chatbot")
    t.preflight()
    gh.inject = [httpx.Response(204)]  # the PUT "succeeds" but nothing is stored
    t.write(new_secret())
    with pytest.raises(TargetError, match="updated_at did not move"):
        t.verify(new_secret())


def test_restart_dispatches_the_workflow_and_returns_the_run(gh: FakeGitHub) -> None:
    t = make(gh, repo="acme/chatbot", workflow="deploy.yml", ref="release")
    assert t.restart_what == "dispatch workflow deploy.yml on release in acme/chatbot"
    assert t.restart() == "https://github.com/acme/chatbot/actions/runs/9001"  # the run's page, for the report
    assert gh.dispatches == [{"repo": "acme/chatbot", "workflow": "deploy.yml", "ref": "release",
                              "return_run_details": True}]
    assert make(gh, repo="acme/chatbot").restart() is None


def test_restart_without_run_details_still_counts(gh: FakeGitHub) -> None:
    # a GitHub that does not know return_run_details answers 204 (API versions before it)
    gh.inject = [httpx.Response(204)]
    assert make(gh, repo="acme/chatbot", workflow="deploy.yml").restart() is True


def test_environment_secrets_name_the_environments_permission(gh: FakeGitHub) -> None:
    # https://docs.github.com/rest/actions/secrets: environment secrets need "Environments"
    # as well as "Secrets" (fine-grained tokens and GitHub Apps)
    gh.denied.add("acme/chatbot")
    [check] = make(gh, repo="acme/chatbot", environment="prod/eu").preflight()
    assert not check.ok and "'Environments: read and write'" in (check.fix or "")
    assert "'Secrets: read and write'" in (check.fix or "")
    [repo_check] = make(gh, repo="acme/chatbot").preflight()
    assert "Environments" not in (repo_check.fix or "")  # a repository secret does not need it
    gh.denied.clear()
    [ok] = make(gh, repo="acme/chatbot", environment="prod/eu").preflight()
    assert ok.ok and "Environments: write" in ok.detail  # what a read-only check cannot prove, said up front


def test_githubs_accepted_permissions_header_reaches_the_hint(gh: FakeGitHub) -> None:
    gh.inject = [httpx.Response(403, headers={"x-accepted-github-permissions": "environments=read; secrets=read"},
                                json={"message": "Resource not accessible by personal access token"})]
    [check] = make(gh, repo="acme/chatbot", environment="prod/eu").preflight()
    assert not check.ok and "environments=read; secrets=read" in (check.fix or "")


def test_a_new_org_secret_is_visible_to_no_repository_until_chosen(gh: FakeGitHub) -> None:
    t = make(gh, org="acme", secret="NEW_KEY", create=True)
    [check] = t.preflight()
    assert check.ok and "visibility selected" in check.detail and "no repositories" in check.detail
    note = t.write(new_secret())
    stored = gh.secrets["org:acme"]["NEW_KEY"]
    assert stored["visibility"] == "selected" and stored["selected_repository_ids"] == []
    assert note and "no repositories" in note and "selected" in note


def test_an_existing_org_secret_keeps_private_visibility(gh: FakeGitHub) -> None:
    gh.seed("org:acme", "PRIV_KEY", visibility="private")
    make(gh, org="acme", secret="PRIV_KEY").write(new_secret())
    assert gh.secrets["org:acme"]["PRIV_KEY"]["visibility"] == "private"


def test_dependabot_with_environment_is_refused_at_load_time(tmp_path: Any) -> None:
    from keyresponse.errors import ConfigError
    from keyresponse.inventory import load_inventory

    p = tmp_path / "keyresponse.yaml"
    p.write_text("providers:\n  openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}\n"
                 "platforms:\n  github: {kind: github, token_env: GITHUB_TOKEN}\n"
                 "keys:\n  a:\n    targets:\n"
                 "      - kind: github\n        repo: o/r\n        environment: production\n"
                 "        dependabot: true\n        secret: K\n")
    with pytest.raises(ConfigError) as info:
        load_inventory(p)
    assert info.value.line == 11 and "dependabot" in str(info.value) and "environment" in str(info.value)


def test_secret_never_in_requests_or_errors(gh: FakeGitHub) -> None:
    secret = new_secret()
    seen: list[str] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url) + request.content.decode() + str(request.headers))
        return gh(request)

    client = build_client("github", "https://gh.test/api", {"Authorization": f"Bearer {TOKEN}"},
                          transport=httpx.MockTransport(spy))
    t = GitHubSecret(GitHubTarget(kind="github", repo="acme/chatbot", secret="OPENAI_API_KEY"),
                     lambda: client, Shared())
    t.write(secret)
    check_not_in(secret.reveal(), "".join(seen), "a request (it must go sealed)")


def test_rate_limit_pauses_every_request_to_the_host(gh: FakeGitHub) -> None:
    import threading

    shared = Shared(bound=4)
    gh.inject = [httpx.Response(403, headers={"retry-after": "1"}, json={"message": "secondary rate limit"})]
    first = threading.Thread(target=make(gh, shared, repo="acme/chatbot").preflight)
    started = time.monotonic()
    first.start()
    time.sleep(0.2)
    [check] = make(gh, shared, org="acme").preflight()  # another target, same host: waits too
    assert check.ok and time.monotonic() - started >= 0.9
    first.join()


def test_the_report_links_the_dispatched_run() -> None:
    from keyresponse.report import model as report_model
    from keyresponse.report import render, sample

    run = "https://github.com/acme/chatbot/actions/runs/9001"
    records = sample.records()
    for rec in records:
        for row in (rec.get("outputs") or {}).get("targets") or []:
            if row["kind"] == "github":
                row["run_url"] = run  # from what the target's restart() returned
            elif row["kind"] == "gitlab":
                row["run_url"] = "javascript:alert(1)"  # never a link
    model = report_model.build(records, incident_id="inc-1", incident_dir="/tmp/inc-1")
    rows = {r["kind"]: r for r in model["targets"]["rows"]}
    assert rows["github"]["run_url"] == run and rows["github"]["restarted"] is True
    assert rows["gitlab"]["run_url"] is None
    assert f"([run]({run}))" in render.render(model, "md")
    html = render.render(model, "html")
    assert f'<a href="{run}">run</a>' in html and "javascript:" not in html


def test_the_report_links_a_run_from_a_separate_restart_step() -> None:
    import copy

    from keyresponse.report import model as report_model
    from keyresponse.report import sample

    run = "https://github.com/acme/chatbot/actions/runs/9002"
    records = sample.records()
    deploy_end = next(i for i, r in enumerate(records) if r.get("step") == "deploy" and r["event"] == "step.finished")
    started = copy.deepcopy(records[deploy_end - 1]) | {"step": "restart", "uses": "targets.restart"}
    target = "GitHub secret acme/chatbot:OPENAI_API_KEY"
    finished = copy.deepcopy(records[deploy_end]) | {
        "step": "restart", "uses": "targets.restart", "status": "applied", "error": None,
        "outputs": {"restarted": [target], "ids": ["x"], "failed": 0, "runs": {target: run}}}
    records[deploy_end + 1:deploy_end + 1] = [started, finished]
    rows = {r["target"]: r for r in report_model.build(records, incident_id="i", incident_dir="/tmp/i")["targets"]["rows"]}
    assert rows[target]["run_url"] == run and rows[target]["restarted"] is True


def test_a_deploy_row_keeps_restarted_boolean_and_carries_the_run(gh: FakeGitHub) -> None:
    from keyresponse.actions.targets import _deploy_one

    row = _deploy_one(make(gh, repo="acme/chatbot", workflow="deploy.yml"), new_secret(), True)
    assert row["status"] == "applied" and row["restarted"] is True
    assert row["run_url"] == "https://github.com/acme/chatbot/actions/runs/9001"
