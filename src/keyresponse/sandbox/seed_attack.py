"""What the attacker left behind, and the legitimate changes around it.

During the leak window the leaked key's own actor makes a way back in: a service
account with a key of its own, an invite to an outside address; it uploads a file,
starts a batch on it and generates images. Before the window (and so never to be
flagged) the team made changes of the same kinds: a developer's key, an invite, a
service account, files, a vector store, a fine-tuning job, an assistant. In the
window an automation (the `terraform` admin key) raises a rate limit: flagged
unless the inventory trusts it. Every object has the audit event that made it.

A separate random stream (`seed:attack`) keeps the rest of the seed unchanged.
"""

from __future__ import annotations

import random
from typing import Any

from keyresponse.sandbox import events
from keyresponse.sandbox.seed_usage import BATCH, DAY, HOUR, INPUT, MODEL, REQUESTS, ROW
from keyresponse.sandbox.state import ADMIN_KEY_PREFIX, ALNUM, OPENAI_KEY_PREFIX, URLSAFE, State

IMAGE_MODEL = "gpt-image-1"
IMAGE_SIZE = "1024x1024"
INVITED = "ops-contractor@mailbox.example"  # the attacker's address
RESOURCE_KINDS = ("files", "vector_stores", "batches", "fine_tuning_jobs", "assistants")


