"""`uses:` name -> the class that implements it. One explicit table, imported lazily.

A playbook naming anything else fails at load time, before any step runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyresponse.action import Action

ACTIONS: dict[str, str] = {
    "log.message": "keyresponse.actions.builtin:LogMessage",
    "wait.approval": "keyresponse.actions.builtin:WaitApproval",
    "key.find": "keyresponse.actions.key:Find",
    "key.revoke": "keyresponse.actions.key:Revoke",
    "key.probe": "keyresponse.actions.key_probe:Probe",
    "key.issue": "keyresponse.actions.key_issue:Issue",
    "key.retire": "keyresponse.actions.key_issue:Retire",
    "key.audit": "keyresponse.actions.key_audit:Audit",
    "key.hunt": "keyresponse.actions.key_hunt:Hunt",
    "key.drain": "keyresponse.actions.key_drain:Drain",
    "key.closure": "keyresponse.actions.key_closure:Closure",
    "admin_key.find": "keyresponse.actions.admin_key:Find",
    "admin_key.issue": "keyresponse.actions.admin_key:Issue",
    "admin_key.probe": "keyresponse.actions.admin_key:Probe",
    "admin_key.use": "keyresponse.actions.admin_key:Use",
    "admin_key.revoke": "keyresponse.actions.admin_key:Revoke",
    "inventory.record": "keyresponse.actions.inventory:Record",
    "targets.deploy": "keyresponse.actions.targets:Deploy",
    "targets.restart": "keyresponse.actions.targets:Restart",
    "notify.slack": "keyresponse.actions.notify:Slack",
    "report.render": "keyresponse.actions.report:Render",
    "exposure.scan": "keyresponse.actions.exposure:Scan",
}

# Actions registered at run time: by tests, or by modules named in
# KEYRESPONSE_ACTION_MODULES (comma-separated; each calls `register` on import).
_EXTRA: dict[str, type[Action]] = {}
_loaded_env = False


def _load_env_modules() -> None:
    global _loaded_env
    if _loaded_env:
        return
    _loaded_env = True
    import os

    for module in filter(None, (m.strip() for m in os.environ.get("KEYRESPONSE_ACTION_MODULES", "").split(","))):
        importlib.import_module(module)


def names() -> list[str]:
    _load_env_modules()
    return sorted(set(ACTIONS) | set(_EXTRA))


def register(name: str, cls: type[Action]) -> None:
    _EXTRA[name] = cls


def unregister(name: str) -> None:
    _EXTRA.pop(name, None)


def get(name: str) -> type[Action]:
    """The action class for `name`; KeyError if unknown."""
    _load_env_modules()
    if name in _EXTRA:
        return _EXTRA[name]
    module_name, _, attr = ACTIONS[name].partition(":")
    cls: type[Action] = getattr(importlib.import_module(module_name), attr)
    return cls
