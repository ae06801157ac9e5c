"""The opt-in places: shell history files, Jupyter notebooks' outputs, CI logs saved to disk.
Each copy is found with its file and line, the report's "How it leaked" names its class, and
the value is in no output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyresponse.actions.exposure import Scan, ScanArgs
from keyresponse.report import sections
from keyresponse.report.render import environment
from keyresponse.secret import Secret
from tests.conftest import fake_key
from tests.helpers.target_contract import make_ctx


def _notebook(value: str) -> bytes:
    """A notebook as Jupyter writes it (indent 1, one output line per list item): the key printed
    after another line in a stream output, so the file holds `...\\nsk-...` JSON-escaped."""
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# try the API"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [
            {"name": "stdout", "output_type": "stream", "text": "loaded config\n" + value + "\n"},
        ], "source": ["import os\n", "print('loaded config')\n", "print(os.environ['OPENAI_API_KEY'])"]},
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1).encode()


def _places(tmp_path: Path, value: str) -> dict[str, tuple[Path, int]]:
    home = tmp_path / "home"
    (home / ".local/share/fish").mkdir(parents=True)
    hist = home / ".zsh_history"
    hist.write_text(": 1700000000:0;ls\n: 1700000001:0;export OPENAI_API_KEY=" + value + "\n: 1700000002:0;cd\n")
    nb = tmp_path / "notebooks" / "explore.ipynb"
    nb.parent.mkdir()
    nb.write_bytes(_notebook(value))
    line = next(i for i, s in enumerate(nb.read_text().splitlines(), 1) if value in s)
    assert "\\n" + value in nb.read_text()
    log = tmp_path / "ci-logs" / "build-1234.log"
    log.parent.mkdir()
    noise = "".join(f"2024-05-20T03:00:{i % 60:02d}Z step {i}: ok\n" for i in range(90_000))  # over 2 MB
    log.write_text(noise + f"2024-05-20T03:01:00Z + curl -H 'Authorization: Bearer {value}'\n")
    return {"shell-history": (hist, 3 - 1), "notebook": (nb, line), "ci-log": (log, 90_001)}


@pytest.mark.parametrize("needle", ["value", "shape"])
def test_each_place_is_found_with_file_line_and_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      needle: str) -> None:
    value = fake_key("places")
    where = _places(tmp_path, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings: dict[str, dict[str, Any]] = {
        "shell-history": {"shell_history": True}, "notebook": {"notebooks": ["notebooks"]},
        "ci-log": {"ci_logs": ["ci-logs"]}}
    labels = {"shell-history": "shell history", "notebook": "notebook output", "ci-log": "CI log"}
    md = environment(None, "md").get_template("leak.md.j2")
    for place, exposure in settings.items():
        inventory = {"providers": {"openai": {"kind": "openai", "admin_key_env": "X_ADMIN"}},
                     "keys": {"k": {"targets": []}}, "exposure": exposure}
        ctx, events = make_ctx(tmp_path, inventory, step_id="exposure")
        if needle == "shape":
            ctx.outputs["revoke"] = {"redacted_value": value[:8] + "..." + value[-4:]}
            args = ScanArgs()
        else:
            args = ScanArgs(leaked=Secret(value))
        action = Scan()
        out = action.apply(action.plan(args, ctx), ctx)
        path, line = where[place]
        got = [(f["path"], f["line"], f["place"]) for f in out["findings"]]
        assert got == [(str(path), line, place)], (place, got)
        assert out["findings"][0]["location"] == f"{path}:{line}"
        assert out["cause"]["class"] == place and out["cause"]["label"] == labels[place]
        leak = sections.how_it_leaked({"ran": True, "findings": out["findings"], "repos": out["repos"],
                                       "searched_for": out["searched_for"]}, {"ran": False})
        text = md.render(leak=leak)
        assert f"**{labels[place]}**" in text and f"{path}:{line}" in text, text
        everything = json.dumps(out, default=str) + text + json.dumps(events.__dict__, default=str)
        everything += "".join(f.read_text(errors="replace") for f in ctx.incident.dir.rglob("*") if f.is_file())
        assert value not in everything
