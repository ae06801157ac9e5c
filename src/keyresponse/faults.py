"""Crash points for tests of crash safety: ``KEYRESPONSE_CRASH_AT=NAME`` makes the
process SIGKILL itself when it reaches `crashpoint(NAME)`, as a power cut would.
Names: ``after:<step id>`` (the engine, once the step's end is journaled) and
points inside actions such as ``key.issue:after-mint``."""

from __future__ import annotations

import os
import signal


def crashpoint(name: str) -> None:
    if os.environ.get("KEYRESPONSE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
