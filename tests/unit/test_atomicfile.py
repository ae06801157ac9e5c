"""atomicfile: the lock leaves nothing behind and still excludes, under contention."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from keyresponse import atomicfile


def test_the_lock_excludes_and_leaves_no_file(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    counter.write_text("0")
    lock = atomicfile.lock_path(counter)
    inside = []

    def bump() -> None:
        for _ in range(20):
            with atomicfile.locked(lock, wait=30) as held:
                assert held
                inside.append(1)
                assert len(inside) == 1, "two holders at once"
                value = int(counter.read_text())
                time.sleep(0.0005)  # widen the window a lost update would need
                counter.write_text(str(value + 1))
                inside.pop()

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == str(8 * 20)
    assert not lock.exists()


def test_a_lock_not_had_in_time_says_so(tmp_path: Path) -> None:
    lock = tmp_path / ".x.keyresponse-lock"
    with atomicfile.locked(lock, wait=5) as first:
        assert first
        with atomicfile.locked(lock, wait=0.1) as second:
            assert not second
    assert not lock.exists()


def test_a_folder_that_cannot_hold_the_lock_says_so(tmp_path: Path) -> None:
    with atomicfile.locked(tmp_path / "missing" / "lock", wait=1) as held:
        assert not held
