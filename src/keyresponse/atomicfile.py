"""Writing files safely: the one atomic-write helper (`write_atomic`) and, for files
edited in place, a sidecar flock across read-modify-write.

The new bytes go to a temp file in the same folder (mode 0600 while it is being
written: it may hold a secret), which is fsynced, given the original's owner and
mode, and renamed over the original; then the folder is fsynced so the rename
survives a power cut. A reader sees the old file or the new one, never half of
one; a writer killed mid-way leaves only a `.NAME.keyresponse-tmp<pid namespace>.<pid>-*` file, which the next write of NAME removes.
The edited file is replaced, so it cannot carry the lock: a sidecar
`.NAME.keyresponse-lock` next to it does, while the edit lasts.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keyresponse.errors import KeyresponseError
from keyresponse.faults import crashpoint

TMP_MARK = ".keyresponse-tmp"
LOCK_MARK = ".keyresponse-lock"


class OwnerError(Exception):
    """The replacement cannot keep the original's owner: we run as somebody else."""


_NO_ROOM = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is too large: it would pass this process's file-size limit (ulimit -f) "
                 "or the file system's largest file",
}


def no_room(exc: BaseException) -> str | None:
    """What ran out, when `exc` is a write that found no room (full disk or quota, file-size
    limit); None for any other error."""
    return _NO_ROOM.get(exc.errno) if isinstance(exc, OSError) and exc.errno is not None else None


class NoRoom(KeyresponseError):
    """A whole-file write found no room; the file is as it was (the temp file is gone)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}",
                         hint="free space on that disk (or lift the file-size limit), then run it again")
        self.path, self.reason = path, reason


def lock_path(real: Path) -> Path:
    return real.with_name(f".{real.name}{LOCK_MARK}")


@contextmanager
def locked(lock_file: Path, wait: float) -> Iterator[bool]:
    """flock on `lock_file` (the edited file's sidecar: `lock_path(real)`), which is
    removed again on the way out: nothing is left beside the user's files. Yields False if the lock could not be had within `wait` seconds, or the lock
    file cannot be created (a read-only folder: the caller reports why).

    Removing a lock file is safe only with a check: a waiter that opened the file before
    its holder removed it gets a lock on a file nobody else can see any more, so after
    locking, the file at the path must still be the one locked; if not, it tries again."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield False
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.02)
            if not _still_at(fd, lock_file):
                continue  # its holder removed it while we waited: lock the current one
            try:
                yield True
            finally:
                Path(lock_file).unlink(missing_ok=True)  # still holding it: no one can be between
            return
        finally:
            os.close(fd)  # closing drops the flock


def _still_at(fd: int, path: Path) -> bool:
    try:
        at = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (at.st_dev, at.st_ino) == (mine.st_dev, mine.st_ino)


def unwritable(real: Path) -> tuple[str, str] | None:
    """(problem, fix) that stops an atomic replace of the existing file `real`, or None."""
    st = real.stat()
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file", f"point keyresponse at the file itself, not {real}"
    # the mode bit too: root may write anything, but a read-only file says "leave me alone"
    if not st.st_mode & stat.S_IWUSR or not os.access(real, os.W_OK):
        return "the file is read-only; keyresponse does not replace it behind its owner's back", \
            f"make it writable (chmod u+w {real}) or update it by hand"
    if not os.access(real.parent, os.W_OK | os.X_OK):
        return f"its folder {real.parent} is not writable (needed for an atomic replace)", \
            "make the folder writable for this user"
    return None


def leftovers(real: Path, *, remove: bool = False) -> list[Path]:
    """Temp files a writer killed mid-way left beside `real` (removed when asked: only
    under the lock, where no live writer can own one)."""
    found = list(real.parent.glob(f".{glob.escape(real.name)}{TMP_MARK}*")) if real.parent.is_dir() else []
    for leftover in found if remove else ():
        leftover.unlink(missing_ok=True)
    return found


def write_atomic(real: Path, data: bytes, *, crash_label: str | None = None) -> Path:
    """Make `real` hold exactly `data`, atomically and durably. The one way keyresponse
    writes a whole file (incident files, env files, the inventory).

    The guarantee: a reader sees the old content or the new, never a mix; once this
    returns, the content and its name survive a power cut (the file and its folder are
    fsynced); while it is written the bytes sit in a temp file of a unique name
    (`.NAME.keyresponse-tmp*`, mode 0600: they may be a secret), so two writers of one
    file never share one, and a writer killed mid-way leaves only that temp file. A
    file that existed keeps its owner and mode; a new one is created 0600.
    `crash_label` names the fault-injection points (`<label>:mid-write`,
    `<label>:before-replace`) the crash-safety tests kill at. NoRoom when the disk, the
    quota or the file-size limit has no room for it."""
    try:
        return _write_atomic(real, data, crash_label)
    except OSError as exc:
        reason = no_room(exc)
        if reason is None:
            raise
        raise NoRoom(real, reason) from None


def _writer_tag() -> str:
    """Who writes a temp file: `<pid namespace>.<pid>`. A pid means something only in its
    own namespace (a container's, the host's), so a state dir shared across them never
    has one side's live temp files taken for a dead writer's by the other."""
    try:
        space = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        space = 0
    return f"{space}.{os.getpid()}"


def temp_prefix(real: Path) -> str:
    return f".{real.name}{TMP_MARK}{_writer_tag()}-"


def _dead_writers(real: Path) -> None:
    """Remove the temp files beside `real` whose writer is gone: each is named after its
    writer (`.NAME.keyresponse-tmp<pid namespace>.<pid>-*`), and a pid of this namespace
    that no longer runs was killed mid-write. A live writer's (another process, another
    thread, another namespace) is left alone."""
    space, _, mine = _writer_tag().partition(".")
    for leftover in leftovers(real):
        tag = leftover.name[len(f".{real.name}{TMP_MARK}"):].partition("-")[0]
        their_space, _, pid = tag.partition(".")
        if their_space != space or not pid.isdigit() or pid == mine:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass  # it runs, as another user


def _write_atomic(real: Path, data: bytes, crash_label: str | None) -> Path:
    st = real.stat() if real.exists() else None
    _dead_writers(real)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(real), dir=real.parent)
    try:
        try:
            if st is not None:
                _keep_owner(fd, st)
            half = len(data) // 2
            write_all(fd, data[:half])
            if crash_label:
                crashpoint(f"{crash_label}:mid-write")
            write_all(fd, data[half:])
            os.fsync(fd)
            # mode last: chown may clear set-id bits; mkstemp's 0600 held the value until now
            os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o600)
        finally:
            os.close(fd)
        if crash_label:
            crashpoint(f"{crash_label}:before-replace")
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(real.parent)  # the rename itself must survive a power cut
    return real


def replace(real: Path, data: bytes, *, crash_label: str) -> None:
    """Atomically make `real` hold `data` (see `write_atomic`, which this is)."""
    write_atomic(real, data, crash_label=crash_label)


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than it was given (a signal, a full pipe): loop until done."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(folder: Path) -> None:
    """Make the entries of `folder` (a file created, renamed or removed in it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep_owner(fd: int, st: os.stat_result) -> None:
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        mine = os.fstat(fd)
        if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
            raise OwnerError(f"cannot keep the file's owner {st.st_uid}:{st.st_gid} (running as "
                             f"{mine.st_uid}:{mine.st_gid})") from None
