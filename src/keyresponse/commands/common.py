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
