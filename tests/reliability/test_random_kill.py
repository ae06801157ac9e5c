"""SIGKILL at a random moment, not at a named crash point: `leaked-key` and `rotate` run
as real subprocesses against a sandbox that adds latency to every call, are killed at
a seeded moment drawn uniformly over the run's measured duration (measured once per
playbook), sometimes the `resume` is killed too, then resumed to the end; the
invariants are read from the sandbox's state and the files.

CI runs KILLS kills (40); `KEYRESPONSE_KILLS=2000 KEYRESPONSE_KILL_SEED=7 pytest
tests/reliability/test_random_kill.py` is a soak. A failure names each case's seed;
`KEYRESPONSE_KILL_CASES=seed,...` runs just those. A seed fixes where in the run the
kill lands (as a fraction of its duration), not the scheduler: it reproduces the
region, and a case found that way is kept in REGRESSIONS."""

from __future__ import annotations

import os
import queue
import random
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import World, replacements
from tests.reliability.conftest import KILL_SEED, KILLS, WORKERS
from tests.reliability.harness import (
    KEY,
    LATENCY_MS,
    PLAYBOOKS,
    TARGET_FILES,
    RevokeWatch,
    check_restored,
    final_status,
    incident_ids,
    make_world,
    run,
)
from tests.reliability.leaks import LeakHunt

# how many of a case's resumes are killed too, and how often: a killed resume costs less
# than a whole one, so CI gets its kills for less
RESUME_KILLS = ((0, 0.1), (1, 0.3), (2, 0.6))

# (seed, why): cases a failure was found with, run on every CI run whatever the session's seed
REGRESSIONS: list[tuple[int, str]] = [
    (1203066765, "killed while rendering report.html: its temp file outlived the resume that rendered it again"),
]


@dataclass(frozen=True)
class Case:
    seed: int
    playbook: str
    kill_at: float  # fraction of the measured duration
    resume_kills: tuple[float, ...]  # the same for each killed resume, in turn

    @classmethod
    def from_seed(cls, seed: int) -> Case:
        rng = random.Random(seed)
        playbook = rng.choice(PLAYBOOKS)
        kill_at = rng.random()
        (n,) = rng.choices([n for n, _ in RESUME_KILLS], [w for _, w in RESUME_KILLS])
        return cls(seed, playbook, kill_at, tuple(rng.random() for _ in range(n)))

    @property
    def kills(self) -> int:
        return 1 + len(self.resume_kills)

    def __str__(self) -> str:
        again = "".join(f", resume killed at {f:.3f}" for f in self.resume_kills)
        return f"case seed {self.seed}: {self.playbook} killed at {self.kill_at:.3f} of its run{again}"


def plan(base_seed: int, kills: int) -> list[Case]:
    chosen = os.environ.get("KEYRESPONSE_KILL_CASES")
    if chosen:
        return [Case.from_seed(int(s)) for s in chosen.split(",") if s.strip()]
    rng = random.Random(base_seed)
    cases = [Case.from_seed(seed) for seed, _ in REGRESSIONS]
    planned = sum(c.kills for c in cases)
    while planned < kills:
        case = Case.from_seed(rng.randrange(1, 2**31))
        cases.append(case)
        planned += case.kills
    return cases


@dataclass
class Result:
    case: Case | None
    delivered: int = 0  # kills that landed while the process still ran
    seconds: float = 0.0
    error: str | None = None


def _case(case: Case, pool: queue.Queue[Any], root: Path, durations: dict[str, float], hunt: LeakHunt) -> Result:
    result = Result(case)
    sb = pool.get()
    folder = root / f"case-{case.seed}"
    try:
        world = make_world(sb, folder, LATENCY_MS)
        watch = RevokeWatch(world) if case.playbook == "rotate" else None
        duration = durations[case.playbook]
        first = run(world, folder / "run.log", "run", case.playbook, "--key", KEY, "--yes",
                    signal_at=case.kill_at * duration)
        result.delivered += first.signalled
        assert first.returncode in (0, -9), f"the run ended {first.returncode}: {first.output[-3000:]}"
        ids = incident_ids(world)
        if not ids:  # killed before the incident existed: then nothing may have been touched
            assert not sb.state.mutations, f"changes with no incident to resume: {sb.state.mutations}"
            again = run(world, folder / "rerun.log", "run", case.playbook, "--key", KEY, "--yes")
            assert again.returncode == 0, again.output[-3000:]
            ids = incident_ids(world)
        (incident,) = ids
        _named_after_the_incident(world, incident)
        logs = 0
        if final_status(world, incident) != "succeeded":
            for n, at in enumerate(case.resume_kills):
                if final_status(world, incident) == "succeeded":
                    break
                killed = run(world, folder / f"resume-killed-{n}.log", "resume", incident, "--yes",
                             signal_at=at * duration)
                result.delivered += killed.signalled
                assert killed.returncode in (0, -9), f"the resume ended {killed.returncode}: {killed.output[-3000:]}"
                _named_after_the_incident(world, incident)
            while final_status(world, incident) != "succeeded":
                logs += 1
                assert logs <= 2, "two resumes did not finish the incident"
                resumed = run(world, folder / f"resume-{logs}.log", "resume", incident, "--yes")
                assert resumed.returncode == 0, f"the resume ended {resumed.returncode}: {resumed.output[-4000:]}"
        # what anyone does after a crash: resume, even when the journal already says succeeded (a
        # kill while the final reports were written leaves them to this resume)
        final = run(world, folder / "resume-final.log", "resume", incident, "--yes")
        assert final.returncode == 0, f"the resume ended {final.returncode}: {final.output[-4000:]}"
        check_restored(world, case.playbook, incident, watch)
    except AssertionError as exc:
        result.error = str(exc)
    except Exception:  # noqa: BLE001 - reported with its case's seed, not lost in the pool
        result.error = traceback.format_exc()
    finally:
        hunt.snapshot(sb, f"case-{case.seed}")
        pool.put(sb)
    return result


def _named_after_the_incident(world: World, incident: str) -> None:
    """Between kills too: no live replacement that the incident cannot find again by name."""
    strays = [k["id"] for k in replacements(world) if k["live"] and incident not in k["name"]]
    assert not strays, f"live keys not named after the incident: {strays}"


def test_random_sigkill_then_resume_ends_consistent(sandbox_pool: queue.Queue[Any], durations: dict[str, float],
                                                    tmp_path: Path, leak_hunt: LeakHunt) -> None:
    leak_hunt.folder(tmp_path, exclude=TARGET_FILES)
    with ThreadPoolExecutor(WORKERS) as ex:
        cases = plan(KILL_SEED, KILLS)
        results = list(ex.map(lambda c: _case(c, sandbox_pool, tmp_path, durations, leak_hunt), cases))
    failed = [r for r in results if r.error]
    delivered = sum(r.delivered for r in results)
    print(f"\nrandom kills: seed {KILL_SEED}, {len(cases)} cases, {sum(c.kills for c in cases)} kills planned, "
          f"{delivered} landed while running; durations {durations}")
    assert not failed, (f"KEYRESPONSE_KILL_SEED={KILL_SEED}: {len(failed)} of {len(cases)} cases failed "
                        f"(rerun one with KEYRESPONSE_KILL_CASES=seed):\n"
                        + "\n\n".join(f"{r.case}\n  {r.error}" for r in failed))


