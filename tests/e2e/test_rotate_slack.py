"""A routine rotation is announced as a rotation, at its own severity, in every edit."""

from __future__ import annotations

import json

from tests.e2e.conftest import World, slack_threads


def test_rotate_is_announced_as_a_rotation_at_its_severity(world: World) -> None:
    out = world.kr("run", "rotate", "--key", "chatbot-prod", "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (root,) = slack_threads(world)
    versions = [root, *root.get("edits", [])]
    assert len(versions) > 2
    for message in versions:
        text = json.dumps(message)
        assert "Leaked" not in text and "leaked" not in text, text
        assert "rotation" in text.lower(), text
        assert message["text"].startswith("[LOW]"), message["text"]
