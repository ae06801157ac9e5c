"""The hunt's rules without a sandbox: revoke modes, verdicts, cost categories."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from keyresponse.actions.key_hunt import OURS, REVIEW, TRUSTED, Hunt, HuntArgs, _finding
from keyresponse.inventory import HuntSettings
from keyresponse.providers.base import AuditEvent
from keyresponse.providers.openai_resources import category_of


def _ctx(top: HuntSettings, key: HuntSettings | None = None) -> Any:
    inventory = SimpleNamespace(model=SimpleNamespace(hunt=top))
    return SimpleNamespace(inventory=inventory, key=SimpleNamespace(hunt=key))


@pytest.mark.parametrize(("step", "top", "key", "mode", "destructive"), [
    (None, None, None, "never", False),
    (None, "ask", None, "ask", True),  # the run's one approval (prompt or --yes) covers it
    (None, "ask", "auto", "auto", False),  # the key's setting wins over the top level
    ("never", "auto", "auto", "never", False),  # and the step's over both
])
def test_revoke_mode_and_whether_the_run_must_approve_it(step: str | None, top: str | None, key: str | None,
                                                          mode: str, destructive: bool) -> None:
    ctx = _ctx(HuntSettings.model_validate({"revoke": top, "trusted_actors": ["user-a"]}),
               HuntSettings.model_validate({"revoke": key, "trusted_actors": ["key_b"]}) if key else None)
    plan = Hunt().plan(HuntArgs.model_validate({"revoke": step}), ctx)
    assert plan.data.mode == mode and plan.destructive is destructive
    assert plan.data.trusted == ({"user-a", "key_b"} if key else {"user-a"})


def _event(resource: str, *actors: str, kind: str = "api_key.created") -> AuditEvent:
    return AuditEvent(kind, 1_800_000_000, "someone", resource_id=resource, project_id="proj_x",
                      details={"data": {"scopes": []}}, event_id=f"audit_log-{resource}", actor_ids=actors)


def test_verdicts() -> None:
    ours, earlier, trusted, attacker = {"key_mine"}, {"key_before": "2026-12-01T0000Z-aaaa"}, {"tf"}, {"key_leaked"}
    mine = _finding(_event("key_mine", "key_admin"), ours, earlier, trusted, attacker, True)
    assert mine["verdict"] == OURS and not mine["revocable"]
    before = _finding(_event("key_before", "key_admin"), ours, earlier, trusted, attacker, True)
    assert before["verdict"] == TRUSTED and "2026-12-01T0000Z-aaaa" in before["detail"]
    assert _finding(_event("key_tf", "tf"), ours, earlier, trusted, attacker, True)["verdict"] == TRUSTED
    bad = _finding(_event("key_x", "key_leaked", "svc_acct_y"), ours, earlier, trusted, attacker, False)
    assert bad["verdict"] == REVIEW and bad["by_leaked_key"] and bad["revocable"]
    assert "unrestricted" in bad["detail"]
    # no leak time known: someone else's new key is listed for review, never revoked
    other = _finding(_event("key_z", "user-q"), ours, earlier, trusted, attacker, False)
    assert other["verdict"] == REVIEW and not other["revocable"]
    assert _finding(_event("key_z", "user-q"), ours, earlier, trusted, attacker, True)["revocable"]
    invite = _finding(_event("invite-1", "key_leaked", kind="invite.sent"), ours, earlier, trusted, attacker, True)
    assert invite["verdict"] == REVIEW and not invite["revocable"]  # listed; no call here revokes an invite


@pytest.mark.parametrize(("item", "category"), [
    ("gpt-image-1, input", "images"), ("text-embedding-3-small", "embeddings"), ("gpt-4.1, output", "completions"),
    ("whisper-1", "audio_transcriptions"), ("tts-1-hd", "audio_speeches"), ("web search tool calls", "web_search_calls"),
])
def test_cost_line_items_fall_into_usage_categories(item: str, category: str) -> None:
    assert category_of(item) == category


def test_an_organization_hunt_for_a_named_actor_needs_no_project_key() -> None:
    from keyresponse.actions.key_hunt import _named

    named = _named(HuntArgs.model_validate({"scope": "organization", "actor_key_id": "key_admin"}))
    assert named is not None and named.key_id == "key_admin" and named.project_id == ""
    assert _named(HuntArgs.model_validate({"actor_key_id": "key_admin"})) is None  # project scope: the key's project


def test_the_admin_playbooks_own_mints_and_a_new_admin_key() -> None:
    """admin_key.minted ends in `.minted`: its id is this incident's; a mint whose answer was
    lost is known by its admin_key.intent name; an attacker's admin key is revocable only by
    an organization-wide hunt."""
    from keyresponse.actions.key_hunt import ADMIN_KEY_CREATED, minted_in

    notes: list[dict[str, Any]] = [
        {"event": "step.note", "note": "admin_key.intent", "name": "keyresponse-inc-1"},
        {"event": "step.note", "note": "admin_key.minted", "name": "keyresponse-inc-1", "key_id": "key_new"},
        {"event": "step.note", "note": "admin_key.orphans_revoked", "ids": ["key_lost"]}]
    assert minted_in(notes) == {"key_new", "key_lost"}

    def admin(ident: str, name: str) -> AuditEvent:
        return AuditEvent(ADMIN_KEY_CREATED, 1_800_000_000, "someone", resource_id=ident, project_id="",
                          details={"data": {"name": name}}, event_id=f"audit_log-{ident}", actor_ids=("key_leaked",))

    unheard = _finding(admin("key_unheard", "keyresponse-inc-2"), set(), {}, set(), {"key_leaked"}, True,
                       names={"keyresponse-inc-2"}, scope="organization")
    assert unheard["verdict"] == OURS and not unheard["revocable"]
    theirs = _finding(admin("key_x", "backup-admin"), set(), {}, set(), {"key_leaked"}, True,
                      names={"keyresponse-inc-2"}, scope="organization")
    assert theirs["verdict"] == REVIEW and theirs["revocable"] and theirs["object_kind"] == "admin key"
    assert not _finding(admin("key_x", "backup-admin"), set(), {}, set(), {"key_leaked"}, True)["revocable"]


def test_the_report_offers_rotation_of_a_re_scoped_key_and_revocation_of_what_is_still_live() -> None:
    from keyresponse.report import hunt

    flagged = [
        {"type": "api_key.updated", "object": "key_rescoped", "object_kind": "api_key", "at": "2026-11-26T03:10:00Z",
         "actor": "key_leaked", "detail": "scopes none (unrestricted)", "revocable": False, "revoked": False},
        {"type": "api_key.created", "object": "key_minted", "object_kind": "key", "at": "2026-11-26T03:12:00Z",
         "actor": "key_leaked", "detail": "", "revocable": True, "revoked": False},
        {"type": "service_account.created", "object": "svc_gone", "object_kind": "service account",
         "at": "2026-11-26T03:13:00Z", "actor": "key_leaked", "detail": "", "revocable": True, "revoked": True},
    ]
    steps = hunt.next_steps({"flagged": flagged})
    assert len(steps) == 2, steps
    assert "key_rescoped" in steps[0] and "keyresponse rotate --key" in steps[0] and "unrestricted" in steps[0]
    assert "key_minted" in steps[1] and "still live" in steps[1]
