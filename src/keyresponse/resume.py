"""Which steps a resumed incident runs again."""

from __future__ import annotations

from typing import Any

from keyresponse import registry
from keyresponse.journal import has_lost_secret
from keyresponse.outcome import OK_STATUSES
from keyresponse.playbook import LoadedPlaybook


def resume_set(playbook: LoadedPlaybook, statuses: dict[str, str], outputs: dict[str, dict[str, Any]]) -> list[str]:
    """Steps a resume must run: every unfinished or failed one, plus any finished step
    whose secret output died with the process and that a step still to run reads
    (it is run again: `key.issue` revokes its orphan and mints anew) — reading only
    its other outputs, say the new key's id, needs no re-run — plus every finished
    step that read a step being run again."""
    order = [s.id for s in playbook.model.steps]
    todo = {sid for sid in order if statuses.get(sid) not in OK_STATUSES}
    changed = True
    while changed:
        changed = False
        for sid in list(todo):
            for dep, names in playbook.deps.get(sid, {}).items():
                read = outputs.get(dep, {})
                if names is not None:
                    read = {name: read[name] for name in names if name in read}
                if dep not in todo and has_lost_secret(read):
                    todo.add(dep)
                    changed = True
        for sid in order:
            if sid not in todo and any(d in todo and _rerun(d, statuses) for d in playbook.deps.get(sid, ())):
                todo.add(sid)
                changed = True
    # actions that look again on every resume (key.retire: a mint that landed late)
    todo |= {s.id for s in playbook.model.steps if _every_resume(s.uses)}
    if todo:  # `always` steps (report, close) after the first re-run step describe the end state: run them again
        first = min(order.index(sid) for sid in todo)
        todo |= {s.id for s in playbook.model.steps[first:] if s.always}
    return [sid for sid in order if sid in todo]


def _rerun(step_id: str, statuses: dict[str, str]) -> bool:
    return statuses.get(step_id) in OK_STATUSES


def _every_resume(uses: str) -> bool:
    try:
        return bool(getattr(registry.get(uses), "every_resume", False))
    except KeyError:
        return False
