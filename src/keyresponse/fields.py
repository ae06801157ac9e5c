"""Field helpers every settings model of the inventory shares (the inventory's own, each
provider's and each target's), in a module that imports nothing of theirs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
CREDENTIAL_MARK = "x-keyresponse-credential-env"  # in the JSON Schema of each credential_env field


def credential_env(description: str, default: Any = ...) -> Any:
    """A field naming the env var that holds a credential. Every such field, in any model
    of the inventory, is listed by `Inventory.credential_env_names()` (and so kept from
    `command` targets' children): declaring it this way is all a new kind has to do."""
    return Field(default, pattern=ENV_NAME, description=description, json_schema_extra={CREDENTIAL_MARK: True})


@dataclass(frozen=True)
class KeyPattern:
    """The shape of a credential a provider or a platform issues: a match in a config file
    is refused, naming `env` as the kind of variable to hold it instead. Provider modules
    and target modules each export theirs as `KEY_PATTERNS`."""

    label: str
    pattern: re.Pattern[str]
    env: str
