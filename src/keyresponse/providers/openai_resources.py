"""The blast radius and the hunt, for OpenAI: the leaked key's use of every usage
category, its costs by line item, the organization's audit log over a window, and
what a project stores (read with one of the project's own keys: the admin key reads
no project's data).

Usage categories are every `/organization/usage/*` path of the spec, read by day;
vector stores and code interpreter sessions are counted per project only (their
endpoints take no `api_key_ids`), and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from keyresponse.errors import ProviderError
from keyresponse.providers.base import AuditEvent, KeyRecord, StoredResource
from keyresponse.providers.openai_usage import DAILY_COSTS_LIMIT, _event, _usage_pages

if TYPE_CHECKING:
    import httpx

    from keyresponse.providers.openai import OpenAIClient
    from keyresponse.secret import Secret


# --- the blast radius (key.audit) and the hunt (key.hunt)

# usage category -> the counts its results carry; every /organization/usage/* path of the spec
CATEGORY_FIELDS: dict[str, tuple[str, ...]] = {
    "completions": ("num_model_requests", "input_tokens", "output_tokens"),
    "embeddings": ("num_model_requests", "input_tokens"),
    "moderations": ("num_model_requests", "input_tokens"),
    "images": ("num_model_requests", "images"),
    "audio_speeches": ("num_model_requests", "characters"),
    "audio_transcriptions": ("num_model_requests", "seconds"),
    "vector_stores": ("usage_bytes",),
    "code_interpreter_sessions": ("num_sessions",),
    "file_search_calls": ("num_requests",),
    "web_search_calls": ("num_model_requests", "num_requests"),
}
PROJECT_WIDE = ("vector_stores", "code_interpreter_sessions")  # no api_key_ids filter: the project's use
LEVELS = ("usage_bytes",)  # a level, not a count: the peak is reported, not a sum
DAILY_LIMIT = 31  # bucket_width=1d allows at most 31 buckets a page


def usage_by_category(provider: OpenAIClient, key: KeyRecord, start: int, end: int) -> dict[str, dict[str, Any]]:
    """The key's use of every usage category by day over [start, end), read a few at once."""
    kinds = list(CATEGORY_FIELDS)
    parts = provider.fan_out(lambda kind: _category(provider, kind, key, start, end), kinds)
    return dict(zip(kinds, parts, strict=True))


def _category(provider: OpenAIClient, kind: str, key: KeyRecord, start: int, end: int) -> dict[str, Any]:
    day = 86400
    params: dict[str, Any] = {"start_time": start // day * day, "end_time": end, "bucket_width": "1d",
                              "limit": DAILY_LIMIT}
    wide = kind in PROJECT_WIDE
    if not wide:
        params["api_key_ids"] = [key.key_id]
    if kind not in (*PROJECT_WIDE, "file_search_calls"):
        params["group_by"] = ["model"]
    if key.project_id:
        params["project_ids"] = [key.project_id]
    counts: dict[str, Any] = dict.fromkeys(CATEGORY_FIELDS[kind], 0)
    models: set[str] = set()
    for bucket in _usage_pages(provider, f"organization/usage/{kind}", params, f"read {kind} usage"):
        for res in bucket.get("results") or []:
            if not wide and res.get("api_key_id") not in (None, key.key_id):
                continue
            for f in CATEGORY_FIELDS[kind]:
                value = int(res.get(f) or 0)
                counts[f] = max(counts[f], value) if f in LEVELS else counts[f] + value
            if res.get("model"):
                models.add(str(res["model"]))
    return {**counts, "models": sorted(models), "project_wide": wide,
            "used": any(v for f, v in counts.items() if f in CATEGORY_FIELDS[kind])}


def costs_by_line_item(provider: OpenAIClient, key: KeyRecord, start: int, end: int) -> dict[str, float] | None:
    """USD by line item for this key over whole days around the window; None when the
    organization cannot report costs."""
    day = 86400
    params: dict[str, Any] = {
        "start_time": start // day * day, "end_time": -(-end // day) * day, "bucket_width": "1d",
        "limit": DAILY_COSTS_LIMIT, "api_key_ids": [key.key_id], "group_by": ["line_item"],
    }
    if key.project_id:
        params["project_ids"] = [key.project_id]
    found: dict[str, float] = {}
    try:
        for bucket in _usage_pages(provider, "organization/costs", params, "read costs by line item"):
            for res in bucket.get("results") or []:
                amount = res.get("amount") or {}
                if (amount.get("currency") or "usd") != "usd" or res.get("api_key_id") not in (None, key.key_id):
                    continue
                item = str(res.get("line_item") or "other")
                found[item] = found.get(item, 0.0) + float(amount.get("value") or 0)
    except ProviderError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            return None
        raise
    return {k: round(v, 4) for k, v in sorted(found.items())}


