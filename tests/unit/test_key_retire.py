"""Which secrets targets may hold, read back from the journal (for key.issue and key.retire)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from keyresponse.actions.key_common import held_masks, written_masks
from keyresponse.journal import Incident


def _ctx(tmp_path: Path, notes: list[dict[str, Any]]) -> Any:
    incident = Incident.create(tmp_path)
    for n in notes:
        incident.journal.append("step.note", step="deploy", **n)
    return SimpleNamespace(incident=incident, step_id="issue")


def test_a_write_cut_short_by_a_crash_may_hold_the_secret(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, [
        {"note": "target.writing", "target": "A", "secret": "m1"},
        {"note": "target", "target": "A", "status": "applied", "secret": "m1"},
        {"note": "target.writing", "target": "B", "secret": "m1"},  # killed here
        {"note": "target.writing", "target": "A", "secret": "m2"},
        {"note": "target", "target": "A", "status": "failed", "error": "refused", "secret": "m2"},
        {"note": "target.writing", "target": "C", "secret": "m2"},
        {"note": "target", "target": "C", "status": "failed", "error": "written, but verify failed", "secret": "m2"},
    ])
    assert written_masks(ctx) == {"m1", "m2"}
    assert held_masks(ctx) == {"A": {"m1"}, "B": {"m1"}, "C": {"m2"}}
