"""Every kind of playbook and inventory error names file, line and column, and what to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keyresponse.errors import ConfigError, SecretLeakRefused
from keyresponse.inventory import load_inventory
from keyresponse.playbook import load_playbook
from tests.conftest import fake_key


def _pb(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pb.yaml"
    p.write_text(text)
    return p


def _error(path: Path, loader: Callable[[Path], object] = load_playbook) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loader(path)
    return info.value


GOOD_STEP = "  - {id: a, uses: log.message, with: {message: hi}}\n"

PLAYBOOK_CASES = [
    # (name, text, line, fragment of the message)
    ("syntax", "name: x\nsteps: [\n", 3, "invalid YAML"),
    ("duplicate key", "name: x\nname: y\nsteps:\n" + GOOD_STEP, 2, "duplicate key 'name'"),
    ("anchor", "name: &n x\nsteps:\n" + GOOD_STEP, 1, "anchors and aliases"),
    ("alias", "name: x\nsteps:\n  - &s {id: a, uses: log.message, with: {message: hi}}\n  - *s\n", 3, "anchors"),
    ("merge key", "name: x\nsteps:\n  - {<<: {id: a}, uses: log.message}\n", 3, "merge keys"),
    ("unknown field", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    whith: {}\n", 5, "unknown field 'whith'"),
    ("missing steps", "name: x\n", 1, "missing required field 'steps'"),
    ("bad step id", "name: x\nsteps:\n  - {id: Bad-Id, uses: log.message, with: {message: m}}\n", 3, "step #1, id"),
    ("unknown uses", "name: x\nsteps:\n  - id: a\n    uses: key.revokee\n", 4, "unknown action 'key.revokee'"),
    ("duplicate id", "name: x\nsteps:\n" + GOOD_STEP + GOOD_STEP, 4, "duplicate step id 'a'"),
    ("unknown with", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    with:\n      message: m\n      colour: red\n",
     7, "has no option 'colour'"),
    ("missing with", "name: x\nsteps:\n  - id: a\n    uses: log.message\n", 3, "needs `with: {message"),
    ("later ref", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    with: {message: '${{ steps.b.outputs.m }}'}\n"
     "  - id: b\n    uses: log.message\n    with: {message: m}\n", 5, "steps.b, which comes later"),
    ("missing ref", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    with: {message: '${{ steps.zz.outputs.m }}'}\n",
     5, "does not exist"),
    ("bad expression", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    with: {message: '${{ inputs. }}'}\n",
     5, "invalid expression"),
    ("unknown name", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    with: {message: '${{ os.environ }}'}\n",
     5, "unknown name(s) os"),
    ("bad if", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    if: 'steps.q.status == 1'\n    with: {message: m}\n",
     5, "does not exist"),
    ("wrong type", "name: x\nsteps:\n  - id: a\n    uses: log.message\n    retries: many\n    with: {message: m}\n",
     5, "step #1, retries"),
    ("not a mapping", "- just\n- a list\n", 1, "must be a mapping"),
]


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both of PyYAML's parsers: libyaml where PyYAML was built with it, the Python one elsewhere."""
    import yaml

    from keyresponse import yamlio

    if request.param == "libyaml" and not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this PyYAML was built without libyaml")
    if request.param == "pure-python":
        monkeypatch.setattr(yamlio, "_loader", lambda: yaml.SafeLoader)
    return str(request.param)


@pytest.mark.parametrize("name,text,line,fragment", PLAYBOOK_CASES, ids=[c[0] for c in PLAYBOOK_CASES])
def test_playbook_errors_name_file_line_and_problem(tmp_path: Path, name: str, text: str, line: int, fragment: str,
                                                    parser: str) -> None:
    err = _error(_pb(tmp_path, text))
    assert err.file and err.file.endswith("pb.yaml")
    assert err.line == line, str(err)
    assert err.column is not None
    assert fragment in str(err)
    assert str(err).startswith(f"{err.file}:{line}:")


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path, parser: str) -> None:
    depth = 20_000
    err = _error(_pb(tmp_path, "name: " + "[" * depth + "]" * depth + "\nsteps: []\n"))
    assert "nest" in str(err) and err.file and err.file.endswith("pb.yaml")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    p = _pb(tmp_path, "name: x\n# " + "x" * (1024 * 1024) + "\n")
    assert "larger than" in str(_error(p))


