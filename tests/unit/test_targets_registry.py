"""The target and platform registries are the inventory's seam: its unions and JSON
Schema are built from them, each kind's module brings its own checks, and the CLI's
start-up imports none of them."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from keyresponse import targets
from keyresponse.errors import ConfigError
from keyresponse.fields import CREDENTIAL_MARK
from keyresponse.inventory import Inventory, json_schema, load_inventory


def test_the_schema_lists_exactly_the_registered_kinds() -> None:
    schema = json_schema()
    items = schema["$defs"]["KeyEntry"]["properties"]["targets"]["items"]
    assert sorted(items["discriminator"]["mapping"]) == sorted(targets.TARGETS)
    platforms = schema["properties"]["platforms"]["additionalProperties"]
    assert sorted(platforms["discriminator"]["mapping"]) == sorted(targets.PLATFORMS)
    for kind in targets.TARGETS:
        assert targets.target_kind(kind).kind == kind


def test_credential_fields_are_marked_in_the_schema() -> None:
    defs = json_schema()["$defs"]
    assert defs["GitHubPlatform"]["properties"]["token_env"][CREDENTIAL_MARK] is True
    assert defs["OpenAISettings"]["properties"]["admin_key_env"][CREDENTIAL_MARK] is True
    assert CREDENTIAL_MARK not in defs["CommandTarget"]["properties"]["env_name"]  # names where the key goes


def test_every_credential_env_name_is_listed() -> None:
    model = Inventory.model_validate({
        "providers": {"openai": {"kind": "openai", "admin_key_env": "A_ADMIN"}},
        "platforms": {"gh": {"kind": "github", "token_env": "A_GH"}, "gl": {"kind": "gitlab", "token_env": "A_GL"},
                      "gh2": {"kind": "github", "token_env": "A_GH"}},
        "notify": {"slack": {"token_env": "A_SLACK", "channel": "C1"}},
        "keys": {"k": {"secret_env": "A_LIVE", "targets": [
            {"kind": "command", "argv": ["true"], "secret_via": "env", "env_name": "APP_KEY"}]},
            "j": {}},
    })
    assert model.credential_env_names() == ["A_ADMIN", "A_GH", "A_GL", "A_SLACK", "A_LIVE"]


def test_each_kind_brings_its_own_load_time_checks(tmp_path: Path) -> None:
    p = tmp_path / "keyresponse.yaml"
    p.write_text("providers: {openai: {kind: openai, admin_key_env: X}}\n"
                 "platforms: {github: {kind: github, token_env: T}}\n"
                 "keys:\n  k:\n    targets:\n      - {kind: github, repo: o/r, org: o, secret: K}\n")
    with pytest.raises(ConfigError, match="exactly one of `repo:` or `org:`") as info:
        load_inventory(p)
    assert info.value.line == 6
    p.write_text("providers: {openai: {kind: openai, admin_key_env: X}}\n"
                 "platforms: {gitlab: {kind: github, token_env: T}}\n"
                 "keys:\n  k:\n    targets:\n      - {kind: gitlab, project: 7, variable: K}\n")
    with pytest.raises(ConfigError, match="platform 'gitlab', which is not a gitlab entry") as info:
        load_inventory(p)
    assert "{gitlab: {kind: gitlab, token_env: ...}}" in (info.value.hint or "")


def test_a_module_that_is_not_a_target_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="lacks Settings, from_config"):
        targets.register(types.SimpleNamespace(kind="half"))
    assert "half" not in targets.target_kinds()


def test_cli_start_up_imports_no_target_module() -> None:
    code = ("import sys, keyresponse.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('keyresponse.targets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
