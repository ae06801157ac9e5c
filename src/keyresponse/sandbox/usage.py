"""Usage and costs pages: time buckets, filters, group_by and page cursors.

Buckets are aligned to UTC multiples of their width (a 1d bucket starts at
midnight UTC); only rows in [start_time, end_time) count. `page` is an opaque
cursor naming the next bucket's start.
"""

from __future__ import annotations

import base64
import bisect
from collections import defaultdict
from typing import Any

from keyresponse.sandbox.seed_usage import BATCH, CACHED, INPUT, KEY, MODEL, OUTPUT, PROJECT, REQUESTS, TS, USER

# bucket_width -> (seconds, default limit, max limit)
USAGE_WIDTHS = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
COST_WIDTHS = {"1d": (86400, 7, 180)}
_COLUMNS = {"project_id": PROJECT, "user_id": USER, "api_key_id": KEY, "model": MODEL, "batch": BATCH}
GROUPS = {
    "completions": ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier"),
    "embeddings": ("project_id", "user_id", "api_key_id", "model"),
    "costs": ("project_id", "line_item", "api_key_id"),
}
FILTERS = {"project_ids": PROJECT, "user_ids": USER, "api_key_ids": KEY, "models": MODEL}
# USD per million tokens: (input, output)
PRICES = {
    "gpt-4o-mini-2024-07-18": (0.15, 0.60),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4.1-2025-04-14": (2.00, 8.00),
    "o3-2025-04-16": (2.00, 8.00),
    "text-embedding-3-small": (0.02, 0.0),
}


