"""`keyresponse keys`: every key the organization's admin key can see, to build the inventory from.

Read-only: the client refuses anything but GET. Each row says which inventory
entry already covers the key (by `key_id`, or by the value in its `secret_env`).
"""

from __future__ import annotations

from typing import Any

from keyresponse.errors import ConfigError


def list_keys(inventory: Any, provider_name: str | None = None) -> list[dict[str, Any]]:
    """Rows of project_id, project_name, key_id, name, redacted_value, owner_type, owner_id,
    owner_name, created_at, last_used_at (ISO 8601 UTC or None), provider, inventory_name;
    most recently used first within each project."""
    from keyresponse import http
    from keyresponse.providers.openai import OpenAIProvider

    providers = inventory.model.providers
    if provider_name is not None and provider_name not in providers:
        raise ConfigError(f"no provider {provider_name!r} in the inventory",
                          hint=f"known: {', '.join(providers) or 'none'}")
    chosen = {n: p for n, p in providers.items() if provider_name in (None, n) and p.kind == "openai"}
    if not chosen:
        raise ConfigError("the inventory names no OpenAI provider",
                          hint="add `providers: {openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}}`")
    rows: list[dict[str, Any]] = []
    for name, cfg in chosen.items():
        token = inventory.credential(cfg.admin_key_env, "OpenAI admin key")
        with http.build_client("openai", cfg.base_url, {"Authorization": f"Bearer {token}"}, read_only=True) as client:
            provider = OpenAIProvider(client, prices=cfg.prices)
            projects = provider.project_names()
            keys = [k for batch in provider.fan_out(provider.list_keys, list(projects)) for k in batch]
        covers = _inventory_index(inventory, name)
        for k in keys:
            row = k.outputs()
            row.update(provider=name, project_name=projects.get(k.project_id, ""),
                       inventory_name=covers.get(k.key_id) or _by_value(inventory, name, k))
            rows.append(row)
    rows.sort(key=lambda r: (r["provider"], r["project_id"], -_ts(r["last_used_at"]), r["key_id"]))
    return rows


def _inventory_index(inventory: Any, provider_name: str) -> dict[str, str]:
    return {entry.key_id: kname for kname, entry in inventory.model.keys.items()
            if entry.key_id and entry.provider == provider_name}


def _by_value(inventory: Any, provider_name: str, key: Any) -> str | None:
    from keyresponse.secret import secret_from_env

    for kname, entry in inventory.model.keys.items():
        if entry.provider == provider_name and entry.secret_env and not entry.key_id:
            value = secret_from_env(entry.secret_env)
            if value is not None and key.matches(value.reveal()):
                return str(kname)
    return None


def _ts(value: str | None) -> int:
    from keyresponse.providers.base import epoch

    return epoch(value) or 0
