"""An inventory whose `org-admin` entry is the admin key keyresponse itself uses, living in
the sandbox's env file (its own source), a GitHub org secret, a GitLab variable and a
command target (a script that copies the value to a file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import World

STORE = "vault/admin.key"  # where the command target's script keeps the value
SCRIPT = "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(exist_ok=True); " \
         "p.write_text(sys.stdin.read().strip())"


def admin_entry(key_id: str) -> str:
    return f"""  org-admin:
    kind: admin
    key_id: {key_id}
    admin: {{source: 1}}
    targets:
      - {{kind: envfile, path: sandbox.env, variables: [OPENAI_ADMIN_KEY]}}
      - {{kind: github, org: acme, secret: OPENAI_ADMIN_KEY, create: true}}
      - {{kind: gitlab, project: acme/chatbot, variable: OPENAI_ADMIN_KEY, environment_scope: "*", create: true}}
      - {{kind: command, name: vault, argv: ["{sys.executable}", "-c", "{SCRIPT}", "{STORE}"]}}
"""


def own_admin(sandbox: Any) -> dict[str, Any]:
    """The seeded admin key keyresponse authenticates with (the leaked one here)."""
    value = sandbox.env["OPENAI_ADMIN_KEY"]
    return dict(next(a for a in sandbox.state.admin_keys.values() if a["value"] == value))


def make_world(sandbox: Any, directory: Path) -> World:
    sandbox.write_config(directory)
    config = directory / "keyresponse.yaml"
    text = config.read_text()  # the generated org-admin entry (its env file only), with more targets
    config.write_text(text[:text.index("  org-admin:\n")] + admin_entry(own_admin(sandbox)["id"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update(sandbox.env)
    env.update({"NO_COLOR": "1", "PYTHONPATH": str(REPO)})
    world = World(directory, sandbox, env, {k["id"] for k in sandbox.state.openai_keys()})
    return world


@pytest.fixture
def admin_world(sandbox: Any, tmp_path: Path) -> World:
    return make_world(sandbox, tmp_path)


def assert_admin_restored(world: World, seeded: set[str], leaked_id: str) -> str:
    """The leaked admin key dead, exactly one live admin key made by the incident, the
    seed's other admin keys untouched, every target holding the new one, the inventory
    naming it. Returns its value."""
    import yaml

    state = world.sandbox.state
    keys = state.admin_keys
    assert not keys[leaked_id]["live"], "the leaked admin key is still live"
    assert all(keys[k]["live"] for k in seeded if k != leaked_id), "an unrelated admin key was deleted"
    new = [a for k, a in keys.items() if k not in seeded and a["live"]]
    assert len(new) == 1, f"expected one live new admin key, found {[a['id'] for a in new]}"
    value = str(new[0]["value"])
    env_file = (world.dir / "sandbox.env").read_text()
    assert f"OPENAI_ADMIN_KEY={value}\n" in env_file
    assert state.github_secret_value("org:acme", "OPENAI_ADMIN_KEY") == value
    assert state.gitlab_variable("project:acme/chatbot", "OPENAI_ADMIN_KEY")["value"] == value
    assert (world.dir / STORE).read_text() == value
    recorded = yaml.safe_load(world.config.read_text())["keys"]["org-admin"]["key_id"]
    assert recorded == new[0]["id"], "the inventory does not name the new admin key"
    return value
