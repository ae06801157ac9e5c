"""The step loop: journal, plan vs apply, resume, locking, and secrets that never leave memory."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from keyresponse.engine import Engine, Mode
from keyresponse.errors import LockedError
from keyresponse.inventory import LoadedInventory, load_inventory
from keyresponse.journal import Incident
from keyresponse.playbook import LoadedPlaybook, coerce_inputs, load_playbook
from tests.helpers import actions as test_actions

INVENTORY = """\
providers:
  openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}
keys:
  app: {project: proj_test}
"""


def _setup(tmp: Path, steps: str, inputs: str = "") -> tuple[LoadedInventory, LoadedPlaybook]:
    (tmp / "keyresponse.yaml").write_text(INVENTORY)
    (tmp / "pb.yaml").write_text("name: t\n" + inputs + "steps:\n" + steps)
    return load_inventory(tmp / "keyresponse.yaml"), load_playbook(tmp / "pb.yaml")


def _records(incident: Incident) -> list[dict[str, Any]]:
    return list(incident.journal.records())


def test_journal_has_one_start_and_one_end_per_step(workdir: Path) -> None:
    inv, pb = _setup(workdir, "  - {id: a, uses: log.message, with: {message: one}}\n"
                              "  - {id: b, uses: log.message, with: {message: '${{ steps.a.outputs.message }} two'}}\n")
    result = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    assert result.ok and result.exit_code == 0
    recs = _records(result.incident)
    for sid in ("a", "b"):
        assert [r["event"] for r in recs if r.get("step") == sid and r["event"] in ("step.started", "step.finished")] == [
            "step.started", "step.finished"]
    assert recs[-2] == {**recs[-2], "event": "incident.finished", "status": "succeeded"}
    assert recs[-1]["event"] == "incident.reported"  # then the reports rendered with the end in them
    assert result.steps[1].outputs["message"] == "one two"
    folder = result.incident.dir
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "journal.jsonl").stat().st_mode & 0o777) == "0o600"


def test_plan_mode_applies_nothing_and_reads_planned_outputs(workdir: Path) -> None:
    counter = workdir / "count.txt"
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.count, with: {{counter: {counter}}}}}\n"
                              "  - {id: b, uses: test.use_secret, with: {secret: '${{ steps.a.outputs.secret }}'}}\n")
    result = Engine(inv, mode=Mode.PLAN).start(pb, {}, None)
    assert [s.status for s in result.steps] == ["planned", "planned"]
    assert not counter.exists()
    assert "known after apply" in result.steps[1].summary


def test_resume_skips_what_succeeded_and_reruns_the_failed_step(workdir: Path) -> None:
    counter, marker = workdir / "count.txt", workdir / "marker"
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.count, with: {{counter: {counter}}}}}\n"
                              f"  - {{id: b, uses: test.fail_once, with: {{marker: {marker}}}}}\n"
                              f"  - {{id: c, uses: test.count, with: {{counter: {counter}}}}}\n")
    first = Engine(inv, mode=Mode.APPLY).start(pb, {}, "app")
    assert [s.status for s in first.steps] == ["applied", "failed"]
    assert first.exit_code == 1
    assert counter.read_text() == "a\n"
    assert Incident.open(workdir / ".keyresponse", first.incident.id).summary()["status"] == "failed"

    second = Engine(inv, mode=Mode.APPLY).resume(Incident.open(workdir / ".keyresponse", first.incident.id))
    assert [(s.id, s.status) for s in second.steps] == [("b", "applied"), ("c", "applied")]
    assert counter.read_text() == "a\nc\n"  # a ran once
    assert second.incident.summary()["status"] == "succeeded"


def test_retries_rerun_a_retryable_failure(workdir: Path) -> None:
    inv, pb = _setup(workdir, "  - {id: a, uses: test.use_secret, retries: 1, with: {secret: x, fail: true}}\n")
    result = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    events = [r["event"] for r in _records(result.incident)]
    assert events.count("step.started") == 2 and "step.retrying" in events


def test_on_failure_continue_runs_the_rest_but_fails_the_run(workdir: Path) -> None:
    counter = workdir / "count.txt"
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.fail_once, on_failure: continue, with: {{marker: {workdir / 'm'}}}}}\n"
                              f"  - {{id: b, uses: test.count, with: {{counter: {counter}}}}}\n")
    result = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    assert [s.status for s in result.steps] == ["failed", "applied"]
    assert result.exit_code == 1


def test_if_false_skips(workdir: Path) -> None:
    inv, pb = _setup(workdir, "  - {id: a, uses: log.message, if: '${{ inputs.loud }}', with: {message: m}}\n",
                     inputs="inputs:\n  loud: {type: boolean, default: false}\n")
    result = Engine(inv, mode=Mode.APPLY).start(pb, coerce_inputs(pb, {}), None)
    assert result.steps[0].status == "skipped" and result.ok


def test_two_runs_on_one_key_cannot_overlap(workdir: Path) -> None:
    inv, pb = _setup(workdir, "  - {id: a, uses: test.block, with: {name: lock}}\n")
    test_actions.BLOCK_EVENTS["lock"] = threading.Event()
    test_actions.STARTED_EVENTS["lock"] = threading.Event()
    first: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(r=Engine(inv, mode=Mode.APPLY).start(pb, {}, "app")))
    runner.start()
    try:
        assert test_actions.STARTED_EVENTS["lock"].wait(5)
        with pytest.raises(LockedError) as info:
            Engine(inv, mode=Mode.APPLY).start(pb, {}, "app")
        holder = [p.name for p in (workdir / ".keyresponse" / "incidents").iterdir()]
        assert any(h in str(info.value) for h in holder)
    finally:
        test_actions.BLOCK_EVENTS["lock"].set()
        runner.join(10)
    assert first["r"].ok
    # once the first run is over, the key is free again
    test_actions.STARTED_EVENTS["lock"].clear()
    assert Engine(inv, mode=Mode.APPLY).start(pb, {}, "app").ok


def test_confirmation_refused_without_yes_when_not_interactive(workdir: Path) -> None:
    inv, pb = _setup(workdir, "  - {id: a, uses: wait.approval, with: {prompt: 'go?'}}\n")
    result = Engine(inv, mode=Mode.APPLY, interactive=False).start(pb, {}, None)
    assert result.steps[0].status == "failed" and "--yes" in (result.steps[0].hint or "")
    assert Engine(inv, mode=Mode.APPLY, assume_yes=True).start(pb, {}, None).ok


def test_a_secret_never_reaches_journal_console_or_errors(workdir: Path, fake_secret_value: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from keyresponse.console import JsonReporter, PlainReporter

    inv, pb = _setup(workdir, "  - {id: a, uses: test.emit_secret, with: {env: TEST_FAKE_SECRET}}\n"
                              "  - {id: b, uses: test.use_secret, with: {secret: '${{ steps.a.outputs.secret }}'}}\n"
                              "  - {id: c, uses: test.use_secret, with: {secret: '${{ steps.a.outputs.secret }}', fail: true}}\n")
    for reporter in (PlainReporter(), JsonReporter()):
        result = Engine(inv, mode=Mode.APPLY, reporter=reporter).start(pb, {}, None)
        assert [s.status for s in result.steps] == ["applied", "applied", "failed"]
        assert "bad key sk-" in (result.steps[2].error or "")  # the error is kept, the value masked
        assert fake_secret_value not in json.dumps(result.as_dict())
    out = capsys.readouterr()
    assert "careless progress line" in out.err
    produced = [p for p in workdir.rglob("*") if p.is_file()]
    assert produced
    for path in produced:
        assert fake_secret_value not in path.read_text(errors="replace"), path
    assert fake_secret_value not in out.out + out.err


def test_resume_reruns_a_step_whose_secret_died_with_the_process(workdir: Path, fake_secret_value: str) -> None:
    """A finished step's secret output is lost with the process: a resume that needs it
    runs that step again, then every finished step that read it."""
    inv, pb = _setup(workdir, "  - {id: mint, uses: test.emit_secret, with: {env: TEST_FAKE_SECRET}}\n"
                              "  - {id: use, uses: test.use_secret, with: {secret: '${{ steps.mint.outputs.secret }}'}}\n"
                              f"  - {{id: gate, uses: test.fail_once, with: {{marker: {workdir / 'm'}}}}}\n"
                              "  - {id: again, uses: test.use_secret, with: {secret: '${{ steps.mint.outputs.secret }}'}}\n")
    first = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    assert [s.status for s in first.steps] == ["applied", "applied", "failed"]
    second = Engine(inv, mode=Mode.APPLY).resume(Incident.open(workdir / ".keyresponse", first.incident.id))
    assert [s.id for s in second.steps] == ["mint", "use", "gate", "again"]
    assert second.ok


def test_always_steps_run_after_a_stop(workdir: Path) -> None:
    counter = workdir / "count.txt"
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.fail_once, with: {{marker: {workdir / 'm'}}}}}\n"
                              f"  - {{id: b, uses: test.count, with: {{counter: {counter}}}}}\n"
                              f"  - {{id: report, uses: test.count, always: true, with: {{counter: {counter}}}}}\n")
    result = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    assert [(s.id, s.status) for s in result.steps] == [("a", "failed"), ("report", "applied")]
    assert counter.read_text() == "report\n" and result.exit_code == 1


def test_plan_only_playbook_never_applies(workdir: Path) -> None:
    counter = workdir / "count.txt"
    (workdir / "keyresponse.yaml").write_text(INVENTORY)
    (workdir / "pb.yaml").write_text(f"name: d\nplan_only: true\nsteps:\n  - {{id: a, uses: test.count, with: {{counter: {counter}}}}}\n")
    result = Engine(load_inventory(workdir / "keyresponse.yaml"), mode=Mode.APPLY).start(load_playbook(workdir / "pb.yaml"), {}, None)
    assert result.steps[0].status == "planned" and not counter.exists()


def test_resume_runs_always_steps_again(workdir: Path) -> None:
    counter = workdir / "count.txt"
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.fail_once, with: {{marker: {workdir / 'm'}}}}}\n"
                              f"  - {{id: report, uses: test.count, always: true, with: {{counter: {counter}}}}}\n")
    first = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    second = Engine(inv, mode=Mode.APPLY).resume(first.incident)
    assert [s.id for s in second.steps] == ["a", "report"] and second.ok
    assert counter.read_text() == "report\nreport\n"


def test_a_timed_out_step_is_not_retried_beside_itself(workdir: Path) -> None:
    inv, pb = _setup(workdir, "  - {id: a, uses: test.block, timeout: 0.3, retries: 2, with: {name: slow}}\n")
    test_actions.BLOCK_EVENTS["slow"] = threading.Event()
    test_actions.STARTED_EVENTS["slow"] = threading.Event()
    threading.Timer(1.0, test_actions.BLOCK_EVENTS["slow"].set).start()
    result = Engine(inv, mode=Mode.APPLY).start(pb, {}, "app")
    events = [r["event"] for r in _records(result.incident)]
    assert events.count("step.started") == 1 and "timed out" in (result.steps[0].error or "")
    assert test_actions.BLOCK_EVENTS["slow"].is_set()  # the run waited for the thread before unlocking


def test_a_torn_last_record_does_not_corrupt_the_journal(workdir: Path) -> None:
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.fail_once, with: {{marker: {workdir / 'm'}}}}}\n")
    first = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    journal = first.incident.dir / "journal.jsonl"
    with open(journal, "a") as fh:
        fh.write('{"t": "2026-11-28T00:00:00Z", "event": "step.sta')  # killed mid-write
    second = Engine(inv, mode=Mode.APPLY).resume(Incident.open(workdir / ".keyresponse", first.incident.id))
    assert second.ok
    assert all(isinstance(r, dict) for r in Incident.open(workdir / ".keyresponse", first.incident.id).journal.records())


def test_resume_of_a_running_incident_writes_nothing(workdir: Path) -> None:
    inv, pb = _setup(workdir, f"  - {{id: a, uses: test.fail_once, with: {{marker: {workdir / 'm'}}}}}\n")
    first = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    holder = Incident.open(workdir / ".keyresponse", first.incident.id)
    holder.mark_running()  # another process works on it
    before = (first.incident.dir / "journal.jsonl").read_text()
    with pytest.raises(LockedError):
        Engine(inv, mode=Mode.APPLY).resume(Incident.open(workdir / ".keyresponse", first.incident.id))
    assert (first.incident.dir / "journal.jsonl").read_text() == before
    holder.mark_stopped()


def test_a_timeout_stops_the_run_even_with_on_failure_continue(workdir: Path) -> None:
    counter = workdir / "count.txt"
    inv, pb = _setup(workdir, "  - {id: a, uses: test.block, timeout: 0.3, on_failure: continue, with: {name: cont}}\n"
                              f"  - {{id: b, uses: test.count, with: {{counter: {counter}}}}}\n"
                              f"  - {{id: c, uses: test.count, always: true, with: {{counter: {counter}}}}}\n")
    test_actions.BLOCK_EVENTS["cont"] = threading.Event()
    test_actions.STARTED_EVENTS["cont"] = threading.Event()
    threading.Timer(1.0, test_actions.BLOCK_EVENTS["cont"].set).start()
    result = Engine(inv, mode=Mode.APPLY).start(pb, {}, None)
    assert [s.id for s in result.steps] == ["a", "c"]  # b did not run beside the stuck step
    assert counter.read_text() == "c\n" and test_actions.BLOCK_EVENTS["cont"].is_set()


def test_the_forecast_runs_the_steps_preflights_side_by_side(workdir: Path) -> None:
    """Before the first step every step is planned and checked; the checks only read, so
    they run at once: three preflights that each wait for the other two all pass (one
    after another, each would wait alone and fail)."""
    test_actions.BARRIERS["three"] = threading.Barrier(3)
    inv, pb = _setup(workdir, "".join(f"  - {{id: s{i}, uses: test.meet, with: {{barrier: three}}}}\n"
                                      for i in range(3)))
    result = Engine(inv, mode=Mode.APPLY, assume_yes=True).start(pb, {}, None)
    assert result.ok, [(s.id, s.status, s.error) for s in result.steps]
    assert [s.status for s in result.steps] == ["applied"] * 3


def test_an_interrupt_wrapped_while_planning_ends_the_incident_interrupted(workdir: Path) -> None:
    """A signal that lands while a step is planned (a module imported, a class built) can
    reach the engine as a RuntimeError around the KeyboardInterrupt: that is an interrupt,
    journaled `interrupted` and resumable, not a refusal."""
    from keyresponse.engine import RunInterrupted

    inv, pb = _setup(workdir, "  - {id: a, uses: log.message, with: {message: one}}\n"
                              "  - {id: b, uses: test.wrapped_interrupt}\n")
    with pytest.raises(RunInterrupted) as caught:
        Engine(inv, mode=Mode.APPLY, assume_yes=True).start(pb, {}, None)
    [incident] = [p for p in (workdir / ".keyresponse" / "incidents").iterdir() if p.is_dir()]
    assert incident.name == caught.value.incident_id
    ends = [r for r in _records(Incident.open(workdir / ".keyresponse", incident.name)) if r["event"] == "incident.finished"]
    assert [r["status"] for r in ends] == ["interrupted"]


def test_an_interrupt_while_the_key_is_locked_ends_the_new_incident_interrupted(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (or Ctrl-C) can land while the run takes the key's lock, after the incident
    is opened and before the first step: that is an interrupt, resumable, not a refusal
    (found by the random signals under load)."""
    from keyresponse.engine import RunInterrupted

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "_lock_key", interrupted)
    inv, pb = _setup(workdir, "  - {id: a, uses: log.message, with: {message: one}}\n")
    with pytest.raises(RunInterrupted):
        Engine(inv, mode=Mode.APPLY, assume_yes=True).start(pb, {}, "app")
    [incident] = [p for p in (workdir / ".keyresponse" / "incidents").iterdir() if p.is_dir()]
    ends = [r for r in _records(Incident.open(workdir / ".keyresponse", incident.name)) if r["event"] == "incident.finished"]
    assert [r["status"] for r in ends] == ["interrupted"]


def test_a_preflight_side_by_side_sees_the_earlier_steps_only(workdir: Path) -> None:
    """A preflight running while later steps are planned reads the run as it stood when its
    own step was planned (as one after another would): never a later step's plan, never a
    dict that changes under it."""
    test_actions.PLANNED.clear()
    test_actions.SEEN.clear()
    inv, pb = _setup(workdir, "  - {id: a, uses: log.message, with: {message: one}}\n"
                              "  - {id: b, uses: test.seen, with: {wait_for: d}}\n"
                              "  - {id: c, uses: log.message, with: {message: two}}\n"
                              "  - {id: d, uses: test.seen}\n")
    result = Engine(inv, mode=Mode.APPLY, assume_yes=True).start(pb, {}, None)
    assert result.ok
    assert test_actions.SEEN["b"] == ["a", "b"], test_actions.SEEN  # the earlier steps, and its own plan
