"""Live usage: simulated consumers that follow the keys, minute by minute.

Off in a freshly seeded world (its usage is the seed's hourly history only, so a
drain of any key ends at once). `enable` turns it on: each consumer makes requests
every minute with the key it holds. A consumer fed by a platform (a GitHub secret,
a GitLab variable) re-reads that place when its workflow or pipeline runs (the
restart) and from then on uses whichever key the value belongs to; the unlisted
consumer (a cron job the inventory does not know) keeps the key it started with;
the attacker uses the leaked key. No request is accepted with a key that is not
live, so every use of a key stops at its revoke.

The clock: `rate` sandbox seconds pass per real second (60: a minute is a second).
Only "now" runs faster: events keep the real time they happened at (a revoke, a
dispatch), so after one, the usage shows the sped-up minutes since it. Usage pages
read `now(state)` as their end.

Rows are made on demand for the window asked (see `rows`), in seed_usage.ROW layout,
one per consumer and minute, stamped at the start of its use in that minute.
"""

from __future__ import annotations

import time
from typing import Any

from keyresponse.sandbox.seed_usage import TS

MINUTE = 60
MODEL = "gpt-4o-mini-2024-07-18"
ATTACK_MODEL = "gpt-4.1-2025-04-14"

# name, where its key comes from ("scope|NAME" of a GitHub secret), the repo whose workflow
# run restarts it, requests per minute
LISTED = [
    ("chatbot production (GitHub deploy.yml)", "env:acme/chatbot:production|OPENAI_API_KEY", "acme/chatbot", 41),
]
UNLISTED = ("nightly-export cron on an old VM (not in the inventory)", 3)
ATTACKER_RPM = 25


def now(st: Any) -> int:
    """The sandbox's clock for usage: real time, sped up by `rate` since it was set."""
    live = getattr(st, "live", None) or {}
    real = time.time()
    if live.get("base_real") is None:
        return int(real)
    return int(live["base_virtual"] + (real - live["base_real"]) * float(live.get("rate", 1.0)))


def enable(st: Any, *, rate: float = 1.0, unlisted: bool = True, attacker: bool = True,
           consumers: bool = True) -> dict[str, Any]:
    """Turn live usage on (tests call it in the server's loop, like seed.apply_option)."""
    start = int(time.time())
    leaked = st.truth["leaked_key_id"]
    people: list[dict[str, Any]] = []
    if consumers:
        for name, source, restart, rpm in LISTED:
            people.append({"name": name, "source": source, "restart_repo": restart, "rpm": rpm,
                           "model": MODEL, "history": [[start, leaked]]})
    if unlisted:
        people.append({"name": UNLISTED[0], "source": None, "restart_repo": None, "rpm": UNLISTED[1],
                       "model": MODEL, "history": [[start, leaked]]})
    if attacker:
        people.append({"name": "attacker", "source": None, "restart_repo": None, "rpm": ATTACKER_RPM,
                       "model": ATTACK_MODEL, "history": [[start, leaked]], "attacker": True})
    live: dict[str, Any] = {"base_real": float(start), "base_virtual": float(start), "rate": float(rate),
                            "consumers": people, "dispatches_seen": 0}
    st.live = live
    return live


def set_rate(st: Any, rate: float) -> None:
    """Change the clock's rate from now on; the clock itself stays continuous."""
    live = st.live
    real = time.time()
    live["base_virtual"] = live["base_virtual"] + (real - live["base_real"]) * float(live["rate"])
    live["base_real"], live["rate"] = real, float(rate)


def remove(st: Any, name_part: str) -> int:
    """Stop the consumers whose name contains `name_part` (from now on); how many stopped."""
    live = getattr(st, "live", None) or {}
    stopped = 0
    for c in live.get("consumers", []):
        if name_part in c["name"] and not c.get("stopped_at"):
            c["stopped_at"] = int(time.time())
            stopped += 1
    return stopped


def _follow(st: Any) -> None:
    """Consumers fed by a platform pick up what it holds when their workflow runs."""
    live = st.live
    dispatches = st.github.get("dispatches", [])
    seen = int(live.get("dispatches_seen", 0))
    for d in dispatches[seen:]:
        for c in live["consumers"]:
            if c.get("restart_repo") != d.get("repo") or not c.get("source"):
                continue
            scope, _, name = c["source"].partition("|")
            try:
                value = st.github_secret_value(scope, name)
            except KeyError:
                continue
            key = next((k for k in st.keys.values() if k["value"] == value), None)
            if key is not None and key["id"] != c["history"][-1][1]:
                c["history"].append([int(d["at"]), key["id"]])
    live["dispatches_seen"] = len(dispatches)


def rows(st: Any, lo: int, hi: int) -> list[list[Any]]:
    """Completions rows of live usage with timestamps in [lo, hi), sorted by time."""
    live = getattr(st, "live", None) or {}
    if not live.get("consumers"):
        return []
    _follow(st)
    hi = min(hi, now(st))
    out: list[list[Any]] = []
    for c in live["consumers"]:
        history = c["history"]
        for i, (since, key_id) in enumerate(history):
            until = history[i + 1][0] if i + 1 < len(history) else hi
            key = st.keys.get(key_id)
            if key is None:
                continue
            dead = key["deleted_at"] if not key["live"] else None
            begin = max(since, int(key["created_at"] or 0), lo)
            end = min(until, hi, c.get("stopped_at") or hi, dead if dead is not None else hi)
            out.extend(_minutes(c, key, begin, end))
    out.sort(key=lambda r: r[TS])
    return out


def _minutes(c: dict[str, Any], key: dict[str, Any], begin: int, end: int) -> list[list[Any]]:
    found = []
    t = begin
    while t < end:
        edge = min((t // MINUTE + 1) * MINUTE, end)
        requests = max(1, round(c["rpm"] * (edge - t) / MINUTE))
        tokens_in, tokens_out = requests * (3000 if c.get("attacker") else 900), requests * 250
        found.append([t, key["project_id"], None, key["id"], c["model"], tokens_in, tokens_out, 0, requests, False])
        t = edge
    return found
