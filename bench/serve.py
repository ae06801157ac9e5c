"""Webhook to 202, and webhook to revoked: how soon does `keyresponse serve` answer an
alert, and how soon after it arrives is the key revoked?

Starts the sandbox with 100 ms added to every OpenAI call and the receiver in this
process (as a service runs: no process start-up is paid per alert), posts a signed
GitHub `secret_scanning_alert` for the sandbox's leaked key from a client that is
already connected (as a sender's pool is), and measures:

- the 202: from sending the request to its answer (the incident is opened on disk
  before it, seven fsyncs: its folder, the delivery record, its playbook, its journal
  and its `queued` record; the run starts after it). One fsync's cost on the same disk
  is printed beside it for scale;
- receipt -> run started: until the worker starts the playbook on that incident (from
  the receiver's JSON log);
- receipt -> revoked: the receiver's own measure, from the request's receipt to the end
  of the `revoke` step (`keyresponse_receipt_to_revoke_seconds`). Target: under 1 s.

Usage: python bench/serve.py [rounds]   (default 10; a fresh sandbox state and receiver each round)
"""

from __future__ import annotations

import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

LATENCY_MS = 100
SERVER: list[dict[str, float]] = []  # the receiver's own account of each answer (its log's `ms`)
TARGET_S = 1.0


def fsync_ms(folder: Path, n: int = 10) -> float:
    """The median cost of appending a line and fsyncing it, on the disk the state lives on."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        costs = []
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 200 + b"\n")
            os.fsync(fd)
            costs.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(costs)


def one_round(sandbox: Any, folder: Path) -> tuple[float, float, float, float]:
    """(202 in ms, receipt -> run started in ms, receipt -> revoked in ms, one fsync in ms)."""
    import httpx

    from keyresponse.serve import signatures
    from keyresponse.serve.app import JsonLog, Receiver, Server

    sandbox.reset()
    sandbox.write_config(folder)
    hook_secret = secrets.token_hex(16)
    os.environ.update(sandbox.env)
    os.environ["BENCH_GITHUB_WEBHOOK_SECRET"] = hook_secret
    with (folder / "keyresponse.yaml").open("a") as fh:
        fh.write("\nserve:\n  github: {secret_env: BENCH_GITHUB_WEBHOOK_SECRET}\n")
    sandbox.add_fault(service="openai", kind="latency", latency_ms=LATENCY_MS)
    log = io.StringIO()
    server = Server(Receiver(folder / "keyresponse.yaml", JsonLog(log)), "127.0.0.1", 0).start()
    try:
        with httpx.Client(timeout=60) as client:
            client.get(f"{server.url}/healthz")  # connected, as a sender's keep-alive pool is
            body = json.dumps({"action": "created", "alert": {"number": 1, "secret_type": "openai_api_key"},
                               "repository": {"full_name": "acme/chatbot"}}).encode()
            headers = {"content-type": "application/json", "x-github-event": "secret_scanning_alert",
                       "x-github-delivery": secrets.token_hex(8),
                       "x-hub-signature-256": signatures.github_signature(hook_secret, body)}
            os.sync()  # the rounds before left dirty pages: the fsyncs measured here should not flush them
            time.sleep(0.2)
            fsync = fsync_ms(folder)
            sent_at = time.time()
            started = time.perf_counter()
            r = client.post(f"{server.url}/webhooks/github", content=body, headers=headers)
            answered = time.perf_counter() - started
        assert r.status_code == 202, r.text
        server.receiver.queue.wait_idle(120)
        metrics = server.receiver.metrics
        assert metrics.value("keyresponse_incidents_total", outcome="succeeded") == 1, log.getvalue()[-2000:]
        revoked = metrics.render().split("keyresponse_receipt_to_revoke_seconds_sum ")[1].split()[0]
        lines = [json.loads(line) for line in log.getvalue().splitlines()]
        run_at = next(x["t"] for x in lines if x["event"] == "incident.starting")
        SERVER.append(next(x["ms"] for x in lines if x["event"] == "alert.accepted"))
        return answered * 1000, max(0.0, run_at - sent_at) * 1000, float(revoked) * 1000, fsync
    finally:
        server.stop()
        sandbox.clear_faults()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    from keyresponse.sandbox import start

    as_json = json_mode()
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    sandbox = start(port=0)
    results: list[tuple[float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="kr-bench-serve-") as tmp:  # removed at the end, not between rounds
        try:
            for i in range(rounds):
                folder = Path(tmp) / str(i)
                folder.mkdir()
                results.append(one_round(sandbox, folder))
        finally:
            sandbox.stop()
    print(f"{rounds} rounds, {LATENCY_MS} ms on every OpenAI call")
    for i, what in enumerate(("202 answered", "receipt -> run started", "receipt -> revoked",
                              "one fsync (for scale)")):
        values = [r[i] for r in results]
        print(f"  {what:<24} median {statistics.median(values):6.1f} ms   p95 {_p95(values):6.1f} ms   "
              f"(min {min(values):.1f}, max {max(values):.1f})")
    for part in ("checks", "journal", "total"):
        values = [x[part] for x in SERVER]
        print(f"  {'  in the receiver: ' + part:<24} median {statistics.median(values):6.1f} ms   "
              f"p95 {_p95(values):6.1f} ms")
    median = statistics.median(r[2] for r in results) / 1000
    print(f"  receipt -> revoked, target under {TARGET_S * 1000:.0f} ms: {'MET' if median < TARGET_S else 'MISSED'}")
    if as_json:
        two = statistics.median(r[0] for r in results)
        emit("serve", [figure(f"serve: webhook receipt to revoked, {LATENCY_MS} ms per OpenAI call", "ms",
                              median * 1000, None, f"under {TARGET_S * 1000:.0f} ms", median < TARGET_S),
                       figure("serve: the 202 answered (the incident opened on disk first)", "ms", two, None,
                              "milliseconds", two < 100)])
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
