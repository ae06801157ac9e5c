"""OpenAI's organization admin API keys (`/organization/admin_api_keys`): list, read,
mint and delete them, and try one. The playbook leaked-admin-key speaks only this.

Wire contract: tests/specs/openai-admin.openapi.yaml. A mint answers the value once
(`value`); lists and reads carry only `redacted_value`. A deleted or unknown admin key
is 404 to read or delete, and 401 when it authenticates a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keyresponse.errors import AnswerLost, ProviderError, ServiceError
from keyresponse.providers.base import ProbeResult, iso, redacted_matches
from keyresponse.providers.openai import SERVICE, OpenAIClient, OpenAISettings, _decoded, _deleted
from keyresponse.secret import Secret

if TYPE_CHECKING:
    import httpx

    from keyresponse.providers.base import HttpFactory
    from keyresponse.providers.settings import ProviderSettings

PATH = "organization/admin_api_keys"


@dataclass(frozen=True)
class AdminKey:
    """One admin key as the organization lists it: everything but its value."""

    key_id: str
    name: str = ""
    redacted_value: str = ""
    created_at: int | None = None
    last_used_at: int | None = None
    expires_at: int | None = None
    owner_id: str = ""
    owner_name: str = ""

    def outputs(self) -> dict[str, Any]:
        """The step-output form; the report reads the same names as a project key's."""
        return {"key_id": self.key_id, "name": self.name, "redacted_value": self.redacted_value,
                "owner_type": "user", "owner_id": self.owner_id, "owner_name": self.owner_name,
                "created_at": iso(self.created_at), "last_used_at": iso(self.last_used_at),
                "expires_at": iso(self.expires_at), "project_id": None}

    def matches(self, value: str) -> bool:
        return redacted_matches(self.redacted_value, value)

    def describe(self) -> str:
        return f"admin key {self.key_id}" + (f" {self.name!r}" if self.name else "") + \
               f" ({self.redacted_value or 'no redacted value'})"


def _admin_key(raw: dict[str, Any]) -> AdminKey:
    owner = raw.get("owner") if isinstance(raw.get("owner"), dict) else {}
    assert isinstance(owner, dict)
    return AdminKey(key_id=str(raw.get("id") or ""), name=str(raw.get("name") or ""),
                    redacted_value=str(raw.get("redacted_value") or ""), created_at=raw.get("created_at"),
                    last_used_at=raw.get("last_used_at"), expires_at=raw.get("expires_at"),
                    owner_id=str(owner.get("id") or ""), owner_name=str(owner.get("name") or ""))


class AdminKeys:
    """The organization's admin keys, on an admin-authenticated client; `key_client(secret)`
    gives a client authenticated by a key under test."""

    service = SERVICE

    def __init__(self, api: OpenAIClient, key_client: Callable[[Secret], httpx.Client]) -> None:
        self.api = api
        self.key_client = key_client

    def listed(self) -> list[AdminKey]:
        return [_admin_key(raw) for raw in self.api.pages(PATH, what="list admin keys")]

    def get(self, key_id: str) -> AdminKey | None:
        response = self.api.client.get(f"{PATH}/{key_id}")
        if response.status_code == 404:
            return None
        return _admin_key(_decoded(response, what=f"read admin key {key_id}"))

    def find(self, *, key_id: str | None = None, value: Secret | None = None) -> AdminKey:
        """One admin key by id, or by its full value matched against the redacted forms."""
        if key_id:
            found = self.get(key_id)
            if found is None:
                raise ProviderError(f"openai: no live admin key {key_id}", service=SERVICE, status=404,
                                    hint="`keyresponse keys` lists keys; fix keys.NAME.key_id in the inventory")
            return found
        if value is None:
            raise ProviderError("openai: nothing names the admin key", service=SERVICE)
        fits = [k for k in self.listed() if k.matches(value.reveal())]
        if len(fits) != 1:
            raise ProviderError(f"openai: {len(fits)} admin keys fit {value.masked}", service=SERVICE,
                                hint="set keys.NAME.key_id of the admin key in the inventory")
        return fits[0]

    def create(self, name: str, expires_in_seconds: int | None = None) -> tuple[AdminKey, Secret]:
        """Mint one. Never retried blindly: callers journal `name` first and look it up
        (`named`) after a failure to learn whether it took effect."""
        body: dict[str, Any] = {"name": name}
        if expires_in_seconds:
            body["expires_in_seconds"] = expires_in_seconds
        raw = _decoded(self.api.client.post(PATH, json=body), ok=(200, 201), what="mint an admin key")
        if not raw.get("id") or not raw.get("value"):
            raise AnswerLost("openai: the new admin key's answer carries no id or value; it may exist",
                             service=SERVICE, method="POST", path=PATH)
        return _admin_key(raw), Secret(str(raw["value"]))

    def named(self, names: Iterable[str]) -> list[AdminKey]:
        """Live admin keys carrying one of `names`: what earlier mints left, heard or not."""
        wanted = set(names)
        return [k for k in self.listed() if k.name in wanted]

    def delete(self, key_id: str, *, what: str = "") -> bool:
        """True if it was deleted now, False if it was already gone."""
        return _deleted(self.api.client.delete(f"{PATH}/{key_id}"), what or f"delete admin key {key_id}")

    def probe(self, secret: Secret) -> ProbeResult:
        """An authenticated read with the key under test: live, dead, restricted, unknown."""
        from keyresponse.http import error_for

        try:
            response = self.key_client(secret).get(PATH, params={"limit": 1})
        except ServiceError as exc:
            return ProbeResult("unknown", exc.message)
        if response.status_code == 200:
            return ProbeResult("live", f"GET /{PATH} -> 200", 200)
        err = error_for(response, SERVICE)
        if response.status_code == 401 and err.code == "invalid_api_key":
            return ProbeResult("dead", err.message, 401)
        if response.status_code in (401, 403):
            return ProbeResult("restricted", err.message, response.status_code)
        return ProbeResult("unknown", err.message, response.status_code)


def connect(settings: ProviderSettings, token: str, http: HttpFactory) -> AdminKeys:
    if not isinstance(settings, OpenAISettings):
        raise ProviderError(f"admin keys: provider kind {settings.kind!r} has none keyresponse can rotate",
                            service=settings.kind, hint="leaked-admin-key supports `kind: openai` providers")
    base = settings.base_url
    api = OpenAIClient(http(SERVICE, base, {"Authorization": f"Bearer {token}"}), mint_settle=settings.mint_settle)
    return AdminKeys(api, lambda secret: http("openai-probe", base, {"Authorization": "Bearer " + secret.reveal()}))
