"""Key issuers, by `kind:`. One explicit table, each module imported only when used.

A provider is one module that exports what `ProviderModule` (base.py) names: its
`kind`, its inventory settings model, the patterns of its credentials (a literal one
in a config file is refused) and `connect()`, which returns a `Provider`. Adding
one is that module, one line below, and its sandbox emulator.

Modules registered at run time (by tests, or named in KEYRESPONSE_PROVIDER_MODULES,
comma-separated, each calling `register` on import) join the table; the inventory's
`providers:` entries and its JSON Schema are read from it.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from types import ModuleType

    from keyresponse.providers.base import ProviderModule

PROVIDERS: dict[str, str] = {
    "openai": "keyresponse.providers.openai",
}

_EXTRA: dict[str, ProviderModule | ModuleType] = {}
_loaded_env = False


def _load_env_modules() -> None:
    global _loaded_env
    if _loaded_env:
        return
    _loaded_env = True
    for name in filter(None, (m.strip() for m in os.environ.get("KEYRESPONSE_PROVIDER_MODULES", "").split(","))):
        importlib.import_module(name)


def register(module: ProviderModule | ModuleType) -> None:
    """Add a provider module (anything with the attributes `ProviderModule` names)."""
    _EXTRA[str(module.KIND)] = module


def unregister(kind: str) -> None:
    _EXTRA.pop(kind, None)


def kinds() -> list[str]:
    _load_env_modules()
    return sorted(set(PROVIDERS) | set(_EXTRA))


def module(kind: str) -> ProviderModule:
    """The module of provider `kind`; KeyError if unknown."""
    _load_env_modules()
    found = _EXTRA[kind] if kind in _EXTRA else importlib.import_module(PROVIDERS[kind])
    return cast("ProviderModule", found)


def modules() -> list[ProviderModule]:
    return [module(k) for k in kinds()]
