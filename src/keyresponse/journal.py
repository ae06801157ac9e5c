"""Incidents on disk: id, folder, append-only journal, and the per-key lock.

    .keyresponse/
      incidents/<id>/journal.jsonl   one JSON object a line, fsynced per record
      incidents/<id>/playbook.yaml   the exact playbook the incident runs (for resume)
      locks/<key>.lock               flock held by the run that owns the key

The reader ignores a torn last line: a process killed mid-write loses at most the
record it was writing, never the ones before it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets as _random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keyresponse.atomicfile import fsync_dir, no_room, write_all, write_atomic
from keyresponse.errors import KeyresponseError, LockedError
from keyresponse.secret import REDACTOR, Secret

STATE_DIR = ".keyresponse"


def new_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H%MZ-") + _random.token_hex(2)


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_jsonable(value: Any) -> Any:
    """JSON form of outputs: Secrets become `{"$secret": mask}`, strings are redacted."""
    if isinstance(value, Secret):
        return {"$secret": value.masked}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, str):
        return REDACTOR.redact(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, Path):
        return str(value)
    return REDACTOR.redact(str(value))


class LostSecret:
    """A secret output read back from the journal: its value died with the process."""

    def __init__(self, masked: str) -> None:
        self.masked = masked

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"LostSecret({self.masked!r})"


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$secret"}:
            return LostSecret(value["$secret"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def has_lost_secret(value: Any) -> bool:
    if isinstance(value, LostSecret):
        return True
    if isinstance(value, dict):
        return any(has_lost_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(has_lost_secret(v) for v in value)
    return False


class JournalFull(KeyresponseError):
    """The journal cannot grow (full disk or quota, file-size limit): the run must stop,
    since nothing it did from here on could be resumed. Exit 1, with the way back."""

    def __init__(self, path: Path, reason: str) -> None:
        incident_id = path.parent.name
        super().__init__(f"incident {incident_id} stopped: its journal {path} cannot be written: {reason}",
                         hint=f"free space on that disk (or lift the file-size limit), then "
                              f"`keyresponse resume {incident_id}`: the steps the journal holds stay done, "
                              "the others run again")
        self.incident_id, self.reason = incident_id, reason


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tail_checked = False

    def append(self, event: str, **data: Any) -> dict[str, Any]:
        record = {"t": utcnow(), "event": event, **to_jsonable(data)}
        line = REDACTOR.redact(json.dumps(record, ensure_ascii=False, sort_keys=False)) + "\n"
        with self._lock:
            try:
                self._write(line.encode("utf-8"))
            except OSError as exc:
                reason = no_room(exc)
                if reason is None:
                    raise
                raise JournalFull(self.path, reason) from None
        return record

    def _write(self, line: bytes) -> None:
        if not self._tail_checked:
            self._cut_torn_tail()
            self._tail_checked = True
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, line)
            os.fsync(fd)
        except BaseException:
            self._tail_checked = False  # a part of the line may be there: cut it before the next one
            raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)  # the journal's name must survive a power cut too

    def _cut_torn_tail(self) -> None:
        """A record torn by a crash must not fuse with the next one: cut it off."""
        try:
            with open(self.path, "rb+") as fh:
                data = fh.read()
                if data and not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)
                    fh.flush()
                    os.fsync(fh.fileno())
        except FileNotFoundError:
            pass

    def records(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            return
        for i, line in enumerate(lines):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # a torn last line: the process died writing it
                    return
                raise KeyresponseError(f"{self.path}:{i + 1}: corrupt journal record") from None


class Incident:
    def __init__(self, incident_id: str, folder: Path) -> None:
        self.id = incident_id
        self.dir = folder
        self.journal = Journal(folder / "journal.jsonl")
        self._running_fd: int | None = None

    # --- creation and lookup

    @classmethod
    def create(cls, state_dir: Path) -> Incident:
        base = state_dir / "incidents"
        _mkdir_private(base)
        for _ in range(20):
            incident_id = new_id()
            folder = base / incident_id
            try:
                folder.mkdir(mode=0o700)
                os.chmod(folder, 0o700)
                fsync_dir(base)
                return cls(incident_id, folder)
            except FileExistsError:
                continue
        raise KeyresponseError("could not allocate an incident id")

    @classmethod
    def open(cls, state_dir: Path, incident_id: str) -> Incident:
        folder = state_dir / "incidents" / incident_id
        if not (folder / "journal.jsonl").is_file():
            matches = sorted(p.name for p in (state_dir / "incidents").glob(f"{incident_id}*")) if (state_dir / "incidents").is_dir() else []
            if len(matches) == 1:
                return cls(matches[0], state_dir / "incidents" / matches[0])
            raise KeyresponseError(
                f"no incident {incident_id!r} under {state_dir / 'incidents'}",
                hint="`keyresponse incidents` lists them",
            )
        return cls(incident_id, folder)

    @staticmethod
    def all(state_dir: Path) -> list[Incident]:
        base = state_dir / "incidents"
        if not base.is_dir():
            return []
        return [Incident(p.name, p) for p in sorted(base.iterdir()) if (p / "journal.jsonl").is_file()]

    def write_file(self, name: str, content: str | bytes) -> Path:
        """Write a file into the incident folder atomically, mode 0600, redacted if text."""
        if isinstance(content, str):
            content = REDACTOR.redact(content).encode("utf-8")
        return write_private(self.dir / name, content)

    # --- summary of the journal

    def summary(self) -> dict[str, Any]:
        opened: dict[str, Any] = {}
        status = "running"
        steps: dict[str, str] = {}
        last = None
        for r in self.journal.records():
            last = r["t"]
            if r["event"] == "incident.opened" and not opened:
                opened = r
            elif r["event"] == "step.finished":
                steps[r["step"]] = r["status"]
            elif r["event"] == "incident.finished":
                status = r["status"]
            elif r["event"] == "incident.resumed":
                status = "running"
            elif r["event"] == "incident.queued":
                status = "queued"  # opened by `serve`, waiting for a worker (or an approval)
                continue
            if status == "queued" and r["event"] != "incident.opened":
                status = "running"
        if status == "running" and not self.is_locked():
            status = "interrupted"
        return {
            "id": self.id,
            "playbook": opened.get("playbook"),
            "key": opened.get("key"),
            "mode": opened.get("mode"),
            "started": opened.get("t"),
            "updated": last,
            "status": status,
            "steps": steps,
            "dir": str(self.dir),
        }

    # --- locking

    def is_locked(self) -> bool:
        holder = self.dir / ".running"
        if not holder.exists():
            return False
        fd = os.open(holder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def mark_running(self) -> None:
        """Hold an flock on the incident itself while this process works on it."""
        if self._running_fd is not None:
            return
        fd = os.open(self.dir / ".running", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"incident {self.id} is being worked on by another process",
                hint="wait for it to finish, or stop it first",
            ) from None
        self._running_fd = fd

    def mark_stopped(self) -> None:
        fd = self._running_fd
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._running_fd = None


class KeyLock:
    """An flock per inventory key: two runs on one key cannot overlap.

    The kernel drops the lock when the process dies, so a crash never leaves a
    stale lock; the file only says who held it last."""

    def __init__(self, state_dir: Path, key_name: str) -> None:
        _mkdir_private(state_dir / "locks")
        self.path = state_dir / "locks" / f"{key_name}.lock"
        self.key_name = key_name
        self._fd: int | None = None

    def acquire(self, incident_id: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            finally:
                os.close(fd)
            raise LockedError(
                f"key {self.key_name!r} is locked by incident {holder or '(unknown)'}, still running",
                hint=f"follow it with `keyresponse incidents`; if it is stuck, stop that process, then `keyresponse resume {holder}`",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, incident_id.encode() + b"\n", 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_private(path: Path, data: bytes) -> Path:
    """Write a file atomically and durably, mode 0600 if new (atomicfile.write_atomic:
    one helper, one guarantee, for the incident folder and the files targets edit)."""
    return write_atomic(path, data)


def _mkdir_private(path: Path) -> None:
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in missing:  # each new folder's name lives in its parent: make it durable there
        fsync_dir(p.parent)
    for p in [path, *path.parents]:
        if p.name == STATE_DIR or p == path:
            try:
                os.chmod(p, 0o700)
            except OSError:
                pass
        if p.name == STATE_DIR:
            break
