"""The code and its tests type-check (mypy --strict, as pyproject.toml configures it) and
pass ruff with the rules pyproject.toml selects (pyflakes, pycodestyle, import order,
pyupgrade, bugbear, ...)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is in the `test` extra")
    out = subprocess.run([sys.executable, "-m", "mypy", "src/keyresponse", "tests"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]


def test_ruff() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is in the `test` extra")
    out = subprocess.run([ruff, "check", "src", "tests", "bench"], cwd=REPO,  # the rules pyproject.toml selects
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:]
