"""The sandbox's in-memory world, plus the read helpers tests use.

Everything here is plain JSON-able data (dicts, lists, str, int) so that the
whole state can be written to `--state FILE` and read back unchanged. The
server's event loop is the only writer; tests in the same process may read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPPER = string.ascii_uppercase + string.digits

# Prefixes are assembled so no key-shaped literal sits in the source.
OPENAI_KEY_PREFIX = "sk-" + "proj-"
ADMIN_KEY_PREFIX = "sk-" + "admin-"


def redact(value: str) -> str:
    """OpenAI's redacted_value form: 'sk-proj-...wxyz'."""
    return value[:8] + "..." + value[-4:]


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class State:
    seed: int
    started_at: int
    serial: int = 0
    org: dict[str, Any] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    service_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    admin_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    # kind ("completions", "embeddings") -> rows, see seed_usage.ROW for the layout
    usage: dict[str, list[list[Any]]] = field(default_factory=dict)
    github: dict[str, Any] = field(default_factory=dict)
    gitlab: dict[str, Any] = field(default_factory=dict)
    slack: dict[str, Any] = field(default_factory=dict)
    mutations: list[dict[str, Any]] = field(default_factory=list)
    # (service, method, path) -> how many requests arrived, faults included (for tests)
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    truth: dict[str, Any] = field(default_factory=dict)
    # env var name -> value of the credentials the sandbox hands out (never in public_view)
    credentials: dict[str, str] = field(default_factory=dict)
    # live usage and its clock (sandbox/consumers.py); empty: off
    live: dict[str, Any] = field(default_factory=dict)
    # project resources (sandbox/openai_project.py): kind ("files", "batches", ...) -> id -> object
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    # -- generation of ids and values after seeding (deterministic per seed) --

    def token(self, length: int, alphabet: str = ALNUM) -> str:
        self.serial += 1
        rng = random.Random(f"{self.seed}:{self.serial}")
        return "".join(rng.choice(alphabet) for _ in range(length))

    def new_openai_key_value(self) -> str:
        return OPENAI_KEY_PREFIX + self.token(48, URLSAFE)

    # -- mutation log ------------------------------------------------------

    @property
    def mutation_count(self) -> int:
        return len(self.mutations)

    def record_mutation(self, service: str, method: str, path: str, status: int) -> None:
        self.mutations.append(
            {"service": service, "method": method, "path": path, "status": status, "at": time.time()}
        )

    # -- test helpers --------------------------------------------------------

    def openai_keys(self) -> list[dict[str, Any]]:
        """Every project API key ever seeded or minted, without values."""
        out = []
        for k in self.keys.values():
            out.append(
                {
                    "id": k["id"],
                    "project_id": k["project_id"],
                    "name": k["name"],
                    "owner_type": k["owner_type"],
                    "owner_id": k["owner_id"],
                    "service_account_id": k["owner_id"] if k["owner_type"] == "service_account" else None,
                    "redacted_value": redact(k["value"]),
                    "live": k["live"],
                    "created_at": k["created_at"],
                    "last_used_at": k["last_used_at"],
                    "deleted_at": k["deleted_at"],
                    "scopes": k["scopes"],
                }
            )
        return out

    def openai_key_value(self, key_id: str) -> str:
        """In-process only: the value of a seeded or minted project key."""
        return str(self.keys[key_id]["value"])

    def github_secret_value(self, scope: str, name: str) -> str:
        """Decrypt a stored GitHub secret. scope: 'repo:acme/chatbot',
        'env:acme/chatbot:production', 'org:acme' or 'dependabot:acme/chatbot'."""
        from nacl.public import PrivateKey, SealedBox

        secret = self.github["secrets"].get(scope, {}).get(name.upper())
        if secret is None:
            raise KeyError(f"no GitHub secret {name!r} in {scope!r}")
        private = self.github["key_archive"][secret["key_id"]]
        box = SealedBox(PrivateKey(bytes.fromhex(private)))
        return box.decrypt(base64.b64decode(secret["encrypted_value"])).decode()

    def gitlab_variable(self, owner: str, key: str, environment_scope: str = "*") -> dict[str, Any]:
        """owner: 'project:acme/chatbot' or 'group:acme' (path or numeric id)."""
        kind, _, ident = owner.partition(":")
        table = self.gitlab["projects" if kind == "project" else "groups"]
        for obj in table.values():
            if ident in (str(obj["id"]), obj["path"]):
                for var in self.gitlab["variables"][f"{kind}:{obj['id']}"]:
                    if var["key"] == key and var["environment_scope"] == environment_scope:
                        return dict(var)
        raise KeyError(f"no GitLab variable {key!r} ({environment_scope}) in {owner!r}")

    @property
    def slack_messages(self) -> list[dict[str, Any]]:
        return list(self.slack["messages"])

    @property
    def github_dispatches(self) -> list[dict[str, Any]]:
        return list(self.github["dispatches"])

    @property
    def gitlab_pipelines(self) -> list[dict[str, Any]]:
        return list(self.gitlab["pipelines"])

    # -- views and persistence ----------------------------------------------

    def public_view(self) -> dict[str, Any]:
        """What GET /_sandbox/state shows: everything but secret values."""
        gh_secrets = {
            scope: [
                {k: v for k, v in s.items() if k != "encrypted_value"} for s in secrets.values()
            ]
            for scope, secrets in self.github["secrets"].items()
        }
        gl_vars = {
            owner: [{k: v for k, v in var.items() if k != "value"} for var in variables]
            for owner, variables in self.gitlab["variables"].items()
        }
        return {
            "seed": self.seed,
            "started_at": self.started_at,
            "org": self.org,
            "projects": list(self.projects.values()),
            "service_accounts": list(self.service_accounts.values()),
            "keys": self.openai_keys(),
            "admin_keys": [
                {k: v for k, v in a.items() if k != "value"} | {"redacted_value": redact(a["value"])}
                for a in self.admin_keys.values()
            ],
            "audit_event_count": len(self.audit),
            "github": {
                "secrets": gh_secrets,
                "public_keys": {s: k["key_id"] for s, k in self.github["keys"].items()},
                "dispatches": self.github["dispatches"],
            },
            "gitlab": {"variables": gl_vars, "pipelines": self.gitlab["pipelines"]},
            "slack": {"messages": self.slack["messages"]},
            "mutation_count": self.mutation_count,
            "mutations": self.mutations,
            "truth": self.truth,
        }

    def to_json(self) -> str:
        data = asdict(self)
        del data["requests"]  # a count for tests, not state worth keeping
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> State:
        return cls(**json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write atomically, readable by the owner only (it holds key values)."""
        import os

        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)


def derive_private_key(seed: int, scope: str, generation: int) -> bytes:
    """A libsodium private key, deterministic per seed, scope and rotation."""
    return hashlib.sha256(f"keyresponse-sandbox:{seed}:{scope}:{generation}".encode()).digest()
