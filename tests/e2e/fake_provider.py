"""A second key issuer used only by tests, to prove the provider seam: one module (its
settings, key shape and client), registered on import (KEYRESPONSE_PROVIDER_MODULES
names this module in a `keyresponse` subprocess). Its service is `FakeIssuer` in
test_fake_provider.py, a small HTTP server on loopback.

Wire format: GET /keys, GET|DELETE /keys/{id}, POST /keys {project, name} -> 201
{id, value, ...}, and GET /whoami authenticated by a key (200 live, 401 dead).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from keyresponse import providers
from keyresponse.errors import ProviderError
from keyresponse.providers.base import (
    AuditEvent,
    GoneKey,
    IssuedKey,
    IssueSpec,
    KeyNotFound,
    KeyPattern,
    KeyRecord,
    Minted,
    MinuteUsage,
    ProbeResult,
    RevokePlan,
    RevokeResult,
    SiblingPolicy,
    UsagePoint,
    iso,
)
from keyresponse.providers.settings import ProviderSettings
from keyresponse.secret import Secret

if TYPE_CHECKING:
    import httpx

    from keyresponse.providers.base import HttpFactory

KIND = "fake"
KEY_PATTERNS = (KeyPattern("Fake key", re.compile(r"\bfk-live-[A-Za-z0-9]{20,}"), "FAKE_ADMIN_KEY"),)


class Settings(ProviderSettings):
    kind: Literal["fake"] = "fake"
    base_url: str


def connect(settings: ProviderSettings, token: str, http: HttpFactory) -> FakeClient:
    base = settings.base_url
    return FakeClient(http("fake", base, {"Authorization": f"Bearer {token}"}),
                      lambda secret: http("fake-probe", base, {"Authorization": f"Bearer {secret.reveal()}"}),
                      settings.mint_settle)


def _ok(response: httpx.Response, *ok: int) -> Any:
    from keyresponse.http import check

    return check(response, "fake", ok=ok or (200,), error_class=ProviderError).json()


class FakeClient:
    service = "fake"
    title = "Fake"

    def __init__(self, client: httpx.Client, key_client: Callable[[Secret], httpx.Client], mint_settle: float) -> None:
        self.client = client
        self.key_client = key_client
        self.mint_settle = mint_settle
        self.prices: dict[str, tuple[float, float]] = {}

    def preflight(self) -> str:
        return f"{len(self.list_keys())} keys visible"

    def project_names(self) -> dict[str, str]:
        return {k.project_id: k.project_id for k in self.list_keys()}

    def list_keys(self, project_id: str | None = None) -> list[KeyRecord]:
        keys = [_record(k) for k in _ok(self.client.get("keys"))["keys"] if k["live"]]
        return [k for k in keys if project_id in (None, k.project_id)]

    def get_key(self, project_id: str, key_id: str) -> KeyRecord | None:
        response = self.client.get(f"keys/{key_id}")
        if response.status_code == 404:
            return None
        raw = _ok(response)
        return _record(raw) if raw["live"] else None

    def find(self, *, key_id: str | None = None, project_id: str | None = None,
             value: Secret | None = None) -> KeyRecord:
        if key_id:
            hit = self.get_key(project_id or "", key_id)
            if hit is None:
                raise KeyNotFound(f"no key {key_id}", service="fake")
            return hit
        hits = [k for k in self.list_keys(project_id) if value is not None and k.matches(value.reveal())]
        if len(hits) != 1:
            raise KeyNotFound(f"{len(hits)} keys match", service="fake", candidates=hits)
        return hits[0]

    def revoke_call(self, key: KeyRecord) -> str:
        return f"DELETE /keys/{key.key_id}"

    def revoke_plan(self, key: KeyRecord, *, listed: list[KeyRecord] | None = None) -> RevokePlan:
        return RevokePlan(key, [self.revoke_call(key)])

    def revoke(self, key: KeyRecord, *, siblings: SiblingPolicy = "ask") -> RevokeResult:
        gone = not self._delete(key.key_id)
        return RevokeResult(self.revoke_call(key), already_gone=gone, revoked_at=None if gone else iso(time.time()))

    def _delete(self, key_id: str) -> bool:
        response = self.client.delete(f"keys/{key_id}")
        if response.status_code == 404:
            return False
        _ok(response)
        return True

    def probe(self, secret: Secret) -> ProbeResult:
        status = self.key_client(secret).get("whoami").status_code
        verdict: Literal["live", "dead", "unknown"] = {200: "live", 401: "dead"}.get(status, "unknown")  # type: ignore[assignment]
        return ProbeResult(verdict, f"GET /whoami -> {status}", status)

    def probe_listing(self, key: KeyRecord) -> ProbeResult:
        listed = self.get_key(key.project_id, key.key_id) is not None
        return ProbeResult("live" if listed else "dead", "listed" if listed else "not listed")

    def preflight_issue(self, project_id: str, service_account_id: str | None) -> str:
        return self.preflight()

    def issue_call(self, spec: IssueSpec) -> str:
        return f"POST /keys {spec.name} in {spec.project_id}"

    def issue(self, spec: IssueSpec) -> IssuedKey:
        raw = _ok(self.client.post("keys", json={"project": spec.project_id, "name": spec.name}), 201)
        secret = Secret(raw["value"])
        return IssuedKey(secret=secret, key_id=raw["id"], service_account_id="", name=spec.name,
                         project_id=spec.project_id, redacted_value=raw["redacted"])

    def find_minted(self, project_id: str, names: Iterable[str], *, keys: bool = False) -> list[Minted]:
        wanted = set(names)
        return [Minted(k.name, key_id=k.key_id) for k in self.list_keys(project_id) if k.name in wanted]

    def revoke_minted(self, project_id: str, service_account_id: str | None, key_id: str | None) -> bool:
        return self._delete(key_id or "")

    def gone_key(self, key_id: str, project_id: str | None) -> GoneKey | None:
        return None

    def key_scopes(self, key: KeyRecord) -> tuple[str, ...] | None:
        return None

    def usage(self, key: KeyRecord, start: int, end: int) -> list[UsagePoint]:
        return []

    def minute_usage(self, key: KeyRecord, start: int, end: int | None = None) -> MinuteUsage | None:
        return None  # this issuer cannot count one key's use by the minute

    def events(self, key: KeyRecord, start: int, end: int) -> list[AuditEvent]:
        return []

    def costs(self, key: KeyRecord, start: int, end: int) -> float | None:
        return None


def _record(raw: dict[str, Any]) -> KeyRecord:
    return KeyRecord(key_id=raw["id"], project_id=raw["project"], name=raw["name"], redacted_value=raw["redacted"])


providers.register(sys.modules[__name__])
