"""The inventory settings every provider's `providers:` entry shares; each provider
module subclasses `ProviderSettings` with its own `kind` and fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from keyresponse.fields import credential_env


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    base_url: str
    admin_key_env: str = credential_env("Env var holding the provider's admin credential")
    mint_settle: float = Field(
        60.0, ge=0,
        description="Seconds a mint that got no answer may still take effect; key.retire looks for it that long",
    )
    usage_retention_days: int | None = Field(
        None, ge=1,
        description="Days of usage the provider keeps (unknown by default); key.audit reads no further back",
    )
