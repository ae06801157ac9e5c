"""A write that finds no room (EFBIG under a file-size limit; ENOSPC, a full disk, is the
same path: tests/unit/test_journal_full.py) never crashes the run: a real `keyresponse run`
under `RLIMIT_FSIZE` against the sandbox. When the journal cannot grow, the run stops,
resumable, exit 1, saying why and `keyresponse resume ID`; when only the report does not
fit, the report step fails cleanly. After the limit is lifted, `resume` completes."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import World, assert_restored

# The child ignores SIGXFSZ (so a write past the limit fails with EFBIG instead of killing
# it) and caps its own file size, then runs the CLI (no preexec_fn: this process has threads).
LIMITED = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, ({0}, {0})); "
           "sys.argv[0] = 'keyresponse'; runpy.run_module('keyresponse', run_name='__main__', alter_sys=True)")


def run_limited(world: World, limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIMITED.format(limit), "run", "leaked-key", "--key", "chatbot-prod",
                           "--yes"], cwd=world.dir, env=world.env, capture_output=True, text=True, timeout=120)


def assert_clean(out: subprocess.CompletedProcess[str]) -> str:
    both = out.stdout + out.stderr
    assert out.returncode == 1, f"rc={out.returncode}\n{both[-4000:]}"
    assert "Traceback" not in both and "unexpected" not in both, both[-4000:]
    return both


def resume_completes(world: World) -> None:
    [incident] = world.incidents()
    out = world.kr("resume", incident["id"], "--yes")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert_restored(world)


def test_a_journal_that_cannot_grow_stops_the_run_resumable(world: World) -> None:
    out = run_limited(world, 11_000)  # the journal reaches it around the deploy step
    both = assert_clean(out)
    [incident] = world.incidents()
    assert "the file is too large" in out.stderr and "file-size limit" in out.stderr, both[-3000:]
    assert f"keyresponse resume {incident['id']}" in out.stderr, both[-3000:]
    resume_completes(world)


def test_a_report_that_does_not_fit_fails_its_step_cleanly(world: World) -> None:
    # above what the journal of a whole run holds, below the HTML and JSON reports
    out = run_limited(world, 160_000)
    both = assert_clean(out)
    assert "report" in both and "the file is too large" in both, both[-3000:]
    [incident] = world.incidents()
    assert incident["status"] == "failed" and incident["steps"]["report"] == "failed", incident
    assert incident["steps"]["close"] == "applied", incident
    assert f"keyresponse resume {incident['id']}" in both
    resume_completes(world)
