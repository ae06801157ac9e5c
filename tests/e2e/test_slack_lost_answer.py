"""A whole incident from the CLI whose first Slack root post is kept by Slack but whose
answer is lost: one root in the channel, edited to its final state, no duplicate."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import World, assert_restored, slack_threads


@pytest.mark.parametrize("kind", ["commit_then_drop", "commit_then_fail"])
def test_one_root_message_when_the_first_post_answer_is_lost(world: World, kind: str) -> None:
    world.sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind=kind, count=1)
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1])["ok"]
    assert_restored(world)
    roots = slack_threads(world)
    assert len(roots) == 1, [m["text"] for m in roots]
    assert roots[0]["text"].endswith(": resolved") and roots[0]["edits"]
    replies = [m for m in world.sandbox.state.slack_messages if m.get("thread_ts")]
    assert replies and all(m["thread_ts"] == roots[0]["ts"] for m in replies)