def _tok(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def leaked_actor(st: State) -> dict[str, Any]:
    """The audit log's actor for a call made with the leaked key (a service account's key)."""
    key = st.keys[st.truth["leaked_key_id"]]
    return {"type": "api_key", "api_key": {"id": key["id"], "type": "service_account",
                                           "service_account": {"id": key["owner_id"]}}}


def seed(st: State, users: dict[str, dict[str, Any]], start: int) -> None:
    """Plant the attacker's objects (from `start`, the abuse's first hour) and the older
    legitimate ones; `st.truth` lists both by id."""
    rng = random.Random(f"{st.seed}:attack")
    leaked = st.keys[st.truth["leaked_key_id"]]
    project = st.projects[leaked["project_id"]]
    ips = {"alice": "198.51.100.23", "bob": "198.51.100.41"}
    found: dict[str, list[str]] = {"attacker": [], "legitimate": [], "trusted": []}
    st.resources = {kind: {} for kind in RESOURCE_KINDS}

    def add(etype: str, ts: int, actor: dict[str, Any], details: dict[str, Any], in_project: bool = True) -> None:
        st.audit.append(events.event(_tok(rng, 16), etype, ts, actor, details, project if in_project else None))

    def session(short: str) -> dict[str, Any]:
        return events.session_actor(users[short], ips[short])

    def account(name: str, ts: int) -> dict[str, Any]:
        sid = "svc_acct_" + _tok(rng, 24)
        st.service_accounts[sid] = sa = {"id": sid, "project_id": project["id"], "name": name, "role": "member",
                                         "created_at": ts, "deleted_at": None}
        return sa

    def key(name: str, ts: int, owner_type: str, owner_id: str) -> dict[str, Any]:
        kid = "key_" + _tok(rng, 16)
        st.keys[kid] = k = {"id": kid, "project_id": project["id"], "name": name,
                            "value": OPENAI_KEY_PREFIX + _tok(rng, 48, URLSAFE), "created_at": ts,
                            "last_used_at": None, "owner_type": owner_type, "owner_id": owner_id, "scopes": None,
                            "live": True, "deleted_at": None}
        return k

    # --- before the leak: the team's own changes (never flagged when the window starts at the leak)
    dev = key("bob-notebook", start - 9 * DAY, "user", users["bob"]["id"])
    add("api_key.created", dev["created_at"] + 5, session("bob"), {"id": dev["id"], "data": {"scopes": []}})
    batcher = account("chatbot-batch", start - 6 * DAY)
    add("service_account.created", batcher["created_at"], session("alice"),
        {"id": batcher["id"], "data": {"role": "member"}})
    invite = "invite-" + _tok(rng, 24)
    add("invite.sent", start - 12 * DAY, session("alice"),
        {"id": invite, "data": {"email": "dana@acme.example", "role": "member"}}, in_project=False)
    found["legitimate"] += [dev["id"], batcher["id"], invite]
    for kind, obj in _resources(rng, start, st.org["id"], legit=True):
        st.resources[kind][obj["id"]] = {**obj, "project_id": project["id"]}
        found["legitimate"].append(obj["id"])

    # --- in the window, by an automation the inventory may trust
    terraform = next(a for a in st.admin_keys.values() if a["name"] == "terraform")
    limit = "rl-" + IMAGE_MODEL
    add("rate_limit.updated", start + 90 * 60, events.admin_key_actor(terraform, st.users[terraform["owner_id"]]),
        {"id": limit, "changes_requested": {"max_images_per_1_minute": 50}})
    found["trusted"].append(limit)

    # --- in the window, by the leaked key: the ways back in
    actor = leaked_actor(st)
    back = account("backup-sync", start + 2 * HOUR)
    add("service_account.created", back["created_at"], actor, {"id": back["id"], "data": {"role": "owner"}})
    back_key = key("backup-sync", start + 2 * HOUR + 40, "service_account", back["id"])
    add("api_key.created", back_key["created_at"], actor, {"id": back_key["id"], "data": {"scopes": []}})
    sent = "invite-" + _tok(rng, 24)
    add("invite.sent", start + 3 * HOUR, actor, {"id": sent, "data": {"email": INVITED, "role": "owner"}},
        in_project=False)
    found["attacker"] += [back["id"], back_key["id"], sent]
    for kind, obj in _resources(rng, start, st.org["id"], legit=False):
        st.resources[kind][obj["id"]] = {**obj, "project_id": project["id"]}
        found["attacker"].append(obj["id"])
    st.audit.sort(key=lambda e: e["effective_at"])

    # --- image generation with the leaked key, through the abuse window
    rows: list[list[Any]] = []
    for hour in range(start // HOUR * HOUR, st.started_at // HOUR * HOUR, HOUR):
        if rng.random() < 0.6:
            images = rng.randrange(20, 120)
            row: list[Any] = [0] * len(ROW)
            row[:5] = [hour, project["id"], None, leaked["id"], IMAGE_MODEL]
            row[INPUT] = images
            row[REQUESTS], row[BATCH] = max(1, images // 4), False
            rows.append(row)
    st.usage["images"] = rows
    st.truth["hunt"] = {**found, "attacker_service_account": back["id"], "attacker_key": back_key["id"],
                        "attacker_invite": sent, "trusted_actor": terraform["id"],
                        "images": sum(r[INPUT] for r in rows), "image_model": rows[0][MODEL] if rows else None}


def _resources(rng: random.Random, start: int, org: str, *, legit: bool) -> list[tuple[str, dict[str, Any]]]:
    """Stored objects of the leaked key's project: the team's older ones, or what the
    attacker uploaded and started in the window."""
    def fid() -> str:
        return "file-" + _tok(rng, 22)

    if not legit:
        upload = start + 4 * HOUR
        exfil = {"id": fid(), "object": "file", "bytes": 48_213_904, "created_at": upload,
                 "filename": "requests.jsonl", "purpose": "batch", "status": "processed"}
        batch = {"id": "batch_" + _tok(rng, 24), "object": "batch", "endpoint": "/v1/chat/completions",
                 "input_file_id": exfil["id"], "completion_window": "24h", "status": "completed",
                 "created_at": upload + 75}
        return [("files", exfil), ("batches", batch)]
    training = {"id": fid(), "object": "file", "bytes": 1_482_113, "created_at": start - 40 * DAY,
                "filename": "support-tickets.jsonl", "purpose": "fine-tune", "status": "processed"}
    docs = {"id": fid(), "object": "file", "bytes": 9_204_117, "created_at": start - 90 * DAY,
            "filename": "handbook.pdf", "purpose": "assistants", "status": "processed"}
    store = {"id": "vs_" + _tok(rng, 24), "object": "vector_store", "name": "handbook",
             "usage_bytes": 12_611_840, "created_at": start - 90 * DAY + 600, "status": "completed",
             "last_active_at": start - DAY, "file_counts": {"in_progress": 0, "completed": 1, "failed": 0,
                                                            "cancelled": 0, "total": 1}, "metadata": {}}
    job = {"id": "ftjob-" + _tok(rng, 24), "object": "fine_tuning.job", "model": "gpt-4o-mini-2024-07-18",
           "created_at": start - 40 * DAY + 300, "status": "succeeded", "training_file": training["id"],
           "trained_tokens": 2_950_112, "error": None, "finished_at": start - 40 * DAY + 4 * HOUR,
           "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme::support", "hyperparameters": {"n_epochs": 3},
           "organization_id": org, "result_files": [], "validation_file": None, "seed": 42}
    helper = {"id": "asst_" + _tok(rng, 24), "object": "assistant", "name": "Support helper",
              "model": "gpt-4o-2024-08-06", "created_at": start - 90 * DAY + 900, "description": None,
              "instructions": "Answer from the handbook.", "tools": [{"type": "file_search"}], "metadata": {}}
    return [("files", training), ("files", docs), ("vector_stores", store), ("fine_tuning_jobs", job),
            ("assistants", helper)]


ADMIN_CREATED = "tenant.admin_api_key.created"  # the spec's event type for a new admin key
ADMIN_LEAK_AGO = 30 * HOUR  # the admin key leaks after every event of the project key's attack above


def admin_attack(st: State) -> None:
    """The `admin-key-attack` option: keyresponse's own admin key leaked `ADMIN_LEAK_AGO`
    before the start; in the window it made a project, a service account with a key in an
    existing project, an invite and a second admin key. Before the window the team made one
    of each. `st.truth["admin_hunt"]` lists both by id."""
    rng = random.Random(f"{st.seed}:admin-attack")
    leaked = next(a for a in st.admin_keys.values() if a["value"] == st.credentials["OPENAI_ADMIN_KEY"])
    owner = st.users[leaked["owner_id"]]
    alice = next(u for u in st.users.values() if u["email"] == "alice@acme.example")
    at = st.started_at - ADMIN_LEAK_AGO
    by_projects = {p["name"]: p for p in st.projects.values()}
    found: dict[str, list[str]] = {"attacker": [], "legitimate": []}

    def add(etype: str, ts: int, actor: dict[str, Any], details: dict[str, Any],
            project: dict[str, Any] | None = None) -> None:
        st.audit.append(events.event(_tok(rng, 16), etype, ts, actor, details, project))

    def plant(actor: dict[str, Any], ts: int, tag: str, into: str, bucket: str) -> dict[str, str]:
        """A project, a service account with a key in `into`, an invite, an admin key."""
        pid = "proj_" + _tok(rng, 24)
        st.projects[pid] = project = {"id": pid, "name": f"{tag}-project", "created_at": ts, "archived_at": None,
                                      "status": "active"}
        add("project.created", ts, actor, {"id": pid, "data": {"name": project["name"], "title": project["name"]}},
            project)
        home = by_projects[into]
        sid = "svc_acct_" + _tok(rng, 24)
        st.service_accounts[sid] = {"id": sid, "project_id": home["id"], "name": f"{tag}-sync", "role": "owner",
                                    "created_at": ts + HOUR, "deleted_at": None}
        add("service_account.created", ts + HOUR, actor, {"id": sid, "data": {"role": "owner"}}, home)
        kid = "key_" + _tok(rng, 16)
        st.keys[kid] = {"id": kid, "project_id": home["id"], "name": f"{tag}-sync",
                        "value": OPENAI_KEY_PREFIX + _tok(rng, 48, URLSAFE), "created_at": ts + HOUR + 30,
                        "last_used_at": None, "owner_type": "service_account", "owner_id": sid, "scopes": None,
                        "live": True, "deleted_at": None}
        add("api_key.created", ts + HOUR + 30, actor, {"id": kid, "data": {"scopes": []}}, home)
        invite = "invite-" + _tok(rng, 24)
        add("invite.sent", ts + 2 * HOUR, actor,
            {"id": invite, "data": {"email": INVITED if bucket == "attacker" else "erin@acme.example",
                                    "role": "owner" if bucket == "attacker" else "member"}})
        aid = "key_" + _tok(rng, 16)
        st.admin_keys[aid] = {"id": aid, "name": f"{tag}-admin", "value": ADMIN_KEY_PREFIX + _tok(rng, 48, URLSAFE),
                              "created_at": ts + 3 * HOUR, "expires_at": None, "last_used_at": None,
                              "owner_id": owner["id"], "live": True}
        add(ADMIN_CREATED, ts + 3 * HOUR, actor, {"id": aid, "data": {"name": f"{tag}-admin"}})
        found[bucket] += [pid, sid, kid, invite, aid]
        return {"project": pid, "service_account": sid, "key": kid, "invite": invite, "admin_key": aid}

    plant(events.session_actor(alice, "198.51.100.23"), at - 8 * DAY, "research", "Analytics", "legitimate")
    made = plant(events.admin_key_actor(leaked, owner), at + HOUR, "backup", "Search", "attacker")
    st.audit.sort(key=lambda e: e["effective_at"])
    st.truth["admin_hunt"] = {**found, "leaked_admin_key_id": leaked["id"], "leaked_at": at,
                              **{f"attacker_{k}": v for k, v in made.items()}}
