"""From a verified alert to what to do: which rule, which key, which playbook.

The alert's own value (when it carries one) names the key by comparing it with each
inventory key's live value; a value-less alert (GitHub and GitGuardian webhooks never
carry the secret) is placed by its repository, or by the rule's `key:`. A value that
matches no inventory key still goes ahead under `auto`: the provider finds the key by
value and revokes it, and the report says no targets were known.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyresponse.alerts import Alert
    from keyresponse.inventory import LoadedInventory, ServeRule
    from keyresponse.secret import Secret

# Values are compared in memory under a key that lives as long as the process: the
# dedup id of a value-only alert is never the value, nor a hash anyone else can redo.
_DEDUP_KEY = secrets.token_bytes(32)


class Ignored(Exception):
    """Nothing to do for this alert: answered 200 with the reason (a metric label too)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Decision:
    action: str  # auto, ask, record
    playbook: str
    key: str | None
    dedup: str  # one open incident per dedup id
    alert: dict[str, Any]  # the non-secret summary, as journaled
    secret_type: str | None = None
    leaked_at: str | None = None
    leaked: Secret | None = field(default=None, repr=False)


def rule_for(rules: list[ServeRule], source: str, secret_type: str | None) -> ServeRule:
    kind = (secret_type or "").lower()
    for rule in rules:
        if source in rule.sources and kind and any(fnmatch.fnmatchcase(kind, p.lower()) for p in rule.secret_types):
            return rule
    raise Ignored("unknown_secret_type", f"no `serve.rules` entry covers a {source} alert for "
                                         f"secret type {secret_type or '(none)'!r}")


def decide(inventory: LoadedInventory, source: str, found: list[Alert]) -> Decision:
    values = {a.secret.reveal(): a.secret for a in found if a.secret is not None}
    if len(values) > 1:
        raise Ignored("several_secrets", f"the payload holds {len(values)} different secrets; "
                                         f"one incident handles one key: post one finding per request")
    secret_type = next((a.secret_type for a in found if a.secret_type), None)
    rule = rule_for(inventory.model.serve.rules, source, secret_type)
    leaked = next(iter(values.values()), None)
    key = _key_by_value(inventory, leaked) if leaked is not None else None
    if key is None and leaked is None:
        key = rule.key or _key_by_repo(inventory, found)
        if key is None:
            raise Ignored("unidentified", "the alert carries no value and names no repository an inventory "
                                          "key is deployed to; set `key:` on its serve rule")
    merged = found[0].summary()
    merged["locations"] = [loc for a in found for loc in a.summary()["locations"]]
    times = sorted(t for a in found for t in (a.leaked_at, a.detected_at) if t)
    if key is not None:
        dedup = f"key:{key}"
    else:
        assert leaked is not None
        dedup = "value:" + hmac.new(_DEDUP_KEY, leaked.reveal().encode(), hashlib.sha256).hexdigest()
    return Decision(rule.action, rule.playbook, key, dedup, merged, secret_type, times[0] if times else None, leaked)


def _key_by_value(inventory: LoadedInventory, leaked: Secret) -> str | None:
    """The key whose live value (its `secret_env`) is the leaked one: no round trip, so the
    202 stays immediate. A key known only to the provider is found by the run's key.find."""
    for name, entry in inventory.model.keys.items():
        if entry.secret_env and hmac.compare_digest(os.environ.get(entry.secret_env, "").strip().encode(),
                                                    leaked.reveal().encode()):
            return str(name)
    return None


def _key_by_repo(inventory: LoadedInventory, found: list[Alert]) -> str | None:
    repos = {loc.repo.lower() for a in found for loc in a.locations if loc.repo}
    if not repos:
        return None
    matches = set()
    for name, entry in inventory.model.keys.items():
        for target in entry.targets:
            where = getattr(target, "repo", None) or getattr(target, "project", None)
            if isinstance(where, str) and where.lower() in repos:
                matches.add(str(name))
    return next(iter(matches)) if len(matches) == 1 else None
