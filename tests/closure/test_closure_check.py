"""The closure verdict itself, over a stub issuer: any request after the revoke means it did not take."""

from __future__ import annotations

from typing import Any

from keyresponse.actions.key_closure import ATTENTION, CLOSED, Facts, check
from keyresponse.providers.base import KeyRecord, MinuteUsage

REVOKED = 1_800_000_030  # mid-minute: that minute's requests may be from before the revoke
LEAKED = KeyRecord(key_id="key_old", project_id="proj_1", last_used_at=REVOKED - 5)
NEW = KeyRecord(key_id="key_new", project_id="proj_1")


class Issuer:
    title = "Stub"

    def __init__(self, per_minute: dict[str, int]) -> None:
        self.per_minute = per_minute

    def minute_usage(self, key: KeyRecord, start: int, end: int | None = None) -> MinuteUsage:
        minutes = tuple((m, self.per_minute.get(key.key_id, 0)) for m in range(start, start + 600, 60))
        return MinuteUsage(key.key_id, start, start + 600, minutes)

    def get_key(self, project_id: str, key_id: str) -> Any:
        return None


def _facts() -> Facts:
    return Facts(leaked=LEAKED, revoked_at=REVOKED, replacement=NEW, deployed_at=REVOKED + 10)


def test_closed_when_nothing_is_accepted_after_the_revoke_and_the_replacement_is_used() -> None:
    verdict = check(Issuer({"key_new": 40}), _facts(), via="test")  # type: ignore[arg-type]
    assert verdict["status"] == CLOSED, verdict["reasons"]
    assert verdict["leaked"]["from"] == "2027-01-15T08:01:00Z"  # the first whole minute after the revoke
    assert verdict["replacement"]["requests"] == 400


def test_needs_attention_when_the_leaked_key_still_gets_through() -> None:
    verdict = check(Issuer({"key_old": 2, "key_new": 40}), _facts(), via="test")  # type: ignore[arg-type]
    assert verdict["status"] == ATTENTION and verdict["alarms"]
    assert any("20 requests were accepted on the leaked key" in r and "did not take" in r for r in verdict["reasons"])
