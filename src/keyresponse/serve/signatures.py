"""Request signatures, each as its sender documents it; every compare is constant-time.

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
  https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
- GitGuardian custom webhooks: `Gitguardian-Signature: sha256=<hex HMAC-SHA256(
  Timestamp + signature token, raw body)>`, with the `Timestamp` header (Unix seconds)
  there to refuse replays.
  https://docs.gitguardian.com/platform/configure-alerting/notifiers-integrations/custom-webhook
- Slack interactivity: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
  "v0:" + X-Slack-Request-Timestamp + ":" + raw body)>`, refused beyond five minutes.
  https://api.slack.com/authentication/verifying-requests-from-slack
- The generic endpoint: `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SLACK_MAX_AGE = 300


class Refused(Exception):
    """A request that is not what it claims to be: `status` and a short `reason` (a metric label)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _compare(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + _hex(secret.encode(), body)


def gitguardian_signature(token: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + _hex((timestamp + token).encode(), body)


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v0=" + _hex(secret.encode(), b"v0:" + timestamp.encode() + b":" + body)


def verify_github(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    given = headers.get("x-hub-signature-256")
    if not given:
        raise Refused(401, "unsigned", "no X-Hub-Signature-256 header")
    if not _compare(given, github_signature(secret, body)):
        raise Refused(401, "bad_signature", "X-Hub-Signature-256 does not match the body")


def _fresh(raw: str | None, max_age: int, header: str, now: float | None) -> str:
    if not raw:
        raise Refused(401, "unsigned", f"no {header} header")
    try:
        when = float(raw)
    except ValueError:
        raise Refused(401, "bad_timestamp", f"{header} is not a Unix time") from None
    if abs((time.time() if now is None else now) - when) > max_age:
        raise Refused(401, "stale", f"{header} is more than {max_age}s from now: a replay or a skewed clock")
    return raw


def verify_gitguardian(headers: Mapping[str, str], body: bytes, token: str, max_age: int,
                       now: float | None = None) -> None:
    given = headers.get("gitguardian-signature")
    if not given:
        raise Refused(401, "unsigned", "no Gitguardian-Signature header")
    timestamp = _fresh(headers.get("timestamp"), max_age, "Timestamp", now)
    if not _compare(given, gitguardian_signature(token, timestamp, body)):
        raise Refused(401, "bad_signature", "Gitguardian-Signature does not match the body")


def verify_slack(headers: Mapping[str, str], body: bytes, secret: str, now: float | None = None) -> None:
    given = headers.get("x-slack-signature")
    if not given:
        raise Refused(401, "unsigned", "no X-Slack-Signature header")
    timestamp = _fresh(headers.get("x-slack-request-timestamp"), SLACK_MAX_AGE, "X-Slack-Request-Timestamp", now)
    if not _compare(given, slack_signature(secret, timestamp, body)):
        raise Refused(401, "bad_signature", "X-Slack-Signature does not match the body")


def verify_bearer(headers: Mapping[str, str], token: str) -> None:
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise Refused(401, "unsigned", "no `Authorization: Bearer` header")
    if not _compare(value.strip(), token):
        raise Refused(401, "bad_signature", "the bearer token is not the configured one")
