"""A ready inventory for the seeded organization: keyresponse.yaml, the env
files it names, and sandbox.env with the credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from keyresponse.sandbox.state import State

ENV_NAMES = ("OPENAI_ADMIN_KEY", "GITHUB_TOKEN", "GITHUB_TOKEN_LIMITED", "GITLAB_TOKEN", "SLACK_BOT_TOKEN",
             "CHATBOT_PROD_OPENAI_KEY", "SANDBOX_LEAKED_KEY")
# env file (relative to the inventory) -> (key name, other lines)
ENV_FILES = {
    "apps/chatbot/.env": ("chatbot-prod", ["APP_ENV=production", "LOG_LEVEL=info"]),
    "apps/worker/.env": ("chatbot-prod", ["QUEUE_URL=redis://localhost:6379/0"]),
    "apps/analytics/.env": ("analytics-dev", ["NOTEBOOK_DIR=./notebooks"]),
    "decoys/legacy.env": ("canary-monitor", ["# kept for the old deploy scripts"]),
}

_TEMPLATE = """\
# written by keyresponse sandbox: the inventory of its seeded organization (seed {seed}).
# Credentials come from the environment: `set -a; . ./sandbox.env; set +a` first.
version: 1
providers:
  openai:
    kind: openai
    base_url: {openai}
    admin_key_env: OPENAI_ADMIN_KEY
platforms:
  github: {{kind: github, base_url: {github}, token_env: GITHUB_TOKEN}}
  gitlab: {{kind: gitlab, base_url: {gitlab}, token_env: GITLAB_TOKEN}}
notify:
  slack:
    base_url: {slack}
    token_env: SLACK_BOT_TOKEN
    channel: "#incidents"
    drill_channel: "#keyresponse-drills"
keys:
  chatbot-prod:
    provider: openai
    project: {chatbot_project}
    key_id: {chatbot_key}
    secret_env: CHATBOT_PROD_OPENAI_KEY
    targets:
      - {{kind: envfile, path: apps/chatbot/.env, variables: [OPENAI_API_KEY]}}
      - {{kind: envfile, path: apps/worker/.env, variables: [OPENAI_API_KEY]}}
      - {{kind: github, repo: acme/chatbot, secret: OPENAI_API_KEY}}
      - {{kind: github, repo: acme/chatbot, environment: production, secret: OPENAI_API_KEY, workflow: deploy.yml, ref: main}}
      - {{kind: github, org: acme, secret: OPENAI_API_KEY}}
      - {{kind: gitlab, project: acme/chatbot, variable: OPENAI_API_KEY, environment_scope: "*"}}
  analytics-dev:
    provider: openai
    project: {analytics_project}
    key_id: {analytics_key}
    targets:
      - {{kind: envfile, path: apps/analytics/.env, variables: [OPENAI_API_KEY]}}
  canary-monitor:
    provider: openai
    project: {canary_project}
    key_id: {canary_key}
    canary: true
    targets:
      - {{kind: envfile, path: decoys/legacy.env, variables: [OPENAI_API_KEY]}}
  org-admin:
    # the admin key keyresponse itself uses (`leaked-admin-key --key org-admin`); it lives in
    # sandbox.env, which is also where a resumed run reads the new one back from
    kind: admin
    provider: openai
    key_id: {admin_key}
    admin: {{source: 1}}
    targets:
      - {{kind: envfile, path: sandbox.env, variables: [OPENAI_ADMIN_KEY]}}
"""


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def env(state: State) -> dict[str, str]:
    return {name: state.credentials[name] for name in ENV_NAMES}


def write(state: State, urls: dict[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write DIR/keyresponse.yaml, DIR/sandbox.env and the env files; return the inventory path."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    by_name = {k["name"]: k for k in state.keys.values()}
    fields: dict[str, Any] = {"seed": state.seed, **{k: urls[k] for k in ("openai", "github", "gitlab", "slack")}}
    for short, name in (("chatbot", "chatbot-prod"), ("analytics", "analytics-dev"), ("canary", "canary-monitor")):
        fields[f"{short}_project"] = by_name[name]["project_id"]
        fields[f"{short}_key"] = by_name[name]["id"]
    fields["admin_key"] = next(a["id"] for a in state.admin_keys.values()
                               if a["value"] == state.credentials["OPENAI_ADMIN_KEY"])
    inventory = root / "keyresponse.yaml"
    inventory.write_text(_TEMPLATE.format(**fields))
    for rel, (key_name, lines) in ENV_FILES.items():
        body = "\n".join([*lines, f"OPENAI_API_KEY={by_name[key_name]['value']}"]) + "\n"
        _write_private(root / rel, body)
    _write_private(root / "sandbox.env", "".join(f"{k}={v}\n" for k, v in env(state).items()))
    return inventory
