"""No room to write (ENOSPC: a full disk; EFBIG: a file-size limit, which
tests/e2e/test_disk_full.py drives from outside): the journal says which incident to
resume, a whole-file write leaves the file as it was, and no such error is a crash."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from keyresponse import atomicfile, journal
from keyresponse.journal import Incident, JournalFull


def full_disk_after(half: bool):  # type: ignore[no-untyped-def]
    def write_all(fd: int, data: bytes) -> None:
        if half:
            os.write(fd, data[: len(data) // 2])  # a record torn by the full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write_all


def test_a_full_disk_stops_the_journal_with_the_way_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    incident = Incident.create(tmp_path)
    incident.journal.append("incident.opened", key="chatbot-prod")
    real = atomicfile.write_all  # what journal.write_all is, until patched
    monkeypatch.setattr(journal, "write_all", full_disk_after(half=True))
    with pytest.raises(JournalFull) as info:
        incident.journal.append("step.started", step="revoke")
    err = info.value
    assert err.exit_code == 1 and "the disk is full" in str(err)
    assert f"keyresponse resume {incident.id}" in str(err)
    monkeypatch.setattr(journal, "write_all", real)  # space freed: the torn record is cut, then it goes on
    incident.journal.append("step.started", step="revoke")
    assert [r["event"] for r in incident.journal.records()] == ["incident.opened", "step.started"]


def test_a_whole_file_write_without_room_leaves_the_file_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    monkeypatch.setattr(atomicfile, "write_all", full_disk_after(half=True))
    with pytest.raises(atomicfile.NoRoom, match="the disk is full") as info:
        atomicfile.write_atomic(target, b"new" * 1000)
    assert info.value.exit_code == 1
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_stray_no_room_error_is_a_clear_exit_1_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from keyresponse import cli
    from keyresponse.commands import run as run_command

    def run(*args: object, **kw: object) -> int:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(tmp_path / "somefile"))

    monkeypatch.setattr(run_command, "run", run)
    monkeypatch.setattr(sys, "argv", ["keyresponse", "run", "leaked-key"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 1, err
    assert "unexpected" not in err and "the file is too large" in err and "somefile" in err
    assert "keyresponse resume" in err