def test_error_hint_says_what_to_do(tmp_path: Path) -> None:
    err = _error(_pb(tmp_path, "name: x\nsteps:\n  - id: a\n    uses: log.mesage\n    with: {message: m}\n"))
    assert err.hint and "did you mean 'log.message'" in err.hint


INV_HEAD = "providers:\n  openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}\n"


def test_inventory_unknown_target_kind(tmp_path: Path) -> None:
    p = tmp_path / "keyresponse.yaml"
    p.write_text(INV_HEAD + "keys:\n  a:\n    targets:\n      - {kind: ftp, path: x}\n")
    err = _error(p, load_inventory)
    assert err.line == 6 and "unknown target kind" in str(err) and "choose one of envfile" in str(err)


def test_inventory_unknown_provider_reference(tmp_path: Path) -> None:
    p = tmp_path / "keyresponse.yaml"
    p.write_text(INV_HEAD + "keys:\n  a:\n    provider: anthropic\n")
    err = _error(p, load_inventory)
    assert err.line == 5 and "names provider 'anthropic'" in str(err)
    assert err.hint and "providers:" in err.hint


def test_inventory_github_target_needs_platform(tmp_path: Path) -> None:
    p = tmp_path / "keyresponse.yaml"
    p.write_text(INV_HEAD + "keys:\n  a:\n    targets:\n      - {kind: github, repo: o/r, secret: K}\n")
    err = _error(p, load_inventory)
    assert err.line == 6 and "platform 'github'" in str(err)


@pytest.mark.parametrize("field", ["admin_key_env", "secret_env", "note"])
def test_literal_secret_in_inventory_is_refused(tmp_path: Path, field: str) -> None:
    value = fake_key("inv")
    p = tmp_path / "keyresponse.yaml"
    if field == "admin_key_env":
        p.write_text(f"providers:\n  openai: {{kind: openai, admin_key_env: {value}}}\n")
        line = 2
    elif field == "secret_env":
        p.write_text(INV_HEAD + f"keys:\n  a:\n    secret_env: {value}\n")
        line = 5
    else:
        p.write_text(INV_HEAD + f"keys:\n  a:\n    description: 'old key was {value}'\n")
        line = 5
    with pytest.raises(SecretLeakRefused) as info:
        load_inventory(p)
    err = info.value
    assert err.line == line
    assert "literal OpenAI key" in str(err)
    assert value not in str(err)  # the refusal must not echo the secret
    assert err.hint and "environment variable" in err.hint


def test_literal_token_suggests_the_env_var(tmp_path: Path) -> None:
    token = "gh" + "p_" + "Z" * 36
    p = tmp_path / "keyresponse.yaml"
    p.write_text(f"platforms:\n  github: {{kind: github, token_env: {token}}}\n")
    with pytest.raises(SecretLeakRefused) as info:
        load_inventory(p)
    assert "GITHUB_TOKEN" in (info.value.hint or "")


def test_literal_secret_in_a_playbook_is_refused(tmp_path: Path) -> None:
    value = fake_key("pb")
    p = _pb(tmp_path, f"name: x\nsteps:\n  - id: a\n    uses: log.message\n    with: {{message: 'use {value}'}}\n")
    with pytest.raises(SecretLeakRefused) as info:
        load_playbook(p)
    assert info.value.line == 5 and value not in str(info.value)


def test_a_key_without_provider_belongs_to_the_only_provider_whatever_its_name(tmp_path: Path) -> None:
    (tmp_path / "keyresponse.yaml").write_text(
        "providers:\n  main: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}\nkeys:\n  app: {project: proj_x}\n")
    inventory = load_inventory(tmp_path / "keyresponse.yaml")
    assert inventory.key("app").provider == "main"
