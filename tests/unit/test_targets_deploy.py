"""targets.deploy / targets.restart: plan, preflight, the bounded fan-out, per-target
journal notes, retries that touch only failed targets, and no secret anywhere."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from keyresponse.action import Check, Plan
from keyresponse.actions.targets import Deploy, DeployArgs, Restart, _Work
from keyresponse.errors import StepError, TargetError, UsageError
from keyresponse.journal import LostSecret
from keyresponse.secret import Secret
from keyresponse.targets.base import Target
from tests.helpers.target_contract import check_equal, check_not_in, journal_text, make_ctx, new_secret, notes


class Slow:
    """A fake target: sleeps, counts concurrency, fails while `fail` is set."""

    kind: ClassVar[str] = "fake"
    restart_what: str | None = "poke it"
    live = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, name: str, delay: float = 0.0, fail: str | None = None) -> None:
        self.name, self.delay, self.fail = name, delay, fail
        self.identity = f"fake||{name}"
        self.writes: list[Secret] = []

    def describe(self) -> str:
        return f"fake {self.name}"

    def preflight(self) -> list[Check]:
        return [Check(self.describe(), not self.fail, self.fail or "ok", "fix it" if self.fail else None)]

    def write(self, secret: Secret) -> str | None:
        with Slow.lock:
            Slow.live += 1
            Slow.peak = max(Slow.peak, Slow.live)
        try:
            time.sleep(self.delay)
            if self.fail:
                raise TargetError(self.describe(), f"{self.fail} (service said: {secret.reveal()} refused)")
            self.writes.append(secret)
            return None
        finally:
            with Slow.lock:
                Slow.live -= 1

    def verify(self, secret: Secret) -> bool:
        return True

    def restart(self) -> bool | None:
        return True


def inventory(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    (tmp_path / "a.env").write_text("OPENAI_API_KEY=old\n")
    (tmp_path / "b.env").write_text("# b\nexport OPENAI_API_KEY='old'\n")
    return {"providers": {"openai": {"kind": "openai", "admin_key_env": "X_ADMIN"}}, "keys": {"k": {"targets": [
        {"kind": "envfile", "path": "a.env", "variables": ["OPENAI_API_KEY"]},
        {"kind": "envfile", "path": "b.env", "variables": ["OPENAI_API_KEY"]},
        {"kind": "command", "argv": ["/bin/sh", "-c", "cat > received"], "name": "store"},
    ]}}, **extra}


def test_plan_lists_every_target_and_preflight_is_per_target(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, inventory(tmp_path))
    secret = new_secret()
    plan = Deploy().plan(DeployArgs(secret=secret), ctx)
    assert plan.destructive and plan.summary == f"deploy {secret.masked} to 3 targets"
    assert plan.changes == [f"write {secret.masked} to env file a.env:OPENAI_API_KEY",
                            f"write {secret.masked} to env file b.env:OPENAI_API_KEY",
                            f"write {secret.masked} to command store"]
    (tmp_path / "b.env").chmod(0o444)
    checks = Deploy().preflight(plan, ctx)
    assert [c.ok for c in checks] == [True, False, True] and "read-only" in checks[1].detail
    assert not (tmp_path / "received").exists()  # preflight changed nothing


def test_apply_writes_all_and_journals_each_without_the_value(tmp_path: Path) -> None:
    ctx, events = make_ctx(tmp_path, inventory(tmp_path))
    secret = new_secret()
    out = Deploy().apply(Deploy().plan(DeployArgs(secret=secret), ctx), ctx)
    assert out["applied"] == 3 and out["failed"] == 0
    assert [(r["kind"], r["status"], r["verified"]) for r in out["targets"]] == [
        ("envfile", "applied", True), ("envfile", "applied", True), ("command", "applied", False)]
    assert (tmp_path / "received").read_text() == secret.reveal()
    assert {n["target"] for n in notes(ctx.incident)} == {r["target"] for r in out["targets"]}
    assert all(n["secret"] == secret.masked and n["status"] == "applied" for n in notes(ctx.incident))
    assert len(events.progress) == 3 and events.progress[0].startswith("[1/3] ✔ ")
    check_not_in(secret.reveal(), journal_text(ctx.incident) + repr(out) + "\n".join(events.progress),
                 "the journal, outputs or progress")


def test_failures_are_collected_and_retry_touches_only_them(tmp_path: Path) -> None:
    ctx, events = make_ctx(tmp_path, inventory(tmp_path))
    good, bad, worse = Slow("good"), Slow("bad", fail="403 Forbidden"), Slow("worse", fail="404 Not Found")
    secret = new_secret()
    plan = Plan("deploy", data=_Work([good, bad, worse], secret, restart=True))
    with pytest.raises(TargetError) as info:
        Deploy().apply(plan, ctx)
    text = str(info.value)
    assert "2 of 3 targets: failed" in text and "fake bad: 403 Forbidden" in text and "fake worse: 404" in text
    check_not_in(secret.reveal(), text + journal_text(ctx.incident) + "".join(events.progress), "the error")
    assert (info.value.outputs or {})["failed"] == 2
    assert [n["status"] for n in notes(ctx.incident)].count("failed") == 2
    # attempt 2 of the same step, same secret: only the failed targets are written again
    bad.fail = worse.fail = None
    ctx2, _ = make_ctx(tmp_path, inventory(tmp_path), incident=ctx.incident, attempt=2)
    out = Deploy().apply(plan, ctx2)
    assert out["failed"] == 0 and len(good.writes) == 1 and len(bad.writes) == len(worse.writes) == 1
    assert "earlier attempt" in out["targets"][0]["note"] and out["targets"][0]["restarted"] is None
    # a new secret (a resume re-issued the key) goes everywhere again
    Deploy().apply(Plan("deploy", data=_Work([good, bad, worse], new_secret(), restart=False)), ctx2)
    assert len(good.writes) == 2


def test_same_mask_different_secret_is_not_skipped(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, inventory(tmp_path))
    t = Slow("t")
    one = Secret("sk-" + "proj-" + "A" * 30 + "wxyz")
    two = Secret("sk-" + "proj-" + "B" * 30 + "wxyz")
    assert one.masked == two.masked
    Deploy().apply(Plan("d", data=_Work([t], one, False)), ctx)
    Deploy().apply(Plan("d", data=_Work([t], two, False)), ctx)
    assert t.writes == [one, two]


def test_fan_out_is_bounded_and_concurrent(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, inventory(tmp_path, concurrency=4))
    targets: list[Target] = [Slow(f"t{i}", delay=0.1) for i in range(12)]
    Slow.peak = 0
    started = time.monotonic()
    Deploy().apply(Plan("d", data=_Work(targets, new_secret(), False)), ctx)
    elapsed = time.monotonic() - started
    assert Slow.peak == 4 and elapsed < 0.6  # 3 waves of 0.1 s, not 12


def test_lost_secret_must_be_reissued(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, inventory(tmp_path))
    with pytest.raises(StepError, match="must be re-issued") as info:
        Deploy().plan(DeployArgs(secret=LostSecret("sk-proj-…abcd")), ctx)
    assert info.value.retryable is False
    with pytest.raises(StepError, match="not a secret"):
        Deploy().apply(Plan("d", data=_Work([], "plain text", False)), ctx)


def test_only_selects_by_description_or_index(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, inventory(tmp_path))
    plan = Deploy().plan(DeployArgs(secret=new_secret(), only=["command store", 0]), ctx)
    assert [t.describe() for t in plan.data.targets] == ["command store", "env file a.env:OPENAI_API_KEY"]
    with pytest.raises(UsageError, match="no target 'nope'") as info:
        Deploy().plan(DeployArgs(secret=new_secret(), only=["nope"]), ctx)
    assert "#2 command store" in (info.value.hint or "")


def test_planning_with_a_placeholder_secret(tmp_path: Path) -> None:
    from keyresponse.action import Planned

    ctx, _ = make_ctx(tmp_path, inventory(tmp_path))
    plan = Deploy().plan(DeployArgs(secret=Planned("steps.issue.outputs.secret")), ctx)
    assert plan.changes[0] == "write the new secret to env file a.env:OPENAI_API_KEY"


def test_restart_runs_each_configured_restart(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    inv["keys"]["k"]["targets"][2]["restart_argv"] = ["/bin/sh", "-c", "echo restarted > restarted"]
    ctx, events = make_ctx(tmp_path, inv)
    plan = Restart().plan(Restart.With(), ctx)
    assert plan.changes == ["command store: run /bin/sh -c 'echo restarted > restarted'"]
    out = Restart().apply(plan, ctx)
    assert out == {"restarted": ["command store"], "ids": [plan.data[0].identity], "failed": 0}
    assert (tmp_path / "restarted").exists() and len(events.progress) == 1


def test_engine_retry_rewrites_only_the_failed_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import textwrap

    from keyresponse.engine import Engine, Mode
    from keyresponse.inventory import load_inventory
    from keyresponse.playbook import load_playbook

    secret = new_secret()
    monkeypatch.setenv("TEST_NEW_SECRET", secret.reveal())
    monkeypatch.setattr("time.sleep", lambda s: None)  # the engine's back-off between attempts
    (tmp_path / "a.env").write_text("OPENAI_API_KEY=old\n")
    flaky = "test -e tried || { touch tried; exit 1; }; cat > flaky.out"
    (tmp_path / "keyresponse.yaml").write_text(textwrap.dedent(f"""\
        providers: {{openai: {{kind: openai, admin_key_env: X_ADMIN}}}}
        keys:
          k:
            targets:
              - {{kind: envfile, path: a.env, variables: [OPENAI_API_KEY]}}
              - {{kind: command, name: count, argv: ["/bin/sh", "-c", "cat >> count.out; echo >> count.out"]}}
              - {{kind: command, name: flaky, argv: ["/bin/sh", "-c", "{flaky}"]}}
        """))
    (tmp_path / "pb.yaml").write_text(textwrap.dedent("""\
        name: t
        steps:
          - {id: new, uses: test.emit_secret, with: {env: TEST_NEW_SECRET}}
          - {id: deploy, uses: targets.deploy, retries: 1, with: {secret: "${{ steps.new.outputs.secret }}"}}
        """))
    result = Engine(load_inventory(tmp_path / "keyresponse.yaml"), mode=Mode.APPLY, assume_yes=True).start(
        load_playbook(tmp_path / "pb.yaml"), {}, "k")
    assert result.ok, result.steps[-1].error
    assert (tmp_path / "count.out").read_text().count("\n") == 1  # attempt 2 did not write it again
    check_equal((tmp_path / "flaky.out").read_text(), secret.reveal())
    journal = journal_text(result.incident)
    assert journal.count('"step.retrying"') == 1
    check_not_in(secret.reveal(), journal, "the journal")


class BudgetSpy(Slow):
    """Records the step's retry budget as each worker thread sees it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seen: list[object] = []

    def preflight(self) -> list[Check]:
        from keyresponse import http

        self.seen.append(http._BUDGET.get())
        return super().preflight()

    def write(self, secret: Secret) -> str | None:
        from keyresponse import http

        self.seen.append(http._BUDGET.get())
        return super().write(secret)


def test_deploy_workers_share_the_steps_retry_budget(tmp_path: Path) -> None:
    """The step's retry budget lives in a ContextVar; the pool's threads must see it, or a
    target's retries could wait far past the step's `timeout:`."""
    from keyresponse import http

    ctx, _ = make_ctx(tmp_path, inventory(tmp_path, concurrency=2))
    spies = [BudgetSpy(f"t{i}") for i in range(3)]
    plan = Plan("d", data=_Work(list[Target](spies), new_secret(), False))
    with http.retry_budget(5.0):
        budget = http._BUDGET.get()
        Deploy().preflight(plan, ctx)
        Deploy().apply(plan, ctx)
    assert budget is not None
    assert [s.seen for s in spies] == [[budget, budget]] * 3
