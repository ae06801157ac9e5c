"""The seeded organization: a believable company with one leaked key.

Acme runs a production chatbot whose service-account key `chatbot-prod` has
leaked: about two days before the sandbox started, at an off-hour, someone
began using it at ~20x its normal volume on models it never used. Every value
comes from `random.Random(seed)`; every timestamp is relative to `started_at`.
"""

from __future__ import annotations

import random
from typing import Any

from keyresponse.sandbox import events, seed_attack, seed_platforms, seed_usage
from keyresponse.sandbox.seed_usage import DAY, HOUR, Attack, Profile
from keyresponse.sandbox.state import ADMIN_KEY_PREFIX, ALNUM, OPENAI_KEY_PREFIX, URLSAFE, State

ATTACK_MODELS = ("gpt-4.1-2025-04-14", "o3-2025-04-16")

_USERS = [("alice", "Alice Nakamura", "owner", 500), ("bob", "Bob Okafor", "member", 400), ("carol", "Carol Díaz", "member", 200)]
# name, days ago created, days ago archived
_PROJECTS = [
    ("Default project", 520, None),
    ("Chatbot", 300, None),
    ("Search", 200, None),
    ("Analytics", 150, None),
    ("Ops", 90, None),
    ("Legacy prototype", 480, 120),
]
# service account name, project, days ago
_SERVICE_ACCOUNTS = [
    ("chatbot-prod", "Chatbot", 280),
    ("chatbot-staging", "Chatbot", 270),
    ("search-indexer", "Search", 190),
    ("reporting", "Analytics", 60),
    ("canary-monitor", "Ops", 80),
]
# key name, project, owner ("sa:<name>" or user short name), days ago, scopes, usage profile
_KEYS: list[tuple[str, str, str, int, list[str] | None, tuple[Any, ...] | None]] = [
    ("chatbot-prod", "Chatbot", "sa:chatbot-prod", 280, None, ("gpt-4o-mini-2024-07-18", "completions", 420, 900, 260, "business")),
    ("chatbot-staging", "Chatbot", "sa:chatbot-staging", 270, None, ("gpt-4o-mini-2024-07-18", "completions", 25, 700, 200, "business")),
    ("bob-dev", "Chatbot", "bob", 100, None, ("gpt-4o-2024-08-06", "completions", 30, 1500, 400, "sporadic")),
    ("search-indexer", "Search", "sa:search-indexer", 190, None, ("text-embedding-3-small", "embeddings", 900, 600, 0, "nightly")),
    ("search-rerank", "Search", "sa:search-indexer", 150, None, ("gpt-4o-mini-2024-07-18", "completions", 60, 1200, 40, "business")),
    ("analytics-dev", "Analytics", "carol", 140, None, ("gpt-4o-2024-08-06", "completions", 40, 2000, 500, "business")),
    ("reporting-readonly", "Analytics", "sa:reporting", 60, ["api.usage.read"], None),
    ("canary-monitor", "Ops", "sa:canary-monitor", 80, None, None),
    ("alice-playground", "Default project", "alice", 400, None, ("gpt-4o-2024-08-06", "completions", 12, 800, 300, "sporadic")),
]
LEAKED = "chatbot-prod"
LOGIN_IPS = {"alice": "198.51.100.23", "bob": "198.51.100.41", "carol": "203.0.113.77"}


