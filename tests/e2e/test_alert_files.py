"""A hostile `--from-alert FILE` is refused before anything changes: a real `keyresponse`
process against the sandbox, its peak memory read from the kernel (wait4), exit 2, no
request that changes anything, every file in the folder byte-identical."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALERT_FIXTURES
from tests.e2e.conftest import World
from tests.helpers.measured import run_measured

PEAK_MB = 200
HANG = 30  # seconds: a refusal takes a fraction of one; a hang guard, not a timing check
ADDRESS_SPACE = 3 << 30  # a regression that reads without bound dies of MemoryError, not the host


# The child caps its own address space, then runs the CLI (no preexec_fn: this process has threads).
LIMITED = (f"import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE})); "
           "sys.argv[0] = 'keyresponse'; runpy.run_module('keyresponse', run_name='__main__', alter_sys=True)"
           )


def kr(world: World, *args: str) -> tuple[int, str, float]:
    """Exit code, stderr and peak memory (MB) of `keyresponse ARGS` run in the world's folder."""
    ran = run_measured([sys.executable, "-c", LIMITED, *args], cwd=world.dir, env=world.env, hang=HANG,
                       files=world.dir.parent / world.dir.name)
    return ran.returncode, ran.stderr, ran.peak_mb


def _fingerprint(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        if p.is_file() and st.st_size <= 1 << 24:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:  # a directory, a FIFO, or the sparse giant (hashing it proves nothing more)
            out[str(p.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def refused(world: World, alert: str | Path) -> str:
    """Run the leaked-key playbook from ALERT; assert it is refused up front. Returns stderr."""
    before_files = _fingerprint(world.dir)
    before = world.sandbox.state.mutation_count
    rc, err, peak = kr(world, "run", "leaked-key", "--from-alert", str(alert), "--yes")
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err and "unexpected" not in err, err[-3000:]
    assert world.sandbox.state.mutations[before:] == []
    assert _fingerprint(world.dir) == before_files
    assert not (world.dir / ".keyresponse" / "incidents").exists() or not any(
        (world.dir / ".keyresponse" / "incidents").iterdir()), "a refused alert opened an incident"
    assert peak < PEAK_MB, f"peak memory {peak:.0f} MB"
    return err


def test_dev_zero_is_refused_without_reading_it(world: World) -> None:
    err = refused(world, "/dev/zero")
    assert "not a regular file" in err


def test_a_huge_sparse_file_is_refused_by_its_size(world: World) -> None:
    big = world.dir / "alerts" / "big.json"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(200 << 20)
    err = refused(world, big)
    assert "larger than" in err


def test_a_fifo_is_refused_without_blocking(world: World) -> None:
    fifo = world.dir / "alert.fifo"
    os.mkfifo(fifo)
    err = refused(world, fifo)
    assert "not a regular file" in err


def test_a_directory_is_refused(world: World) -> None:
    (world.dir / "alerts").mkdir()
    err = refused(world, world.dir / "alerts")
    assert "not a regular file" in err


def test_deep_nesting_is_refused(world: World) -> None:
    deep = world.dir / "deep.json"
    deep.write_text("[" * 100_000)
    err = refused(world, deep)
    assert "nested" in err


# (fixture, where an object sits in it): each is replaced by a string.
WRONG_TYPES: list[tuple[str, list[str | int]]] = [
    ("github-webhook-secret_scanning_alert-reopened.json", ["alert"]),
    ("github-webhook-secret_scanning_alert-reopened.json", ["repository"]),
    ("github-webhook-secret_scanning_alert_location-created.json", ["location", "details"]),
    ("github-rest-secret-scanning-alert-list.json", [0, "first_location_detected"]),
    ("github-rest-secret-scanning-locations.json", [0, "details"]),
    ("trufflehog-v3.jsonl", ["SourceMetadata"]),
    ("trufflehog-v3.jsonl", ["SourceMetadata", "Data"]),
    ("trufflehog-v3.jsonl", ["SourceMetadata", "Data", "Git"]),
    ("gitguardian-incident.json", ["detector"]),
    ("gitguardian-webhook-incident_triggered.json", ["incident"]),
    ("gitguardian-webhook-new_occurrence.json", ["occurrence", "source"]),
    ("gitguardian-scan-multiscan-response.json", [0, "policy_breaks", 0]),
    ("detect-secrets-baseline.json", ["results"]),
]


def _jsonpath(where: list[str | int]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)


@pytest.mark.parametrize(("fixture", "where"), WRONG_TYPES, ids=[f"{f}:{_jsonpath(w)}" for f, w in WRONG_TYPES])
def test_a_string_where_an_object_belongs_names_the_field(world: World, fixture: str,
                                                          where: list[str | int]) -> None:
    text = (ALERT_FIXTURES / fixture).read_text()
    jsonl = fixture.endswith(".jsonl")
    data = json.loads(text.splitlines()[0] if jsonl else text)
    bad = copy.deepcopy(data)
    parent = bad
    for step in where[:-1]:
        parent = parent[step]
    assert isinstance(parent[where[-1]], (dict, list)), "the fixture no longer has an object there"
    parent[where[-1]] = "oops"
    alert = world.dir / ("bad" + (".jsonl" if jsonl else ".json"))
    alert.write_text(json.dumps(bad) + "\n")
    err = refused(world, alert)
    assert f"{_jsonpath(where)}: expected an" in err and "got a string" in err, err[-2000:]
