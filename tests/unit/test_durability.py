"""Files the journal and the targets write: whole, durable, and never colliding.

One atomic-write helper (atomicfile.write_atomic) serves the incident folder and the
files targets edit; these tests hold it to its promises, and the journal to its own."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from keyresponse import atomicfile
from keyresponse.journal import Incident, JournalFull, write_private


def _one_byte_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write

    def short(fd: int, data: bytes | memoryview) -> int:
        return real(fd, bytes(data[:1]))  # the kernel may write less than asked

    monkeypatch.setattr(os, "write", short)


def test_short_writes_still_write_every_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    incident = Incident.create(tmp_path / ".keyresponse")
    _one_byte_writes(monkeypatch)
    incident.journal.append("step.note", step="a", note="x" * 50)
    incident.journal.append("step.note", step="b", note="y" * 50)
    incident.write_file("report.md", "# report\n" * 20)
    target = tmp_path / "app.env"
    target.write_text("OLD=1\n")
    atomicfile.replace(target, b"NEW=2\n" * 10, crash_label="t")
    monkeypatch.undo()
    assert [r["step"] for r in incident.journal.records()] == ["a", "b"]
    assert (incident.dir / "report.md").read_text() == "# report\n" * 20
    assert target.read_text() == "NEW=2\n" * 10


def _dir_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(device, inode) of every directory fsynced from now on."""
    seen: list[tuple[int, int]] = []
    real = os.fsync

    def record(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            seen.append((st.st_dev, st.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


def _ident(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def test_new_folders_files_and_renames_are_made_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _dir_fsyncs(monkeypatch)
    state = tmp_path / ".keyresponse"
    incident = Incident.create(state)
    assert _ident(state / "incidents") in seen, "the new incident folder's entry was not made durable"
    assert _ident(state) in seen and _ident(tmp_path) in seen, "the folders created above it were not made durable"

    seen.clear()
    incident.journal.append("incident.opened")
    assert _ident(incident.dir) in seen, "the new journal's entry was not made durable"
    seen.clear()
    incident.journal.append("step.started", step="a")
    assert seen == [], "an append to an existing journal needs no folder fsync"

    seen.clear()
    incident.write_file("playbook.yaml", "name: x\n")
    assert _ident(incident.dir) in seen, "the rename into the incident folder was not made durable"


def test_two_writers_of_one_file_never_share_a_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`keyresponse report ID` while the run renders the same report: both writers must
    finish, and the file must end as one of them wrote it, whole."""
    path = tmp_path / "report.md"
    first_paused, second_done = threading.Event(), threading.Event()
    real_fsync = os.fsync
    first = threading.current_thread()  # placeholder, set below

    def fsync(fd: int) -> None:
        if threading.current_thread() is first and not first_paused.is_set():
            first_paused.set()  # the first writer has written its temp file, not renamed it yet
            second_done.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            write_private(path, data)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first = threading.Thread(target=write, args=(b"A" * 4096,))
    first.start()
    assert first_paused.wait(10)
    write(b"B" * 10)  # the second writer runs start to end while the first is mid-way
    second_done.set()
    first.join(10)
    assert not errors, errors
    assert path.read_bytes() in (b"A" * 4096, b"B" * 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"], "a temp file was left behind"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_one_helper_keeps_an_edited_files_mode_and_makes_new_files_private(tmp_path: Path) -> None:
    edited = tmp_path / "app.env"
    edited.write_text("A=1\n")
    os.chmod(edited, 0o640)
    atomicfile.write_atomic(edited, b"A=2\n")
    assert stat.S_IMODE(edited.stat().st_mode) == 0o640 and edited.read_text() == "A=2\n"
    fresh = tmp_path / "new.json"
    write_private(fresh, b"{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_a_record_torn_by_a_failed_write_never_fuses_with_the_next(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (ENOSPC) part way through a record: the next record of the same process
    starts on a line of its own, and the journal still reads."""
    import errno

    incident = Incident.create(tmp_path / ".keyresponse")
    incident.journal.append("step.note", step="a", note="first")
    real = os.write
    calls = {"n": 0}

    def full_disk(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real(fd, bytes(data)[:10])  # a part of the record lands
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(JournalFull, match="the disk is full"):  # the run stops, resumable
        incident.journal.append("step.note", step="b", note="torn")
    monkeypatch.undo()
    incident.journal.append("step.note", step="c", note="after")
    assert [r["step"] for r in incident.journal.records()] == ["a", "c"]


def test_a_write_clears_the_temp_file_a_killed_writer_left_and_no_live_ones(tmp_path: Path) -> None:
    """A process killed mid-write (say, while rendering report.html) leaves its temp file;
    the next write of that file removes it (its writer is dead), but never the temp file
    of a writer still running (`keyresponse report ID` beside the run, another thread)."""
    import subprocess
    import sys

    path = tmp_path / "report.html"
    path.write_bytes(b"old")
    killed = subprocess.run([sys.executable, "-c",
                             "import os, tempfile; from keyresponse import atomicfile\n"
                             f"from pathlib import Path; real = Path({str(path)!r})\n"
                             "fd, _ = tempfile.mkstemp(prefix=atomicfile.temp_prefix(real), dir=real.parent)\n"
                             "os.write(fd, b'half'); os._exit(9)"], check=False)
    assert killed.returncode == 9
    stale = atomicfile.leftovers(path)
    assert len(stale) == 1
    live = tmp_path / f"{atomicfile.temp_prefix(path)}live"  # this process: a writer mid-way
    elsewhere = tmp_path / f".report.html{atomicfile.TMP_MARK}1.{killed_pid(tmp_path)}-x"  # another pid namespace
    elsewhere.write_bytes(b"theirs")
    live.write_bytes(b"mine")
    write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(atomicfile.leftovers(path)) == sorted([live, elsewhere])


def killed_pid(folder: Path) -> int:
    """A pid that ran and is gone (the killed writer's)."""
    [stale] = [p for p in folder.iterdir() if p.name.startswith(".report.html")]
    return int(stale.name.rsplit(".", 1)[-1].split("-")[0])
