"""Targets against the sandbox over real HTTP: what the sandbox holds afterwards
(decrypted GitHub secrets, GitLab variables, dispatches), never call lists; and
every file the run wrote is searched for the new value."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from keyresponse.actions.targets import Deploy, DeployArgs
from keyresponse.engine import Mode, RunResult
from keyresponse.errors import TargetError
from tests.helpers.target_contract import Clients, check_equal, check_in, check_not_in, make_ctx, new_secret
from tests.integration.conftest import run_steps


@pytest.fixture
def world(sandbox_config: Path, quick_retries: None) -> Path:
    """The sandbox's inventory in tmp_path, its credentials in the environment, quick retries."""
    return sandbox_config


@pytest.fixture
def clients() -> Any:
    made = Clients()
    yield made
    made.close()


def run(config: Path, steps: str, mode: Mode = Mode.APPLY) -> RunResult:
    return run_steps(config, steps, mode=mode)


def everything_written(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (folder / ".keyresponse").rglob("*") if p.is_file())


ISSUE_AND_DEPLOY = """\
- {id: issue, uses: key.issue}
- {id: deploy, uses: targets.deploy, with: {secret: "${{ steps.issue.outputs.secret }}", restart: true}}
"""


def test_every_target_of_the_seeded_key_gets_exactly_the_new_value(world: Path, sandbox: Any) -> None:
    st = sandbox.state
    staging_before = st.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY", "staging")["value"]
    result = run(world, ISSUE_AND_DEPLOY)
    assert result.ok, [(s.id, s.error) for s in result.steps]
    new = st.openai_key_value(result.steps[0].outputs["key_id"])
    for scope in ("repo:acme/chatbot", "env:acme/chatbot:production", "org:acme"):
        check_equal(st.github_secret_value(scope, "OPENAI_API_KEY"), new)
    org = st.github["secrets"]["org:acme"]["OPENAI_API_KEY"]
    assert org["visibility"] == "selected" and sorted(org["selected_repository_ids"]) == [700101, 700102]
    var = st.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY", "*")
    check_equal(var["value"], new)
    assert var["masked"] is True and var["protected"] is False
    assert st.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY", "staging")["value"] == staging_before
    for rel, other in (("apps/chatbot/.env", "APP_ENV=production\nLOG_LEVEL=info\n"),
                       ("apps/worker/.env", "QUEUE_URL=redis://localhost:6379/0\n")):
        check_equal((world.parent / rel).read_text(), other + f"OPENAI_API_KEY={new}\n")
    assert [(d["repo"], d["workflow"], d["ref"]) for d in st.github_dispatches] == [("acme/chatbot", "deploy.yml", "main")]
    deploy = result.steps[1].outputs
    assert deploy["applied"] == 6 and deploy["failed"] == 0
    assert all(r["verified"] for r in deploy["targets"])
    assert [r["restarted"] for r in deploy["targets"]] == [None, None, None, True, None, None]
    check_not_in(new, everything_written(world.parent), "the incident folder")


def test_a_token_without_access_fails_only_its_target(world: Path, sandbox: Any, tmp_path: Path,
                                                     clients: Clients) -> None:
    gh = sandbox.urls["github"]
    inventory = {
        "platforms": {"github": {"kind": "github", "base_url": gh, "token_env": "GITHUB_TOKEN"},
                      "limited": {"kind": "github", "base_url": gh, "token_env": "GITHUB_TOKEN_LIMITED"}},
        "keys": {"k": {"targets": [
            {"kind": "github", "platform": "limited", "repo": "acme/chatbot", "secret": "OPENAI_API_KEY"},
            {"kind": "github", "platform": "limited", "repo": "acme/billing-api", "secret": "OPENAI_API_KEY",
             "create": True},
            {"kind": "github", "platform": "limited", "repo": "acme/chatbot", "environment": "production",
             "secret": "OPENAI_API_KEY"},
            {"kind": "github", "platform": "github", "org": "acme", "secret": "OPENAI_API_KEY"},
        ]}}}
    ctx, events = make_ctx(tmp_path, inventory, http=clients)
    secret = new_secret()
    plan = Deploy().plan(DeployArgs(secret=secret), ctx)
    checks = Deploy().preflight(plan, ctx)
    [bad] = [c for c in checks if not c.ok]
    assert bad.what == "GitHub secret acme/billing-api:OPENAI_API_KEY (platform limited)" and "404" in bad.detail
    assert "token cannot see or write secrets in acme/billing-api" in (bad.fix or "")
    with pytest.raises(TargetError) as info:
        Deploy().apply(plan, ctx)
    text = str(info.value)
    assert text.startswith("1 of 4 targets: failed:\n  - GitHub secret acme/billing-api:OPENAI_API_KEY (platform limited): ")
    assert "GET /github/repos/acme/billing-api/actions/secrets/public-key -> 404" in text and "request id" in text
    for scope in ("repo:acme/chatbot", "env:acme/chatbot:production", "org:acme"):
        check_equal(sandbox.state.github_secret_value(scope, "OPENAI_API_KEY"), secret.reveal())
    assert "OPENAI_API_KEY" not in sandbox.state.github["secrets"]["repo:acme/billing-api"]
    assert len(events.progress) == 4
    check_not_in(secret.reveal(), text + "\n".join(events.progress) + everything_written(tmp_path), "outputs")
    for token in ("GITHUB_TOKEN", "GITHUB_TOKEN_LIMITED"):
        check_not_in(sandbox.env[token], text + everything_written(tmp_path), "outputs")


