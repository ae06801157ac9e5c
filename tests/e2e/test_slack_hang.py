"""A slow Slack must not stand between the run and the revoke: the opening post goes
out in the background, and the thread still ends with one root and its replies."""

from __future__ import annotations

import json

from tests.e2e.conftest import World, assert_restored, slack_threads


def _journal(world: World) -> list[dict[str, object]]:
    (path,) = (world.dir / ".keyresponse" / "incidents").glob("*/journal.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_revoke_is_journaled_before_a_slow_root_post_lands(world: World) -> None:
    world.sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind="latency",
                            latency_ms=3000, count=1)
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_restored(world)
    records = _journal(world)
    order = [(r["event"], r.get("step"), r.get("note")) for r in records]
    revoked = order.index(("step.finished", "revoke", None))
    thread = next(i for i, r in enumerate(records) if r.get("note") == "slack.thread")
    assert revoked < thread, order
    roots = slack_threads(world)
    assert len(roots) == 1, [m["text"] for m in roots]
    assert roots[0]["text"].endswith(": resolved")
    replies = [m for m in world.sandbox.state.slack_messages if m.get("thread_ts")]
    assert len(replies) >= 3 and all(m["thread_ts"] == roots[0]["ts"] for m in replies)
    # the revoke's own reply is in the thread, though it finished before the root landed
    assert any("revoke" in m["text"] for m in replies), [m["text"] for m in replies]


def test_a_root_post_that_hangs_is_posted_by_the_close_step(world: World) -> None:
    # the opening post (and its one retry) hangs, then Slack drops the connection: nothing kept
    world.sandbox.add_fault(service="slack", method="POST", path="/chat.postMessage", kind="hang",
                            latency_ms=1500, count=2)
    out = world.kr("run", "leaked-key", "--key", "chatbot-prod", "--yes", "--json", timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert_restored(world)
    records = _journal(world)
    order = [(r["event"], r.get("step")) for r in records]
    assert order.index(("step.finished", "revoke")) < order.index(("step.finished", "dead"))
    open_done = order.index(("step.finished", "open"))
    revoke_started = order.index(("step.started", "revoke"))
    assert open_done < revoke_started
    roots = slack_threads(world)
    assert len(roots) == 1, [m["text"] for m in roots]
    assert roots[0]["text"].endswith(": resolved")
