"""A target kind added from the test suite alone: this module is the whole kind (its
settings, its platform, `from_config` and the target), registered with
`keyresponse.targets.register` in-process and through KEYRESPONSE_TARGET_MODULES in a
`keyresponse` subprocess, which then runs a whole leaked-key incident onto it.

The kind is a "keystore": a platform that is a folder (the service) plus a token the
platform needs, and targets that are named entries in it. A folder needs no sandbox
emulator; a kind that speaks HTTP would add one beside its module.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import pytest
from pydantic import Field

from keyresponse.errors import KeyresponseError, TargetError
from keyresponse.fields import credential_env
from keyresponse.inventory import PlatformSettings, TargetSettings
from keyresponse.targets.base import identity

if TYPE_CHECKING:
    from keyresponse.action import Check, StepContext
    from keyresponse.secret import Secret
    from keyresponse.targets.base import TargetEnv
    from tests.e2e.conftest import World

kind = "keystore"


class KeystorePlatform(PlatformSettings):
    kind: Literal["keystore"] = "keystore"
    root: str = Field(description="The keystore's folder")
    token_env: str = credential_env("Env var holding the keystore's token")

    def address(self) -> str:
        return os.path.realpath(self.root)


class KeystoreTarget(TargetSettings):
    platform_kind = "keystore"

    kind: Literal["keystore"]
    platform: str = "keystore"
    entry: str = Field(pattern=r"^[a-z0-9-]+$")

    def platform_name(self) -> str | None:
        return self.platform


Settings = KeystoreTarget
Platform = KeystorePlatform


def from_config(settings: TargetSettings, env: TargetEnv) -> Keystore:
    assert isinstance(settings, KeystoreTarget) and isinstance(env.platform, KeystorePlatform)
    return Keystore(settings, env.platform, env.ctx)


class Keystore:
    kind: ClassVar[str] = "keystore"
    restart_what: str | None = None

    def __init__(self, cfg: KeystoreTarget, platform: KeystorePlatform, ctx: StepContext) -> None:
        self.cfg, self.platform, self.ctx = cfg, platform, ctx
        self.identity = identity(kind, platform.address(), cfg.entry)
        self.path = Path(platform.root) / cfg.entry

    def describe(self) -> str:
        return f"keystore entry {self.cfg.entry}"

    def _token(self) -> str:
        return self.ctx.inventory.credential(self.platform.token_env, f"keystore {self.cfg.platform!r}")

    def preflight(self) -> list[Check]:
        from keyresponse.action import Check

        try:
            self._token()
        except KeyresponseError as exc:
            return [Check(self.describe(), False, exc.message, exc.hint or "set the token")]
        if not self.path.parent.is_dir():
            return [Check(self.describe(), False, f"{self.path.parent} is missing", "create the keystore folder")]
        return [Check(self.describe(), True, "keystore reachable")]

    def write(self, secret: Secret) -> str | None:
        self._token()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret.reveal())
        return None

    def verify(self, secret: Secret) -> bool:
        if self.path.read_text() != secret.reveal():
            raise TargetError(self.describe(), "reads back a different value")
        return True

    def restart(self) -> bool | None:
        return None


# --- the tests

MODULE = __name__


def _add_keystore(world: World) -> Path:
    """The sandbox's inventory, plus a keystore platform, a keystore target and a command
    target that dumps its environment, on the leaked key."""
    import yaml

    store = world.dir / "keystore"
    store.mkdir()
    data = yaml.safe_load(world.config.read_text())
    data["platforms"]["vault"] = {"kind": "keystore", "root": str(store), "token_env": "KEYSTORE_TOKEN"}
    dump = "import json, os; open('child-env.json', 'w').write(json.dumps(sorted(os.environ)))"
    data["keys"]["chatbot-prod"]["targets"] += [
        {"kind": "keystore", "platform": "vault", "entry": "chatbot"},
        {"kind": "command", "name": "env dump", "argv": [sys.executable, "-c", dump]},
    ]
    world.config.write_text(yaml.safe_dump(data, sort_keys=False))
    return store


def test_a_leaked_key_incident_deploys_to_a_kind_the_tests_registered(world: World) -> None:
    from tests.e2e.conftest import assert_restored

    store = _add_keystore(world)
    env = {"KEYRESPONSE_TARGET_MODULES": MODULE, "KEYSTORE_TOKEN": "ks-" + secrets.token_hex(16)}
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["ok"]
    new_value = assert_restored(world)  # every built-in target too
    assert (store / "chatbot").read_text() == new_value, "the keystore entry does not hold the new key"
    deploy = next(s for s in result["steps"] if s["id"] == "deploy")
    [row] = [r for r in deploy["outputs"]["targets"] if r["kind"] == "keystore"]
    assert row["status"] == "applied" and row["verified"] is True
    assert row["id"] == f"keystore|{os.path.realpath(store)}|chatbot"
    child_env = json.loads((world.dir / "child-env.json").read_text())
    assert "KEYSTORE_TOKEN" not in child_env  # a plug-in platform's credential is withheld too
    assert new_value not in world.everything_written(out.stdout, out.stderr)
    assert env["KEYSTORE_TOKEN"] not in world.everything_written(out.stdout, out.stderr)

    schema = world.kr("schema", "inventory", env=env)
    assert schema.returncode == 0, schema.stderr[-2000:]
    assert '"keystore"' in schema.stdout and "KeystoreTarget" in schema.stdout


def test_without_the_module_the_kind_is_unknown(world: World) -> None:
    _add_keystore(world)
    out = world.kr("validate")
    assert out.returncode == 2 and "keystore" in out.stderr


@pytest.fixture
def registered() -> Iterator[None]:
    from keyresponse import targets

    targets.register(sys.modules[MODULE])
    yield
    targets.unregister(kind)


def test_registered_in_process_the_inventory_takes_it(registered: None, tmp_path: Path) -> None:
    from keyresponse.inventory import json_schema, load_inventory

    (tmp_path / "keyresponse.yaml").write_text(
        "providers: {openai: {kind: openai, admin_key_env: KR_T_ADMIN}}\n"
        "platforms: {vault: {kind: keystore, root: store, token_env: KR_T_STORE}}\n"
        "keys:\n  k:\n    targets:\n      - {kind: keystore, platform: vault, entry: one}\n"
        "      - {kind: keystore, platform: nope, entry: two}\n")
    with pytest.raises(KeyresponseError, match="platform 'nope', which is not a keystore entry") as info:
        load_inventory(tmp_path / "keyresponse.yaml")
    assert "root: ..., token_env: ..." in (info.value.hint or "")
    text = (tmp_path / "keyresponse.yaml").read_text().replace("platform: nope, ", "platform: vault, ")
    (tmp_path / "keyresponse.yaml").write_text(text)
    inventory = load_inventory(tmp_path / "keyresponse.yaml")
    assert [t.kind for t in inventory.model.keys["k"].targets] == ["keystore", "keystore"]
    assert inventory.model.credential_env_names() == ["KR_T_ADMIN", "KR_T_STORE"]
    assert "KeystorePlatform" in json.dumps(json_schema())