# line-item model prefixes -> usage category (the rest are completions)
_ITEM_CATEGORIES = (
    (("gpt-image", "dall-e", "image"), "images"),
    (("text-embedding", "embedding"), "embeddings"),
    (("omni-moderation", "text-moderation", "moderation"), "moderations"),
    (("tts", "gpt-4o-mini-tts", "speech"), "audio_speeches"),
    (("whisper", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "transcri"), "audio_transcriptions"),
    (("vector store", "vector_store", "file search storage"), "vector_stores"),
    (("code interpreter", "code_interpreter"), "code_interpreter_sessions"),
    (("file search", "file_search"), "file_search_calls"),
    (("web search", "web_search"), "web_search_calls"),
)


def category_of(line_item: str) -> str:
    text = line_item.lower()
    for prefixes, category in _ITEM_CATEGORIES:
        if any(text.startswith(p) or f" {p}" in text for p in prefixes):
            return category
    return "completions"


def audit_log(provider: OpenAIClient, start: int, end: int, types: Sequence[str], *, project_id: str | None = None,
              actor_ids: Sequence[str] | None = None) -> list[AuditEvent]:
    """Events of `types` in [start, end), every page, oldest first."""
    params: dict[str, Any] = {"event_types[]": list(types), "effective_at[gte]": start, "effective_at[lt]": end}
    if project_id:
        params["project_ids[]"] = [project_id]
    if actor_ids:
        params["actor_ids[]"] = list(actor_ids)
    wanted = set(types)
    out = [_event(raw) for raw in provider.pages("organization/audit_logs", params, what="read the audit log")]
    return sorted((e for e in out if e.type in wanted and start <= e.effective_at < end),
                  key=lambda e: (e.effective_at, e.event_id))


# kind -> (path, takes `order`)
RESOURCE_LISTS = {
    "file": ("files", True),
    "vector_store": ("vector_stores", True),
    "batch": ("batches", False),
    "fine_tuning_job": ("fine_tuning/jobs", False),
    "assistant": ("assistants", True),
}
RESOURCE_PAGE = 100
MAX_RESOURCES = 1000  # of one kind: past this the listing stops (and says so)


def project_resources(provider: OpenAIClient, secret: Secret, start: int) -> tuple[list[StoredResource], list[str]]:
    """What the key's project stores that was made or last active since `start`: every
    kind listed newest first, stopping at the first object older than the window."""
    if provider.key_client is None:
        return [], ["no client to read the project with"]
    client = provider.key_client(secret)
    found: list[StoredResource] = []
    problems: list[str] = []

    def read(kind: str) -> tuple[list[StoredResource], str | None]:
        try:
            return _list_kind(client, kind, start), None
        except ProviderError as exc:
            return [], f"{RESOURCE_LISTS[kind][0]}: {exc.message}"

    for items, problem in provider.fan_out(read, list(RESOURCE_LISTS)):
        found += items
        if problem:
            problems.append(problem)
    return sorted(found, key=lambda r: (r.created_at or 0, r.kind, r.resource_id)), problems


def _list_kind(client: httpx.Client, kind: str, start: int) -> list[StoredResource]:
    from keyresponse.http import check

    path, ordered = RESOURCE_LISTS[kind]
    out: list[StoredResource] = []
    after: str | None = None
    for _ in range(MAX_RESOURCES // RESOURCE_PAGE):
        params: dict[str, Any] = {"limit": RESOURCE_PAGE, **({"order": "desc"} if ordered else {}),
                                  **({"after": after} if after else {})}
        response = check(client.get(path, params=params), "openai", what=f"list {path}", error_class=ProviderError)
        body = response.json()
        data = [d for d in body.get("data") or [] if isinstance(d, dict)]
        older = False
        for raw in data:
            item = _resource(kind, raw)
            if (item.created_at or 0) >= start or (item.changed_at or 0) >= start:
                out.append(item)
            elif item.changed_at is None:
                older = True  # newest first: everything after this one is older still
        if older or not body.get("has_more") or not data:
            break
        after = str(body.get("last_id") or data[-1].get("id") or "") or None
        if after is None:
            break
    return out


def _resource(kind: str, raw: dict[str, Any]) -> StoredResource:
    def num(name: str) -> int | None:
        value = raw.get(name)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    name = str(raw.get("filename") or raw.get("name") or raw.get("fine_tuned_model") or "")
    if kind == "file":
        detail = f"purpose {raw.get('purpose')}"
    elif kind == "batch":
        detail = f"{raw.get('endpoint')} on {raw.get('input_file_id')}, {raw.get('status')}"
    elif kind == "fine_tuning_job":
        detail = f"{raw.get('model')} on {raw.get('training_file')}, {raw.get('status')}"
    elif kind == "assistant":
        detail = f"model {raw.get('model')}"
    else:
        detail = str(raw.get("status") or "")
    size = num("bytes") if kind == "file" else num("usage_bytes") if kind == "vector_store" else None
    return StoredResource(kind=kind, resource_id=str(raw.get("id") or ""), name=name, created_at=num("created_at"),
                          bytes=size, detail=detail,
                          changed_at=num("last_active_at") if kind == "vector_store" else None)