def _one_target(tmp_path: Path, sandbox: Any, clients: Clients, **target: Any) -> tuple[Any, Any]:
    kind = target["kind"]
    inventory = {"platforms": {kind: {"kind": kind, "base_url": sandbox.urls[kind], "token_env":
                                      "GITHUB_TOKEN" if kind == "github" else "GITLAB_TOKEN"}},
                 "keys": {"k": {"targets": [target]}}}
    return make_ctx(tmp_path, inventory, http=clients)


def test_public_key_rotated_between_preflight_and_write(world: Path, sandbox: Any, tmp_path: Path, clients: Clients) -> None:
    ctx, _ = _one_target(tmp_path, sandbox, clients, kind="github", repo="acme/chatbot", secret="OPENAI_API_KEY")
    secret = new_secret()
    plan = Deploy().plan(DeployArgs(secret=secret), ctx)
    assert all(c.ok for c in Deploy().preflight(plan, ctx))  # caches the key
    sandbox.add_fault(service="github", method="PUT", path="/repos/acme/chatbot/actions/secrets/*",
                      kind="rotate_public_key", count=1)
    Deploy().apply(plan, ctx)
    check_equal(sandbox.state.github_secret_value("repo:acme/chatbot", "OPENAI_API_KEY"), secret.reveal())


def test_secondary_rate_limit_and_a_failed_answer_after_commit(world: Path, sandbox: Any, tmp_path: Path, clients: Clients) -> None:
    ctx, _ = _one_target(tmp_path, sandbox, clients, kind="github", repo="acme/chatbot", secret="OPENAI_API_KEY")
    sandbox.add_fault(service="github", method="GET", path="*/public-key", kind="status", status=403,
                      retry_after="1", count=1)
    sandbox.add_fault(service="github", method="PUT", path="*", kind="commit_then_fail", status=502, count=1)
    secret = new_secret()
    started = time.monotonic()
    out = Deploy().apply(Deploy().plan(DeployArgs(secret=secret), ctx), ctx)
    assert time.monotonic() - started >= 0.9 and out["targets"][0]["verified"] is True
    check_equal(sandbox.state.github_secret_value("repo:acme/chatbot", "OPENAI_API_KEY"), secret.reveal())


def test_gitlab_variable_and_pipeline(world: Path, sandbox: Any, tmp_path: Path, clients: Clients) -> None:
    ctx, _ = _one_target(tmp_path, sandbox, clients, kind="gitlab", project="acme/chatbot", variable="OPENAI_API_KEY",
                         environment_scope="staging", pipeline_ref="main")
    secret = new_secret()
    out = Deploy().apply(Deploy().plan(DeployArgs(secret=secret, restart=True), ctx), ctx)
    assert out["targets"][0]["verified"] is True and out["targets"][0]["restarted"] is True
    var = sandbox.state.gitlab_variable("project:acme/chatbot", "OPENAI_API_KEY", "staging")
    check_equal(var["value"], secret.reveal())
    assert var["masked"] is True and [p["ref"] for p in sandbox.state.gitlab_pipelines] == ["main"]


def test_dry_run_shows_every_target_and_changes_nothing(world: Path, sandbox: Any) -> None:
    before = sandbox.state.mutation_count
    env_before = (world.parent / "apps/chatbot/.env").read_text()
    result = run(world, ISSUE_AND_DEPLOY, mode=Mode.PLAN)
    deploy = result.steps[1]
    assert deploy.status == "planned", deploy.error
    assert len(deploy.changes) == 6 and all(c.startswith("write the new secret to ") for c in deploy.changes)
    assert len(deploy.checks) == 6 and all(c.ok for c in deploy.checks)
    assert sandbox.state.mutation_count == before
    check_in("OPENAI_API_KEY=", (world.parent / "apps/chatbot/.env").read_text())
    assert (world.parent / "apps/chatbot/.env").read_text() == env_before
