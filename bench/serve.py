"""Webhook to revoked: how soon after `keyresponse serve` receives an alert is the key revoked?

Starts the sandbox with 100 ms added to every OpenAI call and the receiver in this
process (as a service runs: no process start-up is paid per alert), posts a signed
GitHub `secret_scanning_alert` for the sandbox's leaked key, and reads the receiver's
own measure: from the request's receipt to the end of the `revoke` step
(`keyresponse_receipt_to_revoke_seconds`). The target: under 1 s, i.e. within the
revoke's round trips plus 50 ms.

Usage: python bench/serve.py [rounds]   (default 5; a fresh sandbox state each round)
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

LATENCY_MS = 100
TARGET_S = 1.0


def one_round(sandbox: object, folder: Path) -> tuple[float, int]:
    import httpx

    from keyresponse.serve import signatures
    from keyresponse.serve.app import JsonLog, Receiver, Server

    sandbox.reset()  # type: ignore[attr-defined]
    sandbox.write_config(folder)  # type: ignore[attr-defined]
    hook_secret = secrets.token_hex(16)
    os.environ.update(sandbox.env)  # type: ignore[attr-defined]
    os.environ["BENCH_GITHUB_WEBHOOK_SECRET"] = hook_secret
    with (folder / "keyresponse.yaml").open("a") as fh:
        fh.write("\nserve:\n  github: {secret_env: BENCH_GITHUB_WEBHOOK_SECRET}\n")
    sandbox.add_fault(service="openai", kind="latency", latency_ms=LATENCY_MS)  # type: ignore[attr-defined]
    with open(os.devnull, "w") as quiet:
        server = Server(Receiver(folder / "keyresponse.yaml", JsonLog(quiet)), "127.0.0.1", 0).start()
        try:
            body = json.dumps({"action": "created", "alert": {"number": 1, "secret_type": "openai_api_key"},
                               "repository": {"full_name": "acme/chatbot"}}).encode()
            started = time.perf_counter()
            r = httpx.post(f"{server.url}/webhooks/github", content=body, headers={
                "content-type": "application/json", "x-github-event": "secret_scanning_alert",
                "x-github-delivery": secrets.token_hex(8),
                "x-hub-signature-256": signatures.github_signature(hook_secret, body)})
            answered = time.perf_counter() - started
            assert r.status_code == 202, r.text
            server.receiver.queue.wait_idle(120)
            metrics = server.receiver.metrics
            assert metrics._count == 1, "the key was not revoked"
            return metrics._sum, round(answered * 1000)
        finally:
            server.stop()
            sandbox.clear_faults()  # type: ignore[attr-defined]


def main() -> int:
    from keyresponse.sandbox import start

    as_json = json_mode()
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sandbox = start(port=0)
    results = []
    try:
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="kr-bench-serve-") as tmp:
                results.append(one_round(sandbox, Path(tmp)))
    finally:
        sandbox.stop()
    revoke = [r[0] for r in results]
    median = statistics.median(revoke)
    print(f"{rounds} rounds, {LATENCY_MS} ms on every OpenAI call")
    print(f"  answered 202 in: {', '.join(f'{r[1]} ms' for r in results)}")
    print(f"  receipt -> revoked: median {median * 1000:.0f} ms "
          f"(min {min(revoke) * 1000:.0f}, max {max(revoke) * 1000:.0f})")
    print(f"  target under {TARGET_S * 1000:.0f} ms: {'MET' if median < TARGET_S else 'MISSED'}")
    if as_json:
        emit("serve", [figure(f"serve: webhook receipt to revoked, {LATENCY_MS} ms per OpenAI call", "ms",
                              median * 1000, None, f"under {TARGET_S * 1000:.0f} ms", median < TARGET_S)])
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
