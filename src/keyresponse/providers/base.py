"""What a key issuer must do for an incident, and the records it hands back.

A `Provider` is built around injected, authenticated `httpx.Client`s (see
http.py) and is the only code that knows the issuer's wire format and rules (which
call revokes which key). The key actions (actions/key*.py) speak only this
protocol; a provider module (`ProviderModule`) says how to build one from its
inventory settings, and providers/__init__.py lists the modules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from keyresponse.errors import ProviderError
from keyresponse.fields import KeyPattern as KeyPattern  # re-exported: what a provider module's KEY_PATTERNS hold

if TYPE_CHECKING:
    import httpx

    from keyresponse.providers.settings import ProviderSettings
    from keyresponse.secret import Secret

    # (service, base_url, headers) -> the run's shared client for it (read-only in plan mode)
    HttpFactory = Callable[[str, str, dict[str, str]], httpx.Client]

OwnerType = Literal["user", "service_account"]
ProbeVerdict = Literal["live", "dead", "restricted", "unknown"]


def iso(ts: int | float | None) -> str | None:
    """Unix seconds -> ISO 8601 UTC (``2026-11-28T16:42:00Z``); None stays None."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(value: Any) -> int | None:
    """ISO 8601 or Unix seconds -> Unix seconds; None and '' stay None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, dt.datetime):
        when = value
    else:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


@dataclass(frozen=True)
class KeyRecord:
    """One key as the issuer lists it: everything but its value."""

    key_id: str
    project_id: str
    name: str = ""
    owner_type: OwnerType = "user"
    owner_id: str = ""
    redacted_value: str = ""
    created_at: int | None = None
    last_used_at: int | None = None
    owner_name: str = ""
    gone: bool = False  # the issuer no longer lists it (revoked, deleted or disabled already)

    def outputs(self) -> dict[str, Any]:
        """The step-output form (ISO times); the report and Slack read these names."""
        return {
            "key_id": self.key_id,
            "project_id": self.project_id,
            "name": self.name,
            "owner_type": self.owner_type,
            "owner_id": self.owner_id,
            "owner_name": self.owner_name,
            "redacted_value": self.redacted_value,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
            "already_gone": self.gone,
        }

    @classmethod
    def from_outputs(cls, data: dict[str, Any]) -> KeyRecord:
        return cls(
            key_id=str(data["key_id"]),
            project_id=str(data.get("project_id") or ""),
            name=str(data.get("name") or ""),
            owner_type="service_account" if data.get("owner_type") == "service_account" else "user",
            owner_id=str(data.get("owner_id") or ""),
            redacted_value=str(data.get("redacted_value") or ""),
            created_at=epoch(data.get("created_at")),
            last_used_at=epoch(data.get("last_used_at")),
            owner_name=str(data.get("owner_name") or ""),
            gone=bool(data.get("already_gone")),
        )

    def describe(self) -> str:
        owner = "service account" if self.owner_type == "service_account" else "user"
        label = f" {self.name!r}" if self.name else ""
        return f"{self.key_id}{label} ({self.redacted_value or 'no redacted value'}) in {self.project_id}, " \
               f"owned by {owner} {self.owner_id or '?'}"

    def matches(self, value: str) -> bool:
        """Whether a full key value fits this key's redacted form (prefix…suffix)."""
        return redacted_matches(self.redacted_value, value)


def redacted_matches(redacted: str, value: str) -> bool:
    for sep in ("...", "…", "***", "*"):
        if sep in redacted:
            head, _, tail = redacted.partition(sep)
            tail = tail.lstrip(sep[0])
            if not head and not tail:
                return False
            return (len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail))
    return False


@dataclass(frozen=True)
class IssueSpec:
    """What to mint. `service_account_id` set: a new key on that account; else a new account.
    `name` names the new account (or key); the key itself is named `name` too. `scopes`
    (None: unrestricted) and `expires_in_seconds` (None: no expiry) carry the old key's
    restrictions and the organization's lifetime policy onto the replacement."""

    project_id: str
    name: str
    service_account_id: str | None = None
    scopes: tuple[str, ...] | None = None
    expires_in_seconds: int | None = None


@dataclass(frozen=True)
class IssuedKey:
    secret: Secret
    key_id: str
    service_account_id: str
    name: str
    project_id: str
    redacted_value: str
    created_at: int | None = None
    expires_at: int | None = None
    scopes: tuple[str, ...] | None = None


SiblingPolicy = Literal["revoke", "keep", "ask"]


@dataclass(frozen=True)
class RevokePlan:
    """What revoking one key takes down, said before anything is done.

    `calls` are tried in order. `account` is the owning account that may have to be
    deleted with it (where the issuer refuses to delete the key alone), and `siblings`
    the other live keys that account holds: they die too if it is deleted."""

    key: KeyRecord
    calls: list[str]
    account: str | None = None
    siblings: list[KeyRecord] = field(default_factory=list)

    @property
    def account_may_go(self) -> bool:
        return self.account is not None


