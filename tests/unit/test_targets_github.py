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
            self.dispatches.append({"repo": m[1], "workflow": m[2], **_json(request)})
            return httpx.Response(204)
        scope = _scope(path)
        rest = path.rsplit("/secrets/", 1)[1]
        if rest == "public-key":
            private, kid = self.key(scope)
            return httpx.Response(200, json={"key_id": kid, "key": base64.b64encode(bytes(private.public_key)).decode()})
        name, _, sub = rest.partition("/")
        current = self.secrets.get(scope, {}).get(name)
        if sub == "repositories":
            ids = self.selected[name]
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


def test_restart_dispatches_the_workflow(gh: FakeGitHub) -> None:
    t = make(gh, repo="acme/chatbot", workflow="deploy.yml", ref="release")
    assert t.restart_what == "dispatch workflow deploy.yml on release in acme/chatbot"
    assert t.restart() is True
    assert gh.dispatches == [{"repo": "acme/chatbot", "workflow": "deploy.yml", "ref": "release"}]
    assert make(gh, repo="acme/chatbot").restart() is None


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
