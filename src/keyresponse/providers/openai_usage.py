"""What a key was used for: OpenAI usage, costs and audit-log reads.

Usage and costs take repeated plain query names (`group_by=model&api_key_ids=k`);
audit logs take bracketed ones (`event_types[]=...`, `effective_at[gte]=...`).
Usage buckets are read hourly, 168 to a page (the API's cap for `1h`); a watch of
one key's traffic (key.drain, key.closure) reads them by the minute, 1440 to a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from keyresponse.errors import ProviderError
from keyresponse.providers.base import AuditEvent, GoneKey, KeyRecord, MinuteUsage, UsagePoint

if TYPE_CHECKING:
    from keyresponse.providers.openai import OpenAIClient

USAGE_KINDS = ("completions", "embeddings")
HOURLY_LIMIT = 168  # /organization/usage/*: bucket_width=1h allows at most 168 buckets a page
MINUTE_LIMIT = 1440  # and bucket_width=1m at most 1440
DAILY_COSTS_LIMIT = 180
EVENT_TYPES = (
    "api_key.created", "api_key.updated", "api_key.deleted",
    "service_account.created", "service_account.updated", "service_account.deleted",
)
MAX_EVENTS = 500

# USD per 1M tokens (input, output); the inventory's `prices:` overrides any of these.
# Names match by longest prefix, so dated snapshots (gpt-4o-2024-08-06) price as their family.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0), "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0), "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.0, 30.0), "gpt-4": (30.0, 60.0), "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.0, 60.0), "o1-mini": (1.10, 4.40), "o3": (2.0, 8.0), "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "text-embedding-3-small": (0.02, 0.0), "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}


def usage(provider: OpenAIClient, key: KeyRecord, start: int, end: int) -> list[UsagePoint]:
    parts = provider.fan_out(lambda kind: list(_usage_kind(provider, kind, key, start, end)), list(USAGE_KINDS))
    return [p for part in parts for p in part]


def _usage_kind(provider: OpenAIClient, kind: str, key: KeyRecord, start: int, end: int) -> Iterator[UsagePoint]:
    params: dict[str, Any] = {
        "start_time": start, "end_time": end, "bucket_width": "1h", "limit": HOURLY_LIMIT,
        "api_key_ids": [key.key_id], "group_by": ["model"],
    }
    if key.project_id:
        params["project_ids"] = [key.project_id]
    for bucket in _usage_pages(provider, f"organization/usage/{kind}", params, f"read {kind} usage"):
        hour = int(bucket["start_time"]) // 3600 * 3600
        for res in bucket.get("results") or []:
            if res.get("api_key_id") not in (None, key.key_id):
                continue  # a service that ignores the filter must not blame this key for others' use
            yield UsagePoint(
                hour=hour, model=res.get("model") or kind,
                requests=int(res.get("num_model_requests") or 0),
                input_tokens=int(res.get("input_tokens") or 0),
                output_tokens=int(res.get("output_tokens") or 0),
            )


def minute_usage(provider: OpenAIClient, key: KeyRecord, start: int, end: int | None) -> MinuteUsage:
    """Requests by minute of one key (completions and embeddings together). Without `end`
    the API answers up to its now, and the last bucket's end says where that is."""
    params: dict[str, Any] = {"start_time": start, "bucket_width": "1m", "limit": MINUTE_LIMIT,
                              "api_key_ids": [key.key_id], "group_by": ["api_key_id"]}
    if end is not None:
        params["end_time"] = end
    if key.project_id:
        params["project_ids"] = [key.project_id]

    def read(kind: str) -> list[dict[str, Any]]:
        return list(_usage_pages(provider, f"organization/usage/{kind}", params, f"read {kind} usage by minute"))

    counts: dict[int, int] = {}
    last = start
    for buckets in provider.fan_out(read, list(USAGE_KINDS)):
        for bucket in buckets:
            minute = int(bucket["start_time"])
            last = max(last, int(bucket.get("end_time") or minute + 60))
            counts.setdefault(minute, 0)
            for res in bucket.get("results") or []:
                if res.get("api_key_id") in (None, key.key_id):
                    counts[minute] += int(res.get("num_model_requests") or 0)
    return MinuteUsage(key.key_id, start, last, tuple(sorted(counts.items())))


