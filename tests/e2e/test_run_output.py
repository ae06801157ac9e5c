"""What a person sees at the end of `keyresponse run`: a summary with every path in full,
and each error once."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import World


def test_run_ends_with_a_summary_and_full_paths(world: World) -> None:
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr[-3000:]
    summary = out.stderr[out.stderr.index("── incident "):]
    assert "leaked key   chatbot-prod" in summary and "revoked, probe says dead" in summary
    assert "replacement  " in summary and "probe says live" in summary
    assert "targets      6/6 updated" in summary
    assert "inventory    " in summary and "keys.chatbot-prod.key_id" in summary
    assert "audit        " in summary and "anomalous hours, first at" in summary
    assert "exposure     " in summary
    paths = [line.split(maxsplit=1)[1] for line in summary.splitlines()
             if line.strip().startswith(("report ", "journal "))]
    assert len(paths) == 4, summary
    for p in paths:
        assert Path(p).is_absolute() and Path(p).is_file(), p
    assert "…" not in "".join(paths)
    assert not any(line.rstrip().endswith(": done") for line in out.stderr.splitlines())


def test_each_error_is_printed_once(world: World) -> None:
    world.sandbox.add_fault(service="gitlab", method="PUT", path="/projects/*/variables/*", kind="status",
                            status=500, count=None)
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", env={"COLUMNS": "80"})
    assert out.returncode == 1
    assert out.stderr.count("GitLab variable acme/chatbot:OPENAI_API_KEY: ") == 1, out.stderr[-4000:]
    summary = out.stderr[out.stderr.index("── incident "):]
    assert "targets      5/6 updated" in summary
    assert "keyresponse resume " in summary
