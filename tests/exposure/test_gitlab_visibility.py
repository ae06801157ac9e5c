"""GitLab projects the inventory names in `exposure.repos[].gitlab`: the scan asks the sandbox's
GET /projects/:id over loopback whether each is public, and the root cause and the fixes say so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyresponse.actions.exposure import Scan, ScanArgs
from keyresponse.exposure import cause
from keyresponse.sandbox.seed_git import FastImport
from keyresponse.secret import Secret
from tests.conftest import fake_key
from tests.helpers.target_contract import Clients, make_ctx


def _repo(path: Path, value: str, when: int) -> None:
    fi = FastImport()
    prev = fi.commit("refs/heads/main", when, "initial", {"README.md": b"# app\n"})
    prev = fi.commit("refs/heads/main", when + 60, "config", {".env": b"OPENAI_API_KEY=" + value.encode() + b"\n"},
                     parent=prev)
    fi.commit("refs/heads/main", when + 120, "drop config", {".env": None}, parent=prev)
    fi.run(path)


def test_public_and_private_gitlab_projects(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", sandbox.env["GITLAB_TOKEN"])
    sandbox.state.gitlab["projects"]["42"]["visibility"] = "public"
    sandbox.state.gitlab["projects"]["43"]["visibility"] = "private"
    value = fake_key("gitlab")
    _repo(tmp_path / "chatbot", value, 1_700_000_000)
    _repo(tmp_path / "worker", value, 1_700_100_000)
    inventory = {"providers": {"openai": {"kind": "openai", "admin_key_env": "X_ADMIN"}},
                 "platforms": {"gl": {"kind": "gitlab", "base_url": sandbox.urls["gitlab"], "token_env": "GITLAB_TOKEN"}},
                 "keys": {"k": {"targets": []}},
                 "exposure": {"repos": [{"path": "chatbot", "gitlab": "acme/chatbot"},
                                        {"path": "worker", "gitlab": 43},
                                        {"path": "chatbot", "name": "unknown", "gitlab": "acme/nope"}]}}
    clients = Clients(read_only=True)
    try:
        ctx, _ = make_ctx(tmp_path, inventory, step_id="exposure", http=clients)
        action = Scan()
        out = action.apply(action.plan(ScanArgs(leaked=Secret(value)), ctx), ctx)
    finally:
        clients.close()
    rows = {r["name"]: r for r in out["repos"]}
    assert (rows["chatbot"]["public"], rows["chatbot"]["visibility"]) == (True, "public")
    assert (rows["worker"]["public"], rows["worker"]["visibility"]) == (False, "private")
    assert rows["chatbot"]["html_url"] == "https://gitlab.example/acme/chatbot"
    assert rows["unknown"]["public"] is None and "404" in rows["unknown"]["gitlab_error"]
    assert out["cause"]["class"] == "committed-env" and out["cause"]["public"] is True
    assert out["cause"]["visibility"] == "public"
    by_repo = {f["repo"]: f["public"] for f in out["findings"]}
    assert by_repo == {"chatbot": True, "worker": False, "unknown": None}
    root = cause.root_cause(out["findings"], out["repos"], None)
    fixes = {f["title"]: f["detail"] for f in cause.prevention(root, out["findings"], out["repos"])}
    assert "The repository is public" in fixes["Rewrite chatbot's history"]
    assert "The repository is public" not in fixes["Rewrite worker's history"]
    # the private one first: the root cause says private
    private_first = [f for f in out["findings"] if f["repo"] == "worker"] + \
        [f | {"first_seen": "2030-01-01T00:00:00Z"} for f in out["findings"] if f["repo"] == "chatbot"]
    assert cause.root_cause(private_first, out["repos"], None)["public"] is False
    assert value not in json.dumps(out, default=str)
    assert sandbox.env["GITLAB_TOKEN"] not in json.dumps(out, default=str)