def _tok(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def attack_start(started_at: int) -> int:
    """03:00 UTC of the day two days before start: 45-69 hours before it."""
    day = (started_at - 2 * DAY) // DAY * DAY
    return day + 3 * HOUR


def build(seed: int, started_at: int) -> State:
    rng = random.Random(seed)
    st = State(seed=seed, started_at=started_at)

    def ago(days: int) -> int:  # a working hour, `days` days before the start
        return started_at - days * DAY + rng.randrange(8 * HOUR, 17 * HOUR)

    st.org = {"id": "org-" + _tok(rng, 24), "name": "Acme Corp", "title": "Acme"}
    users = {}
    for short, name, role, days in _USERS:
        uid = "user-" + _tok(rng, 24)
        users[short] = st.users[uid] = {
            "id": uid, "name": name, "email": f"{short}@acme.example", "role": role, "created_at": ago(days)
        }
    projects = {}
    for name, days, archived in _PROJECTS:
        pid = "proj_" + _tok(rng, 24)
        projects[name] = st.projects[pid] = {
            "id": pid, "name": name, "created_at": ago(days),
            "archived_at": ago(archived) if archived else None,
            "status": "archived" if archived else "active",
        }
    accounts = {}
    for name, project, days in _SERVICE_ACCOUNTS:
        sid = "svc_acct_" + _tok(rng, 24)
        accounts[name] = st.service_accounts[sid] = {
            "id": sid, "project_id": projects[project]["id"], "name": name, "role": "member",
            "created_at": ago(days), "deleted_at": None,
        }
    profiles: list[Profile] = []
    for name, project, owner, days, scopes, usage in _KEYS:
        kid = "key_" + _tok(rng, 16)
        sa = accounts.get(owner[3:]) if owner.startswith("sa:") else None
        user = None if sa else users[owner]
        key = st.keys[kid] = {
            "id": kid, "project_id": projects[project]["id"], "name": name,
            "value": OPENAI_KEY_PREFIX + _tok(rng, 48, URLSAFE),
            "created_at": max(ago(days), sa["created_at"] if sa else 0), "last_used_at": None,
            "owner_type": "service_account" if sa else "user",
            "owner_id": sa["id"] if sa else user["id"],  # type: ignore[index]
            "scopes": scopes, "live": True, "deleted_at": None,
        }
        if usage:
            model, kind, rph, inp, out, pattern = usage
            profiles.append(Profile(kid, key["project_id"], user["id"] if user else None, model, kind,
                                    rph, inp, out, pattern, key["created_at"]))
    leaked = next(k for k in st.keys.values() if k["name"] == LEAKED)
    now_hour = started_at // HOUR * HOUR
    start = attack_start(started_at)
    attack = Attack(leaked["id"], leaked["project_id"], None, start, ATTACK_MODELS)
    st.usage = seed_usage.generate(rng, profiles, now_hour - 30 * DAY, now_hour, attack)
    for kid, ts in seed_usage.last_used(st.usage, started_at).items():
        st.keys[kid]["last_used_at"] = ts
    admin_owner = users["alice"]
    for name, days in (("keyresponse-admin", 45), ("terraform", 210)):
        aid = "key_" + _tok(rng, 16)
        st.admin_keys[aid] = {
            "id": aid, "name": name, "value": ADMIN_KEY_PREFIX + _tok(rng, 48, URLSAFE),
            "created_at": ago(days), "expires_at": None, "last_used_at": ago(1),
            "owner_id": admin_owner["id"], "live": True,
        }
    admin = next(a for a in st.admin_keys.values() if a["name"] == "keyresponse-admin")
    st.audit = _audit(rng, st, users)
    st.truth = {
        "leaked_key_id": leaked["id"],
        "leaked_key_name": LEAKED,  # its name at OpenAI
        "inventory_name": LEAKED,  # its name in the inventory write_config() writes
        "leaked_project_id": leaked["project_id"],
        "leaked_service_account_id": leaked["owner_id"],
        "attack_start": start,
        "attack_models": list(ATTACK_MODELS),
        "baseline_models": ["gpt-4o-mini-2024-07-18"],
        "org_id": st.org["id"],
    }
    st.credentials = {"OPENAI_ADMIN_KEY": admin["value"], "SANDBOX_LEAKED_KEY": leaked["value"],
                      "CHATBOT_PROD_OPENAI_KEY": leaked["value"]}
    seed_attack.seed(st, users, start)
    seed_platforms.seed(rng, st)
    return st


def _audit(rng: random.Random, st: State, users: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    alice = users["alice"]
    by_id = {u["id"]: short for short, u in users.items()}

    def add(etype: str, ts: int, user: dict[str, Any], details: dict[str, Any], project: Any = None) -> None:
        actor = events.session_actor(user, LOGIN_IPS[by_id[user["id"]]])
        out.append(events.event(_tok(rng, 16), etype, ts, actor, details, project))

    for short, user in users.items():
        if short != "alice":
            add("user.added", user["created_at"], alice, {"id": user["id"], "data": {"role": user["role"]}})
    for p in st.projects.values():
        add("project.created", p["created_at"], alice, {"id": p["id"], "data": {"name": p["name"], "title": p["name"]}}, p)
        if p["archived_at"]:
            add("project.archived", p["archived_at"], alice, {"id": p["id"]}, p)
    for sa in st.service_accounts.values():
        add("service_account.created", sa["created_at"], alice, {"id": sa["id"], "data": {"role": "member"}},
            st.projects[sa["project_id"]])
    for k in st.keys.values():
        owner = st.users.get(k["owner_id"], alice)
        add("api_key.created", k["created_at"] + 5, owner, {"id": k["id"], "data": {"scopes": k["scopes"] or []}},
            st.projects[k["project_id"]])
        if k["scopes"]:
            add("api_key.updated", k["created_at"] + 3600, alice,
                {"id": k["id"], "changes_requested": {"scopes": k["scopes"]}}, st.projects[k["project_id"]])
    first_day = (st.started_at - 30 * DAY) // DAY * DAY
    for day in range(first_day, st.started_at - DAY, DAY):
        for short in ("alice", "bob"):
            if rng.random() < 0.55:
                add("login.succeeded", day + 8 * HOUR + rng.randrange(2 * HOUR), users[short], {})
    out.sort(key=lambda e: e["effective_at"])
    return out


# Options a test (or `keyresponse sandbox` user) applies to a freshly seeded state.
OPTIONS = {
    "disabled-by-provider": "the leaked key is already disabled by OpenAI itself (api_key.deleted, no actor)",
    "refuse-service-account-key-delete": "DELETE .../api_keys/{id} answers 400 for a service account's key "
                                         "(older API versions); only deleting the account revokes it",
    "key-expiry-required": "the organization's key policy requires new keys to expire within 90 days",
    "admin-key-attack": "keyresponse's own admin key leaked 30 hours before the start; in the window it made a "
                        "project, a service account and key, an invite and a second admin key",
}


def apply_option(st: State, option: str) -> None:
    """Change a seeded state as `OPTIONS` describes."""
    from keyresponse.sandbox import events

    if option == "disabled-by-provider":
        key = st.keys[st.truth["leaked_key_id"]]
        when = st.started_at - HOUR  # after the abuse began, before anyone responded
        key["live"], key["deleted_at"] = False, when
        project = st.projects[key["project_id"]]
        # OpenAI's own action: no user or key of the organization is the actor
        ev = events.event(st.token(16), "api_key.deleted", when, {}, {"id": key["id"]}, project)
        ev["actor"] = None
        st.audit.append(ev)
        st.audit.sort(key=lambda e: e["effective_at"])
    elif option == "refuse-service-account-key-delete":
        st.org.setdefault("policy", {})["service_account_key_delete"] = "refuse"
    elif option == "admin-key-attack":
        seed_attack.admin_attack(st)
    elif option == "key-expiry-required":
        st.org.setdefault("policy", {})["max_key_lifetime"] = 90 * DAY
    else:
        raise ValueError(f"unknown sandbox option {option!r} (known: {', '.join(OPTIONS)})")