def _usage_pages(provider: OpenAIClient, path: str, params: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
    page: str | None = None
    seen: set[str] = set()
    while True:
        body = provider.get(path, {**params, **({"page": page} if page else {})}, what=what)
        yield from body.get("data") or []
        page = body.get("next_page")
        if not body.get("has_more") or not page or page in seen:
            return
        seen.add(page)


def costs(provider: OpenAIClient, key: KeyRecord, start: int, end: int) -> float | None:
    """The Costs API's USD figure for this key over whole days around the window, or
    None when the organization cannot report it (the endpoint is absent or refuses)."""
    day = 86400
    params: dict[str, Any] = {
        "start_time": start // day * day, "end_time": -(-end // day) * day, "bucket_width": "1d",
        "limit": DAILY_COSTS_LIMIT, "api_key_ids": [key.key_id], "group_by": ["api_key_id"],
    }
    if key.project_id:
        params["project_ids"] = [key.project_id]
    total = 0.0
    try:
        for bucket in _usage_pages(provider, "organization/costs", params, "read costs"):
            for res in bucket.get("results") or []:
                amount = res.get("amount") or {}
                if res.get("api_key_id") in (None, key.key_id) and (amount.get("currency") or "usd") == "usd":
                    total += float(amount.get("value") or 0)
    except ProviderError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            return None
        raise
    return round(total, 4)


def events(provider: OpenAIClient, key: KeyRecord, start: int, end: int) -> list[AuditEvent]:
    """Key and service-account events in the key's project during the window, plus every
    event ever about the key or its owning account, wherever it was recorded (admin-key
    actions land in the default project) — its creation is usually long before the window."""
    types = {"event_types[]": list(EVENT_TYPES)}
    about = {key.key_id} | ({key.owner_id} if key.owner_type == "service_account" and key.owner_id else set())
    found: dict[str, AuditEvent] = {}
    queries: list[tuple[dict[str, Any], bool]] = [({**types, "effective_at[lt]": end, "resource_ids[]": sorted(about)}, True)]
    if key.project_id:
        window = {**types, "effective_at[gte]": start, "effective_at[lt]": end, "project_ids[]": [key.project_id]}
        queries.append((window, False))
    for params, only_about in queries:
        for raw in provider.pages("organization/audit_logs", params, what="read the audit log"):
            event = _event(raw)
            in_scope = event.resource_id in about if only_about else start <= event.effective_at < end
            if in_scope and event.type in EVENT_TYPES and len(found) < MAX_EVENTS:
                found.setdefault(raw.get("id") or f"{event.type}:{event.effective_at}:{event.resource_id}", event)
    return sorted(found.values(), key=lambda e: (e.effective_at, e.type))


BY_PROVIDER = "OpenAI itself (no user or key of the organization did it, e.g. its leaked-key detection)"


def _about(provider: OpenAIClient, key_id: str, types: tuple[str, ...]) -> list[dict[str, Any]]:
    params = {"event_types[]": list(types), "resource_ids[]": [key_id]}
    return [raw for raw in provider.pages("organization/audit_logs", params, what=f"read the audit log for {key_id}")
            if (raw.get(str(raw.get("type"))) or {}).get("id") == key_id]


def gone_key(provider: OpenAIClient, key_id: str, project_id: str | None) -> GoneKey | None:
    """The deletion of a key no longer listed, as the audit log recorded it (`api_key.deleted`;
    an event with no actor is OpenAI's own doing, such as disabling a key reported as leaked)."""
    events = _about(provider, key_id, ("api_key.created", "api_key.deleted"))
    if not events:
        return None
    deleted = [e for e in events if e.get("type") == "api_key.deleted"]
    last = max(deleted or events, key=lambda e: int(e.get("effective_at") or 0))
    project = str((last.get("project") or {}).get("id") or project_id or "")
    if not deleted:
        return GoneKey(key_id, project, None, "unknown (the audit log has no deletion of it)")
    actor = last.get("actor")
    return GoneKey(key_id, project, int(last.get("effective_at") or 0),
                   BY_PROVIDER if not actor else _actor(actor), by_provider=not actor)


def key_scopes(provider: OpenAIClient, key: KeyRecord) -> tuple[str, ...] | None:
    """The key's scopes: the latest `api_key.updated` change of them, else those it was
    created with (`api_key.created` data); an empty list means unrestricted."""
    scopes: list[str] | None = None
    events = sorted(_about(provider, key.key_id, ("api_key.created", "api_key.updated")),
                    key=lambda e: int(e.get("effective_at") or 0))
    for raw in events:
        body = raw.get(str(raw.get("type"))) or {}
        found = (body.get("data") or body.get("changes_requested") or {}).get("scopes")
        if isinstance(found, list):
            scopes = [str(x) for x in found]
    return tuple(scopes) if scopes else None


def _event(raw: dict[str, Any]) -> AuditEvent:
    kind = str(raw.get("type") or "")
    found = raw.get(kind)
    payload: dict[str, Any] = found if isinstance(found, dict) else {}
    project = raw.get("project") or {}
    return AuditEvent(
        type=kind, effective_at=int(raw.get("effective_at") or 0), actor=_actor(raw.get("actor")),
        resource_id=str(payload.get("id") or ""), project_id=str(project.get("id") or ""),
        details={k: v for k, v in payload.items() if k != "id"},
        event_id=str(raw.get("id") or ""), actor_ids=_actor_ids(raw.get("actor")),
    )


def _actor_ids(actor: Any) -> tuple[str, ...]:
    """Every id (and email) the actor is known by: its key's tracking id, its user or service account."""
    if not isinstance(actor, dict):
        return ()
    found: list[str] = []
    for part in (actor.get("session") or {}, actor.get("api_key") or {}):
        if not isinstance(part, dict):
            continue
        if part.get("id"):
            found.append(str(part["id"]))
        for who in ("user", "service_account"):
            owner = part.get(who) or {}
            found += [str(owner[f]) for f in ("id", "email") if isinstance(owner, dict) and owner.get(f)]
    return tuple(dict.fromkeys(found))


def _actor(actor: Any) -> str:
    if actor is None:
        return BY_PROVIDER
    if not isinstance(actor, dict):
        return "unknown"
    if actor.get("type") == "session":
        session = actor.get("session") or {}
        user = session.get("user") or {}
        who = user.get("email") or user.get("id") or "unknown user"
        ip = session.get("ip_address")
        return f"{who} (session{', ' + ip if ip else ''})"
    api_key = actor.get("api_key") or {}
    owner = api_key.get("user") or api_key.get("service_account") or {}
    who = owner.get("email") or owner.get("id") or "unknown"
    return f"{who} (api key {api_key.get('id') or '?'})"

