"""Every kind of target and of platform: one line each, imported lazily (as pre-commit's
`all_languages`). The inventory's schema is built from these tables.

A target module exports

    kind          "github", "envfile", ...
    Settings      its settings model (an inventory.TargetSettings, `kind: Literal[...]`)
    from_config   (settings, env: base.TargetEnv) -> a base.Target

and, when its targets live on a platform, `Platform` (an inventory.PlatformSettings).
Adding a kind is one module and one line here (and, for a platform, its sandbox
emulator). Kinds can also be added at run time: `register(module)`, or the modules
named in KEYRESPONSE_TARGET_MODULES (comma-separated), which are registered when
the tables are first read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from types import ModuleType

    from keyresponse.inventory import PlatformSettings, TargetSettings
    from keyresponse.targets.base import TargetKind

TARGETS: dict[str, str] = {
    "envfile": "keyresponse.targets.envfile",
    "github": "keyresponse.targets.github",
    "gitlab": "keyresponse.targets.gitlab",
    "command": "keyresponse.targets.command",
}

PLATFORMS: dict[str, str] = {
    "github": "keyresponse.targets.github",
    "gitlab": "keyresponse.targets.gitlab",
}

ENV_MODULES = "KEYRESPONSE_TARGET_MODULES"

_extra_targets: dict[str, TargetKind] = {}
_extra_platforms: dict[str, type[PlatformSettings]] = {}
_loaded_env = False
_loading_env = False  # a module named in the env var may call register() as it is imported


def target_kind(kind: str) -> TargetKind:
    """The module of target kind `kind`; KeyError if there is none."""
    _load_env_modules()
    if kind in _extra_targets:
        return _extra_targets[kind]
    return cast("TargetKind", importlib.import_module(TARGETS[kind]))


def target_kinds() -> list[str]:
    _load_env_modules()
    return list(dict.fromkeys([*TARGETS, *_extra_targets]))


def settings_models() -> list[type[TargetSettings]]:
    """Every target kind's settings model, for the inventory's union."""
    return [target_kind(kind).Settings for kind in target_kinds()]


def platform_model(kind: str) -> type[PlatformSettings]:
    """The settings model of platform kind `kind`; KeyError if there is none."""
    _load_env_modules()
    if kind in _extra_platforms:
        return _extra_platforms[kind]
    model: type[PlatformSettings] = importlib.import_module(PLATFORMS[kind]).Platform
    return model


def platform_models() -> list[type[PlatformSettings]]:
    _load_env_modules()
    return [platform_model(kind) for kind in dict.fromkeys([*PLATFORMS, *_extra_platforms])]


def register(module: ModuleType | TargetKind) -> None:
    """Add a target kind (and its platform, if the module exports `Platform`) at run time."""
    _add(module)
    if not _loading_env:  # else the schema is being built, with it
        _rebuild()


def unregister(kind: str) -> None:
    module = _extra_targets.pop(kind, None)
    platform = getattr(module, "Platform", None)
    if platform is not None:
        _extra_platforms.pop(_platform_kind(platform), None)
    _rebuild()


def _add(module: ModuleType | TargetKind) -> None:
    missing = [name for name in ("kind", "Settings", "from_config") if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{getattr(module, '__name__', module)!r} is not a target module: "
                        f"it lacks {', '.join(missing)}")
    kind = cast("TargetKind", module)
    _extra_targets[kind.kind] = kind
    platform = getattr(module, "Platform", None)
    if platform is not None:
        _extra_platforms[_platform_kind(platform)] = platform


def _platform_kind(model: type[PlatformSettings]) -> str:
    return str(model.model_fields["kind"].default)


def _load_env_modules() -> None:
    global _loaded_env, _loading_env
    if _loaded_env:
        return
    _loaded_env = _loading_env = True
    import os

    try:
        for name in filter(None, (m.strip() for m in os.environ.get(ENV_MODULES, "").split(","))):
            _add(importlib.import_module(name))
    finally:
        _loading_env = False


def _rebuild() -> None:
    import sys

    if "keyresponse.inventory" in sys.modules:  # else its schema is not built yet
        sys.modules["keyresponse.inventory"].rebuild_models()