class BadParam(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def encode_page(bucket_start: int) -> str:
    return "page_" + base64.urlsafe_b64encode(f"sbx:{bucket_start}".encode()).decode()


def decode_page(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token.removeprefix("page_").encode()).decode()
        tag, _, value = raw.partition(":")
        if tag != "sbx":
            raise ValueError(token)
        return int(value)
    except ValueError:
        raise BadParam("page", f"Invalid value for 'page': {token!r} is not a page cursor.") from None


def window(q: dict[str, Any], widths: dict[str, tuple[int, int, int]], now: int) -> tuple[int, int, int, list[int], str | None]:
    """(start, end, width, bucket starts of this page, next_page) from query params."""
    if q.get("start_time") is None:
        raise BadParam("start_time", "Missing required parameter: 'start_time'.")
    try:
        start = int(q["start_time"])
        end = int(q["end_time"]) if q.get("end_time") is not None else now
    except ValueError:
        raise BadParam("start_time", "Invalid value for 'start_time'/'end_time': expected Unix seconds.") from None
    name = q.get("bucket_width") or "1d"
    if name not in widths:
        raise BadParam("bucket_width", f"Invalid value for 'bucket_width': supported values are {', '.join(widths)}.")
    width, default, most = widths[name]
    try:
        limit = int(q["limit"]) if q.get("limit") is not None else default
    except ValueError:
        raise BadParam("limit", "Invalid value for 'limit': expected an integer.") from None
    if not 1 <= limit <= most:
        raise BadParam("limit", f"Invalid value for 'limit': must be between 1 and {most} for bucket_width {name}.")
    if end <= start:
        raise BadParam("end_time", "Invalid value for 'end_time': must be after 'start_time'.")
    cursor = decode_page(q["page"]) if q.get("page") else start // width * width
    buckets = [b for b in range(cursor, cursor + limit * width, width) if b < end]
    following = cursor + limit * width
    return start, end, width, buckets, encode_page(following) if following < end else None


def merged(seeded: list[list[Any]], live: list[list[Any]]) -> list[list[Any]]:
    """Seeded rows and live ones (sandbox/consumers.py), both sorted by time, as one sorted list."""
    if not live:
        return seeded
    import heapq

    return list(heapq.merge(seeded, live, key=lambda r: r[TS]))


def _rows_in(rows: list[list[Any]], lo: int, hi: int) -> list[list[Any]]:
    a = bisect.bisect_left(rows, lo, key=lambda r: r[TS])
    b = bisect.bisect_left(rows, hi, key=lambda r: r[TS])
    return rows[a:b]


def _selected(row: list[Any], filters: dict[str, list[str]], batch: str | None) -> bool:
    for name, values in filters.items():
        if values and row[FILTERS[name]] not in values:
            return False
    return batch is None or row[BATCH] == (batch.lower() == "true")


def page(kind: str, rows: list[list[Any]], q: dict[str, Any], filters: dict[str, list[str]],
         group_by: list[str], now: int) -> dict[str, Any]:
    """One UsageResponse page for usage `kind` or for "costs"."""
    widths = COST_WIDTHS if kind == "costs" else USAGE_WIDTHS
    allowed = GROUPS.get(kind, ("project_id", "user_id", "api_key_id", "model"))
    bad = [g for g in group_by if g not in allowed]
    if bad:
        raise BadParam("group_by", f"Invalid value for 'group_by': {bad[0]!r}; supported: {', '.join(allowed)}.")
    start, end, width, buckets, next_page = window(q, widths, now)
    acc: dict[int, dict[tuple[Any, ...], list[float]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    if buckets:
        for row in _rows_in(rows, max(start, buckets[0]), min(end, buckets[-1] + width)):
            if not _selected(row, filters, q.get("batch")):
                continue
            bucket = acc[(row[TS] - buckets[0]) // width]
            for extra, sums in _contributions(kind, row):
                key = tuple(extra.get(g, "default" if g == "service_tier" else row[_COLUMNS.get(g, 0)])
                            for g in group_by)
                total = bucket[key]
                for i, value in enumerate(sums):
                    total[i] += value
    data = []
    for i, b in enumerate(buckets):
        groups = acc.get(i, {})
        results = [_result(kind, dict(zip(group_by, key, strict=True)), sums) for key, sums in sorted(
            groups.items(), key=lambda kv: [str(v) for v in kv[0]])]
        data.append({"object": "bucket", "start_time": b, "end_time": b + width, "results": results})
    return {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page}


def _contributions(kind: str, row: list[Any]) -> list[tuple[dict[str, Any], list[float]]]:
    if kind != "costs":
        return [({}, [row[INPUT], row[OUTPUT], row[CACHED], row[REQUESTS]])]
    price_in, price_out = PRICES.get(row[MODEL], (1.0, 4.0))
    return [
        ({"line_item": f"{row[MODEL]}, input"}, [row[INPUT] * price_in / 1e6, row[INPUT], 0, 0]),
        ({"line_item": f"{row[MODEL]}, output"}, [row[OUTPUT] * price_out / 1e6, row[OUTPUT], 0, 0]),
    ]


def _result(kind: str, groups: dict[str, Any], sums: list[float]) -> dict[str, Any]:
    if kind == "costs":  # sums: [amount in USD, tokens, -, -]
        by_item = "line_item" in groups
        return {"object": "organization.costs.result", "amount": {"value": round(sums[0], 6), "currency": "usd"},
                "line_item": groups.get("line_item"), "project_id": groups.get("project_id"),
                "api_key_id": groups.get("api_key_id"), "quantity": int(sums[1]) if by_item else None,
                "quantity_unit": "tokens" if by_item else None}
    inp, out, cached, requests = (int(v) for v in sums)
    common = {g: groups.get(g) for g in GROUPS.get(kind, ())}
    if kind == "embeddings":
        return {"object": "organization.usage.embeddings.result", "input_tokens": inp,
                "num_model_requests": requests, **common}
    return {"object": "organization.usage.completions.result", "input_tokens": inp, "output_tokens": out,
            "input_cached_tokens": cached, "input_uncached_tokens": inp - cached, "input_audio_tokens": 0,
            "output_audio_tokens": 0, "num_model_requests": requests, **common}
