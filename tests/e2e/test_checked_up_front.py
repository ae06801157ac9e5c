"""Every `with:` that can be checked is checked before anything changes: a value that
can only fail is refused before the revoke, with the sandbox's mutation log empty."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import World

BUILTIN = Path(__file__).resolve().parents[2] / "src" / "keyresponse" / "playbooks" / "leaked-key.yaml"


def _playbook(world: World, edit: dict[str, dict[str, object]], inputs: dict[str, object] | None = None,
              extra: list[dict[str, object]] | None = None) -> Path:
    book = yaml.safe_load(BUILTIN.read_text())
    book["name"] = "hostile"
    book["inputs"].update(inputs or {})
    for step in book["steps"]:
        if step["id"] in edit:
            step.setdefault("with", {}).update(edit[step["id"]])
    for after, step in [(s.pop("after"), s) for s in extra or []]:
        at = next(i for i, s in enumerate(book["steps"]) if s["id"] == after)
        book["steps"].insert(at + 1, step)
    path = world.dir / "hostile.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return path


def _refused_before_any_change(world: World, out: object, *needles: str) -> None:
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]  # type: ignore[attr-defined]
    assert world.sandbox.state.mutations == [], world.sandbox.state.mutations
    assert world.sandbox.state.slack_messages == []
    err = out.stderr  # type: ignore[attr-defined]
    assert "unexpected" not in err, err
    for needle in needles:
        assert needle in err, err


def test_a_late_step_reading_only_inputs_is_validated_before_the_first_step(world: World) -> None:
    path = _playbook(world, {"audit": {"days": "${{ inputs.severity }}"}})
    out = world.kr("run", str(path), "--key", "chatbot-prod", "--yes")
    _refused_before_any_change(world, out, "audit", "days")


def test_a_step_output_of_the_wrong_shape_is_refused_in_the_plan_before_the_revoke(world: World) -> None:
    path = _playbook(world, {"audit": {"days": "${{ steps.find.outputs }}"}})
    out = world.kr("run", str(path), "--key", "chatbot-prod", "--yes")
    _refused_before_any_change(world, out, "audit", "days")


def test_a_non_iso_leaked_at_is_refused_up_front(world: World) -> None:
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--input", "leaked_at=yesterday", "--yes")
    _refused_before_any_change(world, out, "leaked_at", "ISO 8601")


def test_a_masked_value_given_as_a_secret_is_refused_up_front(world: World) -> None:
    path = _playbook(world, {}, inputs={"other": {"description": "a value to probe"}},
                     extra=[{"after": "dead", "id": "other_probe", "uses": "key.probe",
                             "with": {"secret": "${{ inputs.other }}"}}])
    out = world.kr("run", str(path), "--key", "chatbot-prod", "--input", "other=sk-proj-\u2026wxyz", "--yes")
    _refused_before_any_change(world, out, "other_probe", "masked")


@pytest.mark.parametrize("command", ["plan", "run"])
def test_the_builtin_playbooks_still_run_and_plan(world: World, command: str) -> None:
    args = ["--yes"] if command == "run" else []
    out = world.kr(command, "leaked-key", "--key", "chatbot-prod", "--input", "leaked_at=2026-11-01T00:00:00Z", *args)
    assert out.returncode == 0, out.stderr[-3000:]
