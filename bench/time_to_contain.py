"""Time to containment: how soon after `keyresponse run` starts is the leaked key revoked?

Starts the sandbox with 100 ms of latency on every OpenAI call, writes its
inventory, and runs a playbook of just `key.revoke` + `key.probe` (the key given
by id) as a fresh process:

    python -m keyresponse run PLAYBOOK --config ... --key chatbot-prod --yes

It reports, as medians over the runs:
- total wall time of the run;
- when the revoke step finished (its journal record) after the process started;
- the budget it must beat: process start-up (`python -m keyresponse --help`)
  plus 3 round trips to the sandbox (a GET under the same injected latency).

Usage: python bench/time_to_contain.py [runs]   (default 5; a fresh sandbox state each run)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LATENCY_MS = 100
PLAYBOOK = """name: contain
inputs:
  key: {{description: Inventory name of the leaked key}}
steps:
  - {{id: revoke, uses: key.revoke, with: {{key_id: {key_id}}}}}
  - {{id: dead, uses: key.probe, with: {{expect: dead}}}}
"""


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    wall_start = time.time()
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    return wall_start, time.perf_counter() - start, proc


def round_trip(url: str, token: str, n: int = 7) -> float:
    import httpx

    with httpx.Client() as client:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            client.get(url, headers={"Authorization": f"Bearer {token}"}, params={"limit": 1})
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def milestones(folder: Path, began: float) -> dict[str, float]:
    """Seconds after the process started: engine ready, key found (revoke preflight), key revoked."""
    [incident] = [p for p in (folder / ".keyresponse" / "incidents").iterdir() if p.is_dir()]
    out: dict[str, float] = {}
    for line in (incident / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        at = dt.datetime.fromisoformat(rec["t"].replace("Z", "+00:00")).timestamp() - began
        if rec["event"] == "incident.opened":
            out["ready"] = at
        elif rec["event"] == "step.planned" and rec["step"] == "revoke":
            out["found"] = at
        elif rec["event"] == "step.finished" and rec["step"] == "revoke":
            if rec["status"] != "applied":
                raise SystemExit(f"revoke did not apply: {rec.get('error')}")
            out["revoked"] = at
    if "revoked" not in out:
        raise SystemExit("no revoke record in the journal")
    return out


def main() -> None:
    from keyresponse.sandbox import start

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sandbox = start(port=0)
    try:
        startup, totals, rtts = [], [], []
        marks: dict[str, list[float]] = {"ready": [], "found": [], "revoked": []}
        for i in range(runs):
            sandbox.reset()
            sandbox.add_fault(service="openai", kind="latency", latency_ms=LATENCY_MS)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                config = sandbox.write_config(folder)
                config = config if config.suffix == ".yaml" else folder / "keyresponse.yaml"
                env = {**os.environ, **sandbox.env, "NO_COLOR": "1"}
                book = folder / "contain.yaml"
                book.write_text(PLAYBOOK.format(key_id=sandbox.state.truth["leaked_key_id"]))
                rtts.append(round_trip(sandbox.urls["openai"] + "/organization/projects", sandbox.env["OPENAI_ADMIN_KEY"]))
                _, help_time, _ = timed([sys.executable, "-m", "keyresponse", "--help"], env, folder)
                startup.append(help_time)
                began, total, proc = timed([sys.executable, "-m", "keyresponse", "run", str(book), "--config",
                                            str(config), "--key", "chatbot-prod", "--yes"], env, folder)
                if proc.returncode != 0:
                    raise SystemExit(f"run {i + 1} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
                live = [k for k in sandbox.state.openai_keys() if k["id"] == sandbox.state.truth["leaked_key_id"]]
                if live[0]["live"]:
                    raise SystemExit("the key is still live after the run")
                totals.append(total)
                for name, at in milestones(folder, began).items():
                    marks[name].append(at)
    finally:
        sandbox.stop()
    s, t, r = (statistics.median(x) for x in (startup, totals, rtts))
    ready, found, c = (statistics.median(marks[k]) for k in ("ready", "found", "revoked"))
    budget = s + 3 * r
    print(f"latency injected on every OpenAI call: {LATENCY_MS} ms; {runs} runs, medians")
    print(f"round trip (GET, with latency):        {r * 1000:.0f} ms")
    print(f"process start (`--help`):              {s * 1000:.0f} ms")
    print(f"engine ready (incident opened):        {ready * 1000:.0f} ms after the process started")
    print(f"key found (revoke preflight, 1 call):  {found * 1000:.0f} ms")
    print(f"key revoked (1 more call):             {c * 1000:.0f} ms")
    print(f"whole run (revoke + probe), wall:      {t * 1000:.0f} ms")
    print(f"budget (start + 3 round trips):        {budget * 1000:.0f} ms -> "
          f"{'within' if c <= budget else 'OVER'} by {abs(budget - c) * 1000:.0f} ms")
    print(f"from engine ready to revoked:          {(c - ready) * 1000:.0f} ms = {(c - ready) / r:.1f} round trips")


if __name__ == "__main__":
    main()
