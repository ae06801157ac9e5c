"""The demo tells how the key leaked: a real `keyresponse demo` in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _leaked(folder: Path) -> str:
    for line in (folder / "sandbox.env").read_text().splitlines():
        if line.startswith("SANDBOX_LEAKED_KEY="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise AssertionError("sandbox.env names no leaked key")


@pytest.mark.slow
def test_the_demo_names_the_commit_that_leaked_the_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "GITHUB", "GITLAB", "SLACK", "SANDBOX"))}
    out = subprocess.run([sys.executable, "-m", "keyresponse", "demo"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    repo = tmp_path / "repos" / "chatbot"
    git = ["git", "-C", str(repo)]
    added = subprocess.run([*git, "log", "--all", "--format=%H", "--diff-filter=A", "--", ".env"],
                           capture_output=True, text=True, check=True).stdout.split()
    removed = subprocess.run([*git, "log", "--format=%H", "--diff-filter=D", "--", ".env"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(added) == 1 and len(removed) == 1
    commit = added[0]

    summary = out.stderr[out.stderr.index("── incident "):]
    line = next(s for s in summary.splitlines() if s.strip().startswith("acme/chatbot:"))
    assert ".env:3" in line and commit[:10] in line

    incident = next((tmp_path / ".keyresponse" / "incidents").iterdir())
    report = json.loads((incident / "report.json").read_text())
    leak = report["leak"]
    assert (leak["commit"], leak["path"], leak["line"], leak["class"]) == (commit, ".env", 3, "committed-env")
    assert leak["public"] is True and leak["removed_in"] == removed[0] and leak["in_head"] is False
    assert "refs/heads/feature/streaming" in leak["refs"]
    # exposed six hours before the audit's first abusive hour
    assert leak["first_abuse"] == report["audit"]["first_anomalous_hour"] and leak["window_text"] == "6h 00m"
    checks = {p["title"]: p for p in leak["prevention"]}
    assert "not ignored" in checks["Ignore .env in acme/chatbot"]["detail"]
    assert "push protection disabled" in checks["Turn on secret scanning and push protection for acme/chatbot"]["detail"]
    assert "git filter-repo --invert-paths --path .env" in checks["Rewrite acme/chatbot's history"]["detail"]
    assert {a["title"] for a in report["action_items"]} >= set(checks)

    html = (incident / "report.html").read_text()
    section = html[html.index('<section id="how-it-leaked">'):]
    section = section[:section.index("</section>")]
    assert commit in section and "<code>.env</code>" in section and "committed .env file" in section
    assert "public" in section and "6h 00m" in section

    value = _leaked(tmp_path)
    assert value not in out.stdout + out.stderr
    for p in (tmp_path / ".keyresponse").rglob("*"):
        if p.is_file():
            assert value.encode() not in p.read_bytes(), p

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:  # the section as a reader sees it
        shot = incident / "how-it-leaked.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1200,4000", (incident / "report.html").as_uri()],
                       capture_output=True, timeout=60, check=False)
        assert shot.is_file() and shot.stat().st_size > 10_000
