"""`keyresponse keys`: every key the organization's admin key can see, to build the inventory from.

Read-only: the client refuses anything but GET. Each row says which inventory
entry already covers the key (by `key_id`, or by the value in its `secret_env`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyresponse.commands.common import load_config
from keyresponse.errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from keyresponse.inventory import LoadedInventory
    from keyresponse.providers.base import KeyRecord


def list_keys(inventory: LoadedInventory, provider_name: str | None = None) -> list[dict[str, Any]]:
    """Rows of project_id, project_name, key_id, name, redacted_value, owner_type, owner_id,
    owner_name, created_at, last_used_at (ISO 8601 UTC or None), provider, inventory_name;
    most recently used first within each project."""
    from keyresponse import http
    from keyresponse.actions.key_common import connect

    providers = inventory.model.providers
    if provider_name is not None and provider_name not in providers:
        raise ConfigError(f"no provider {provider_name!r} in the inventory",
                          hint=f"known: {', '.join(providers) or 'none'}")
    chosen = {n: p for n, p in providers.items() if provider_name in (None, n)}
    if not chosen:
        raise ConfigError("the inventory names no provider",
                          hint="add `providers: {openai: {kind: openai, admin_key_env: OPENAI_ADMIN_KEY}}`")
    rows: list[dict[str, Any]] = []
    for name, cfg in chosen.items():
        clients: list[httpx.Client] = []

        def client(service: str, base_url: str, headers: dict[str, str]) -> httpx.Client:
            clients.append(http.build_client(service, base_url, headers, read_only=True))  # noqa: B023
            return clients[-1]  # noqa: B023 - called only within this iteration (closed below)

        try:
            provider = connect(inventory, cfg, client)
            projects = provider.project_names()
            keys = provider.list_keys()
        finally:
            for c in clients:
                c.close()
        covers = _inventory_index(inventory, name)
        for k in keys:
            row = k.outputs()
            row.update(provider=name, project_name=projects.get(k.project_id, ""),
                       inventory_name=covers.get(k.key_id) or _by_value(inventory, name, k))
            rows.append(row)
    rows.sort(key=lambda r: (r["provider"], r["project_id"], -_ts(r["last_used_at"]), r["key_id"]))
    return rows


def keys(config: Path, json_output: bool) -> int:
    inventory = load_config(config)
    rows = list_keys(inventory)
    known = {e.key_id: n for n, e in inventory.model.keys.items() if e.key_id}
    for r in rows:
        r["inventory"] = known.get(r.get("key_id"))
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r.get('project_id', ''):<28} {r.get('key_id', ''):<28} {r.get('name') or ''!s:<24} "
              f"{r.get('redacted_value') or '':<18} {r.get('owner_type') or '':<15} "
              f"last used {r.get('last_used_at') or 'never'}"
              + (f"  [inventory: {r['inventory']}]" if r.get("inventory") else ""))
    return 0




def _inventory_index(inventory: LoadedInventory, provider_name: str) -> dict[str, str]:
    return {entry.key_id: kname for kname, entry in inventory.model.keys.items()
            if entry.key_id and entry.provider == provider_name}


def _by_value(inventory: LoadedInventory, provider_name: str, key: KeyRecord) -> str | None:
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
