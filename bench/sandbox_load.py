"""Load on the sandbox: how many GET /v1/models (the key probe) per second it answers.

    python bench/sandbox_load.py [--requests 5000] [--concurrency 8] [--seconds 20] [--min-rps 500]

Starts its own sandbox in a child process (so client and server do not share a
GIL), drives it over loopback with a pool of threads, each with its own
keep-alive httpx.Client (cheaper per request than httpx's asyncio client), and
prints requests/s.
Bounded in count and time; exits 1 if the rate is under --min-rps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path


def _load(url: str, key: str, total: int, concurrency: int, seconds: float) -> tuple[int, int, list[float], float]:
    """Each worker thread has its own keep-alive client; together they stop at `total` or `seconds`."""
    latencies: list[float] = []
    errors = 0
    tickets = iter(range(total))
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal errors
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            client.get(url)  # connect before the clock matters
            barrier.wait()
            while time.perf_counter() < deadline:
                with lock:
                    if next(tickets, None) is None:
                        return
                t0 = time.perf_counter()
                try:
                    ok = client.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    errors += not ok

    barrier = threading.Barrier(concurrency + 1)
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    return len(latencies), errors, latencies, elapsed


def main() -> int:
    as_json = json_mode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="stop after this many requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="stop after this long, whatever the count")
    parser.add_argument("--min-rps", type=float, default=500.0, help="exit 1 below this rate")
    args = parser.parse_args()

    command = [sys.executable, "-m", "keyresponse.sandbox", "--json", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            url = info["openai"] + "/models"
            if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
                raise SystemExit(f"refusing to load a non-loopback address: {url}")
            done, errors, latencies, elapsed = _load(
                url, info["env"]["SANDBOX_LEAKED_KEY"], args.requests, args.concurrency, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=15)
    rps = done / elapsed
    ms = sorted(1000 * t for t in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"GET /v1/models: {done} requests, {errors} errors in {elapsed:.2f} s with concurrency "
          f"{args.concurrency}: {rps:.0f} req/s (p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms)")
    if as_json:
        emit("sandbox_load", [figure(f"sandbox GET /v1/models, concurrency {args.concurrency}", "req/s", rps, None,
                                     f"at least {args.min_rps:.0f} req/s, no errors",
                                     rps >= args.min_rps and errors == 0)])
    return 0 if rps >= args.min_rps and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
