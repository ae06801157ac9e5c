"""The HTML report in a real browser: headless Chromium (Debian's `chromium` package).

It must render with no console message at all (the page has no script, and its
Content-Security-Policy would log any asset or script that slipped in), with the
SVG usage chart in the DOM. A screenshot and a PDF print go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from keyresponse.journal import Incident
from keyresponse.report import render, sample

pytestmark = pytest.mark.chromium

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = "<script>alert(1)</script>{{ 7*7 }}"


@pytest.fixture(scope="module", autouse=True)
def _need_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (.ci/run does)")


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--hide-scrollbars", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, url],
        capture_output=True, text=True, timeout=90, check=False,
    )


def console(stderr: str) -> list[str]:
    """Messages the page logged (Chromium prints them as INFO:CONSOLE lines with logging on)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chromium")
    incident = Incident.create(root / ".keyresponse")
    sample.write(incident.journal.path, sample.records(key_name=HOSTILE))
    return render.render_incident(incident, None, formats=("html",))["html"]


def test_report_renders_with_no_console_messages_and_the_chart(report_html: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, report_html.as_uri(), "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console(done.stderr) == []
    dom = done.stdout
    assert re.search(r'<svg [^>]*class="chart"', dom)
    assert dom.count('class="bar anomalous"') == 6 and 'class="leak"' in dom
    assert "<script" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}" in dom
    assert '<section id="audit">' in dom and '<section id="timeline">' in dom


def test_screenshot_and_print_are_saved_as_artifacts(report_html: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    png, pdf = ARTIFACTS / "report.png", ARTIFACTS / "report.pdf"
    for path in (png, pdf):
        path.unlink(missing_ok=True)
    shot = chromium(tmp_path, report_html.as_uri(), f"--screenshot={png}", "--window-size=1280,4200")
    assert shot.returncode == 0 and console(shot.stderr) == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    printed = chromium(tmp_path, report_html.as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert printed.returncode == 0 and console(printed.stderr) == []
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", data)) >= 2  # A4 pages, not one long strip


def test_the_console_check_does_see_errors(tmp_path: Path) -> None:
    """Guard for the guard: a page that does log is caught, so an empty console means something."""
    page = tmp_path / "noisy.html"
    page.write_text('<!doctype html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
                    '<img src="https://example.invalid/x.png"><p>hi</p>')
    done = chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert any("Content Security Policy" in line for line in console(done.stderr))
