"""What several commands share: finding and loading the inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keyresponse.errors import ConfigError


def load_config(config: Path, *, required: bool = True) -> Any:
    """The loaded inventory at `config`; an empty one when it is absent and not required."""
    from keyresponse.inventory import empty, load_inventory

    if not config.exists():
        if not required:
            return empty()
        raise ConfigError(
            f"no inventory at {config}",
            hint="write one with `keyresponse init`, try everything with `keyresponse demo`, "
            "or point at yours with --config / KEYRESPONSE_CONFIG",
        )
    return load_inventory(config)


def did_you_mean(word: str, known: list[str]) -> str:
    """` (did you mean 'x'?)`, or "" when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_key_name(inventory: Any, name: str | None) -> None:
    """An inventory key name that is not in the inventory is a usage error, with the nearest name."""
    if name is None or inventory.path is None or name in inventory.model.keys:
        return
    from keyresponse.errors import UsageError

    known = sorted(str(k) for k in inventory.model.keys)
    raise UsageError(f"no key named {name!r} in {inventory.path.name}{did_you_mean(name, known)}",
                     hint=f"known: {', '.join(known) or 'none'}; `keyresponse keys` lists the provider's keys")


def open_incident(inventory: Any, incident_id: str) -> Any:
    """The incident with this id or unique id prefix; an unknown or ambiguous one is a usage error."""
    from keyresponse.errors import UsageError
    from keyresponse.journal import Incident

    state = inventory.root / ".keyresponse"
    ids = [i.id for i in Incident.all(state)]
    if incident_id in ids:
        return Incident.open(state, incident_id)
    matches = [i for i in ids if i.startswith(incident_id)]
    if len(matches) == 1:
        return Incident.open(state, matches[0])
    if matches:
        raise UsageError(f"incident id {incident_id!r} is ambiguous: {', '.join(matches[:5])}"
                         + (" …" if len(matches) > 5 else ""), hint="give more of the id")
    raise UsageError(f"no incident {incident_id!r} under {state / 'incidents'}{did_you_mean(incident_id, ids)}",
                     hint="`keyresponse incidents --all` lists them")
