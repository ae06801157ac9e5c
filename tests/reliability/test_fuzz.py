"""Fuzzing (Hypothesis) of the inventory and playbook loaders, the env-file editor, the
alert readers (every payload in tests/fixtures/alerts/, reshaped and mutated) and the
expression sandbox: no exception but the project's own, no example past its deadline,
no hang, and memory bounded: each target runs in a child process under an RLIMIT_AS
ceiling, its peak RSS read back from the kernel (tests/helpers/measured.py).

CI runs a few dozen examples per target; `KEYRESPONSE_HYPOTHESIS=5000` for a long run."""

from __future__ import annotations

import os
import queue
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.helpers.measured import Ran, run_measured
from tests.reliability.conftest import EXAMPLES
from tests.reliability.fuzz_targets import TARGETS
from tests.reliability.leaks import LeakHunt

CI_EXAMPLES = 60
PEAK_MB = 600  # resident, at the worst moment of a target's whole run


def test_parsers_fail_only_with_their_own_errors_in_bounded_time_and_memory(
        sandbox_pool: queue.Queue[Any], tmp_path: Path, leak_hunt: LeakHunt) -> None:
    sb = sandbox_pool.get()
    try:
        sb.reset()
        sb.write_config(tmp_path)  # the base inventory the mutations start from
    finally:
        leak_hunt.snapshot(sb, "fuzz")
        sandbox_pool.put(sb)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1"})
    examples = EXAMPLES or CI_EXAMPLES

    def one(target: str) -> Ran:
        return run_measured([sys.executable, "-m", "tests.reliability.fuzz_targets", target, str(examples),
                             str(tmp_path)], cwd=REPO, env=env, hang=300, files=tmp_path / target)

    with ThreadPoolExecutor(2) as ex:
        ran = dict(zip(TARGETS, ex.map(one, TARGETS), strict=True))
    failed = {t: r for t, r in ran.items() if r.returncode != 0}
    assert not failed, "\n\n".join(f"{t} (exit {r.returncode}):\n{r.stderr[-6000:]}" for t, r in failed.items())
    heavy = {t: round(r.peak_mb) for t, r in ran.items() if r.peak_mb > PEAK_MB}
    assert not heavy, f"peak memory over {PEAK_MB} MB: {heavy}"
    for r in ran.values():
        leak_hunt.text("fuzz output", r.stdout + r.stderr)


def test_an_expression_naming_an_unknown_filter_is_a_playbook_error_not_a_crash(tmp_path: Path) -> None:
    """Found by the expression fuzzer (`inputs|inputs`): the syntax check passed it and the
    loader's analysis then raised Jinja's TemplateAssertionError: exit 3, a traceback."""
    book = tmp_path / "book.yaml"
    book.write_text('name: t\nsteps:\n  - id: a\n    uses: log.message\n'
                    '    with: {message: "${{ inputs | nosuchfilter }}"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1", "TMPDIR": str(tmp_path)})
    ran = run_measured([sys.executable, "-m", "keyresponse", "plan", str(book)], cwd=tmp_path, env=env, hang=60,
                       files=tmp_path / "plan")
    assert ran.returncode == 2, f"exit {ran.returncode}: {ran.stderr[-2000:]}"
    assert "nosuchfilter" in ran.stderr and f"{book}:5" in ran.stderr, ran.stderr[-2000:]
    assert not list(tmp_path.glob("keyresponse-crash-*"))
