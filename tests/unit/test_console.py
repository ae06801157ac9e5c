"""The live step list, as a terminal 80 columns wide shows it."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

from keyresponse.action import Check
from keyresponse.console import LiveReporter
from keyresponse.outcome import StepResult

ERROR = ("1 of 6 targets: failed:\n  - GitHub secret acme/chatbot:OPENAI_API_KEY: write the secret: github: PUT "
         "/github/repos/acme/chatbot/actions/secrets/OPENAI_API_KEY -> 403: Forbidden (hint: give the token "
         "'Secrets: read and write')")


def _screen(width: int) -> str:
    from rich.console import Console

    reporter = LiveReporter()
    buffer = io.StringIO()
    reporter.console = Console(file=buffer, width=width, force_terminal=False, highlight=False, no_color=True)
    steps: list[Any] = [SimpleNamespace(id="find", title="Identify the leaked key", uses="key.find"),
                        SimpleNamespace(id="deploy", title="Deploy the replacement to every target",
                                        uses="targets.deploy")]
    reporter.order = steps
    reporter.rows = {"find": ["applied", "0.0s  find key_7eCZ32JgdPI1af7W at the provider"],
                     "deploy": ["pending", ""]}
    reporter.step_finished(steps[1], StepResult(
        id="deploy", uses="targets.deploy", status="failed", duration=0.1, summary="deploy sk-proj-…XNGa to 6 targets",
        error=ERROR, hint="fix each cause above", checks=[Check("token can write", False, "403", "grant it")]))
    reporter.console.print(reporter._render())
    return buffer.getvalue()


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_step_list_fits_80_columns_and_shows_each_error_once_in_full() -> None:
    screen = _screen(80)
    assert max(len(line) for line in screen.splitlines()) <= 80, screen
    flat = _words(screen)
    for part in ("write the secret: github: PUT /github/repos/acme/chatbot/actions/secrets/OPENAI_API_KEY -> 403",
                 "fix each cause above", "token can write"):
        assert _words(part) in flat.replace("/ ", "/"), screen
    assert flat.count("write the secret") == 1
    assert "…" not in screen.replace("sk-proj-…XNGa", "")  # nothing cut short
    # each step's title and summary on its own line, not squeezed into a narrow column
    assert any(line.startswith("✘ Deploy the replacement") for line in screen.splitlines()), screen
