"""Whatever a Slack message is built from, no known secret value reaches Slack."""

from __future__ import annotations

import json
from typing import Any

from keyresponse import slack
from keyresponse.secret import Secret
from tests.conftest import fake_key


def test_every_slack_request_body_is_redacted(sandbox: Any) -> None:
    secret = Secret(fake_key("slack"))
    client = slack.client(sandbox.env["SLACK_BOT_TOKEN"], sandbox.urls["slack"])
    client.chat_postMessage(channel="#incidents", text=f"oops {secret.reveal()}",
                            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": secret.reveal()}}])
    posted = json.dumps(sandbox.state.slack_messages, ensure_ascii=False)
    leaked, masked = secret.reveal() in posted, secret.masked in posted  # no value in a failure message
    assert not leaked and masked
