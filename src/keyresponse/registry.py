"""`uses:` name -> the class that implements it. One explicit table, imported lazily.

A playbook naming anything else fails at load time, before any step runs.
"""

from __future__ import annotations

import importlib
from typing import Any

ACTIONS: dict[str, str] = {
    "log.message": "keyresponse.actions.builtin:LogMessage",
    "wait.approval": "keyresponse.actions.builtin:WaitApproval",
    "key.find": "keyresponse.actions.key:Find",
    "key.revoke": "keyresponse.actions.key:Revoke",
    "key.probe": "keyresponse.actions.key:Probe",
    "key.issue": "keyresponse.actions.key:Issue",
    "key.audit": "keyresponse.actions.key:Audit",
    "targets.deploy": "keyresponse.actions.targets:Deploy",
    "targets.restart": "keyresponse.actions.targets:Restart",
    "notify.slack": "keyresponse.actions.notify:Slack",
    "report.render": "keyresponse.actions.report:Render",
    "exposure.scan": "keyresponse.actions.exposure:Scan",
}

# Actions only tests register (see tests/helpers/actions.py).
_EXTRA: dict[str, Any] = {}


def names() -> list[str]:
    return sorted(set(ACTIONS) | set(_EXTRA))


def register(name: str, cls: Any) -> None:
    _EXTRA[name] = cls


def unregister(name: str) -> None:
    _EXTRA.pop(name, None)


def get(name: str) -> Any:
    """The action class for `name`; KeyError if unknown."""
    if name in _EXTRA:
        return _EXTRA[name]
    module_name, _, attr = ACTIONS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