@dataclass(frozen=True)
class RevokeResult:
    method: str  # the call that revoked it, e.g. "DELETE /organization/projects/{p}/api_keys/{id}"
    already_gone: bool
    revoked_at: str | None
    deleted_account: str | None = None  # the owning account, when it had to go with the key
    also_revoked: list[str] = field(default_factory=list)  # sibling key ids that died with it


@dataclass(frozen=True)
class GoneKey:
    """What the audit log says about a key the issuer no longer lists."""

    key_id: str
    project_id: str
    deleted_at: int | None
    actor: str  # who or what deleted it ("OpenAI itself" when no user or key did)
    by_provider: bool = False


@dataclass(frozen=True)
class ProbeResult:
    result: ProbeVerdict
    detail: str
    status: int | None = None


@dataclass(frozen=True)
class UsagePoint:
    """Usage of one model in one hour (`hour` = Unix seconds at the start of the hour)."""

    hour: int
    model: str
    requests: int
    input_tokens: int
    output_tokens: int = 0


@dataclass(frozen=True)
class MinuteUsage:
    """Requests one key made, minute by minute, as the issuer counts them.

    `minutes` holds every bucket of [start, end) the issuer answered, zeros included,
    as (start of the minute, requests); `end` is the end of the last bucket (the
    issuer's now when no end was asked for: the watch runs on the issuer's clock)."""

    key_id: str
    start: int
    end: int
    minutes: tuple[tuple[int, int], ...] = ()

    @property
    def total(self) -> int:
        return sum(n for _, n in self.minutes)

    @property
    def last_used(self) -> int | None:
        """The start of the latest minute with a request, or None."""
        used = [m for m, n in self.minutes if n]
        return max(used) if used else None

    def since(self, start: int) -> int:
        return sum(n for m, n in self.minutes if m >= start)

    def rate(self) -> int:
        """Requests in the latest whole minute (the last bucket may still be filling)."""
        whole = [n for m, n in self.minutes if m + 60 <= self.end - 60] or [n for _, n in self.minutes]
        return whole[-1] if whole else 0


@dataclass(frozen=True)
class AuditEvent:
    type: str
    effective_at: int
    actor: str
    resource_id: str = ""
    project_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""
    # every id the actor is known by: its user, service account or key (tracking) id, and email
    actor_ids: tuple[str, ...] = ()


class KeyNotFound(ProviderError):
    """No key, or more than one, fits what we were given. `candidates` lists the near misses."""

    def __init__(self, message: str, *, service: str, candidates: list[KeyRecord] | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, service=service, hint=hint)
        self.candidates = candidates or []


class CannotRevoke(ProviderError):
    """The issuer will not revoke this one thing alone (the message says why, the hint what to do)."""


class SiblingsWouldDie(CannotRevoke):
    """Revoking the key means deleting its account, which holds other live keys, and the
    inventory did not say to take those down too (`revoke: {sibling_keys: revoke}`)."""

    def __init__(self, message: str, *, service: str, siblings: list[KeyRecord], account: str,
                 hint: str | None = None) -> None:
        super().__init__(message, service=service, hint=hint)
        self.siblings = siblings
        self.account = account


@dataclass(frozen=True)
class Minted:
    """What an earlier `issue` under a journaled name left behind: a whole account
    (`service_account_id`) or one key (`key_id`)."""

    name: str
    service_account_id: str | None = None
    key_id: str | None = None

    @property
    def ident(self) -> str:
        return self.service_account_id or self.key_id or ""



