"""One helper runs any Target through describe -> preflight -> write -> verify and
checks the protocol's promises on the way (STYLE.md §6, after pre-commit's
`testing/language_helpers.py`), plus a StepContext builder for action tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from keyresponse.action import Check, StepContext
from keyresponse.inventory import Inventory, LoadedInventory
from keyresponse.journal import Incident
from keyresponse.secret import Secret
from keyresponse.targets.base import Target


@dataclass
class ContractRun:
    description: str
    checks: list[Check]
    note: str | None = None
    verified: bool | None = None


def run_target(target: Target, secret: Secret, *, expect_ready: bool = True) -> ContractRun:
    """describe -> preflight -> write -> verify. With expect_ready=False it stops
    after a preflight that must report at least one problem, each with a fix."""
    value = secret.reveal()
    description = target.describe()
    assert isinstance(description, str) and description and "\n" not in description
    assert value not in description
    assert isinstance(target.kind, str) and target.kind
    assert target.identity.startswith(target.kind + "|") and value not in target.identity
    checks = target.preflight()
    assert checks and all(isinstance(c, Check) for c in checks)
    assert all(value not in c.line() for c in checks)
    problems = [c for c in checks if not c.ok]
    if not expect_ready:
        assert problems, f"expected a preflight problem, got {[c.line() for c in checks]}"
        assert all(c.fix for c in problems), "every failed check carries a one-line fix"
        return ContractRun(description, checks)
    assert not problems, [c.line() for c in problems]
    note = target.write(secret)
    assert note is None or (isinstance(note, str) and value not in note)
    verified = target.verify(secret)
    assert isinstance(verified, bool)
    return ContractRun(description, checks, note, verified)


@dataclass
class Events:
    progress: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __call__(self, kind: str, message: str) -> None:
        (self.progress if kind == "progress" else self.warnings).append(message)


def make_ctx(tmp_path: Path, inventory: dict[str, Any], *, key: str = "k", attempt: int = 1,
             http: Callable[[str, str, dict[str, str]], httpx.Client] | None = None,
             incident: Incident | None = None, step_id: str = "deploy") -> tuple[StepContext, Events]:
    """A StepContext over a real incident folder in tmp_path; `http(service, base_url,
    headers)` makes the clients (an httpx.MockTransport over a fake, or the sandbox)."""
    model = Inventory.model_validate(inventory)
    loaded = LoadedInventory(model, tmp_path / "keyresponse.yaml")
    incident = incident or Incident.create(tmp_path / ".keyresponse")
    events = Events()
    ctx = StepContext(
        incident=incident, inventory=loaded, inputs={}, key_name=key, step_id=step_id, attempt=attempt,
        outputs={}, assume_yes=True, interactive=False, deadline=None,
        _http=http or _no_http, _emit=events,
    )
    return ctx, events


def _no_http(service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
    raise AssertionError(f"this test makes no HTTP calls (asked for {service})")


def journal_text(incident: Incident) -> str:
    return (incident.dir / "journal.jsonl").read_text()


def notes(incident: Incident, note: str = "target") -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal_text(incident).splitlines()
            if json.loads(line).get("note") == note]


def new_secret(label: str = "T") -> Secret:
    """A fake OpenAI-shaped key made at run time (never a committed literal)."""
    import secrets

    return Secret("sk-" + "proj-" + label + secrets.token_urlsafe(30).replace("-", "x"))


# Assertions about secret-bearing text. This module is not assert-rewritten by
# pytest, and the messages pass the redactor: a failing test never prints a value.

def check_equal(actual: str | bytes, expected: str | bytes) -> None:
    if actual != expected:
        from keyresponse.secret import REDACTOR

        raise AssertionError(REDACTOR.redact(f"text differs:\n  actual:   {actual!r}\n  expected: {expected!r}"))


def check_in(value: str, text: str, where: str = "the text") -> None:
    if value not in text:
        raise AssertionError(f"expected the value in {where}, but it is not there")


def check_not_in(value: str, text: str, where: str = "the text") -> None:
    if value in text:
        raise AssertionError(f"the secret value leaked into {where}")


class Clients:
    """What the engine does for ctx.http: one client per (service, url, headers), closed at the end."""

    def __init__(self, read_only: bool = False) -> None:
        self.read_only = read_only
        self._made: dict[Any, httpx.Client] = {}

    def __call__(self, service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
        from keyresponse.http import build_client

        key = (service, base_url, tuple(sorted(headers.items())))
        if key not in self._made:
            self._made[key] = build_client(service, base_url, headers, read_only=self.read_only)
        return self._made[key]

    def close(self) -> None:
        for client in self._made.values():
            client.close()
        self._made.clear()