class Provider(Protocol):
    """A key issuer. Every method raises `ProviderError` (redacted) when the issuer fails."""

    service: str  # names the issuer in errors ("openai")
    title: str  # names it to people ("OpenAI"): "revoke it by hand at OpenAI"
    prices: dict[str, tuple[float, float]]  # USD per 1M input/output tokens by model
    mint_settle: float  # seconds after a mint that got no answer during which it may still take effect

    def preflight(self) -> str:
        """Read-only: prove the admin credential works; returns who/what it can see."""
        ...

    def project_names(self) -> dict[str, str]:
        """Every project the admin credential sees: id -> name."""
        ...

    def list_keys(self, project_id: str | None = None) -> list[KeyRecord]:
        """Every key, in one project or across all of them (every page)."""
        ...

    def get_key(self, project_id: str, key_id: str) -> KeyRecord | None:
        """The key, or None when the issuer no longer lists it."""
        ...

    def find(self, *, key_id: str | None = None, project_id: str | None = None,
             value: Secret | None = None) -> KeyRecord:
        """One key by id, or by its full value matched against redacted forms. Zero or
        several matches raise an error that lists the candidates; never a guess."""
        ...

    def revoke_call(self, key: KeyRecord) -> str:
        """The call `revoke` makes, for the plan ("DELETE /..."), and what else it takes down."""
        ...

    def revoke_plan(self, key: KeyRecord, *, listed: list[KeyRecord] | None = None) -> RevokePlan:
        """Read-only: the calls `revoke` would make and every other key that may die with it.
        `listed`: the keys of the key's project, as the caller just listed them (`list_keys`),
        so the plan needs no listing of its own."""
        ...

    def revoke(self, key: KeyRecord, *, siblings: SiblingPolicy = "ask") -> RevokeResult:
        """Make the key unusable; already gone counts as done. The key alone where the
        issuer allows it; where the owning account must go with it and holds other live
        keys, `siblings` says whether to take them down too (`revoke`) or stop
        (`keep`/`ask`: `SiblingsWouldDie`)."""
        ...

    def gone_key(self, key_id: str, project_id: str | None) -> GoneKey | None:
        """A key that is no longer listed, from the audit log: where it lived, when and by
        whom it was deleted; None when the log does not know it."""
        ...

    def key_scopes(self, key: KeyRecord) -> tuple[str, ...] | None:
        """The key's restrictions (None: unrestricted or unknown), from the key object or
        the audit log's record of its creation and updates."""
        ...

    def probe(self, secret: Secret) -> ProbeResult:
        """Call the issuer authenticated by the key under test: live, dead, restricted, unknown."""
        ...

    def probe_listing(self, key: KeyRecord) -> ProbeResult:
        """Without its value: "dead" when the issuer no longer lists the key (or its owner), else "live"."""
        ...

    def preflight_issue(self, project_id: str, service_account_id: str | None) -> str:
        """Read-only: prove `issue` could mint in this project (on this account); raises
        `KeyNotFound` for a missing account, `ProviderError` otherwise."""
        ...

    def issue_call(self, spec: IssueSpec) -> str:
        """The call `issue` makes, for the plan."""
        ...

    def issue(self, spec: IssueSpec) -> IssuedKey:
        """Mint a key. Never retried blindly: callers journal `spec.name` first and use
        `find_minted` after a failure to learn whether it took effect."""
        ...

    def find_minted(self, project_id: str, names: Iterable[str], *, keys: bool = False) -> list[Minted]:
        """What earlier `issue` calls under these names left behind (with `keys`, keys
        made on an existing account too), whether or not their answer was heard."""
        ...

    def revoke_minted(self, project_id: str, service_account_id: str | None, key_id: str | None) -> bool:
        """Undo an `issue`; True if something was removed, False if it was already gone.
        `CannotRevoke` when the issuer will not remove that one thing alone."""
        ...

    def usage(self, key: KeyRecord, start: int, end: int) -> list[UsagePoint]: ...

    def minute_usage(self, key: KeyRecord, start: int, end: int | None = None) -> MinuteUsage | None:
        """The key's requests per minute from `start` to `end` (None: to the issuer's now),
        every minute listed; None when the issuer cannot count one key's use by the minute."""
        ...

    def events(self, key: KeyRecord, start: int, end: int) -> list[AuditEvent]: ...

    def costs(self, key: KeyRecord, start: int, end: int) -> float | None: ...


@dataclass(frozen=True)
class StoredResource:
    """One object a project stores (a file, vector store, batch, fine-tuning job, assistant)."""

    kind: str  # "file", "vector_store", "batch", "fine_tuning_job", "assistant"
    resource_id: str
    name: str
    created_at: int | None
    bytes: int | None = None  # its size, where the issuer says
    detail: str = ""  # what else identifies it: purpose, endpoint, model, status
    changed_at: int | None = None  # last activity, where the issuer records it


@runtime_checkable
class Hunting(Protocol):
    """What a provider offers beyond `Provider` for the hunt and the blast radius
    (key.hunt, key.audit); a provider without it gets neither, and the step says so."""

    def audit_log(self, start: int, end: int, types: Sequence[str], *, project_id: str | None = None,
                  actor_ids: Sequence[str] | None = None) -> list[AuditEvent]:
        """Events of these types in [start, end), in one project or the whole organization,
        by any actor or by one of `actor_ids`; every page, oldest first."""
        ...

    def usage_by_category(self, key: KeyRecord, start: int, end: int) -> dict[str, dict[str, Any]]:
        """The key's use of every usage category the issuer reports (category -> counts);
        a category the issuer counts only per project says so (`project_wide: True`)."""
        ...

    def costs_by_line_item(self, key: KeyRecord, start: int, end: int) -> dict[str, float] | None:
        """USD by the issuer's line item for this key; None when costs cannot be read."""
        ...

    def category_of(self, line_item: str) -> str:
        """The usage category a cost line item belongs to."""
        ...

    def project_resources(self, secret: Secret, start: int) -> tuple[list[StoredResource], list[str]]:
        """With a key of the project: what the project stores that was made (or changed)
        since `start`, and the kinds that could not be read (with why)."""
        ...

    def revoke_key_id(self, project_id: str, key_id: str) -> bool:
        """Revoke a project key by id; True if revoked now, False if it was already gone."""
        ...

    def delete_service_account(self, project_id: str, service_account_id: str, *, what: str = "") -> bool:
        """True if deleted now, False if it was already gone."""
        ...


class ProviderModule(Protocol):
    """What a provider module exports (providers/__init__.py lists them by `KIND`)."""

    KIND: str
    Settings: type[ProviderSettings]  # its `providers:` entry in the inventory
    KEY_PATTERNS: Sequence[KeyPattern]

    def connect(self, settings: ProviderSettings, token: str, http: HttpFactory) -> Provider:
        """The provider, on clients from `http`, authenticated by `token` (from `admin_key_env`)."""
        ...
