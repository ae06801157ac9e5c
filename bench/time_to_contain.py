"""Time to containment: how soon after `keyresponse run` starts is the leaked key revoked?

Runs a playbook of just `key.revoke` + `key.probe` (the key given by id) against
the sandbox, as a fresh process each time:

    python -m keyresponse run PLAYBOOK --config ... --key chatbot-prod --yes

twice per round: once with no latency, which measures the process's own start-up
(interpreter, inventory, playbook, journal: everything but the network), and once
with 100 ms added to every OpenAI call. The target: the revoke completes within
process start + 3 round trips, i.e. the latency adds at most 3 round trips to the
moment the key is revoked. A revoke by id takes 2 calls (read the key to learn its
owner, delete it), plus, for a service account's key, a listing of its project so
the plan can name the sibling keys that would die; the engine starts the read and
the listing side by side while it is still opening the incident (Action.prefetch),
so start-up and the network overlap and the listing adds no round trip.

For comparison it also reports the stricter yardstick of `keyresponse --help`
(start-up with no inventory, playbook or journal at all) + 3 round trips.

Every command runs with bytecode caching on (in a private cache folder) after a
warm-up run, as an installed keyresponse does: `pip install` compiles the package.

Usage: python bench/time_to_contain.py [rounds]   (default 7; a fresh sandbox state each run)
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
from typing import Any

from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path

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
    """Seconds after the process started: engine ready, first step started, key found (revoke
    preflight), key revoked."""
    [incident] = [p for p in (folder / ".keyresponse" / "incidents").iterdir() if p.is_dir()]
    out: dict[str, float] = {}
    for line in (incident / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        at = dt.datetime.fromisoformat(rec["t"].replace("Z", "+00:00")).timestamp() - began
        if rec["event"] == "incident.opened":
            out["ready"] = at
        elif rec["event"] == "step.started":
            out.setdefault("first step", at)
        elif rec["event"] == "step.planned" and rec["step"] == "revoke":
            out["found"] = at
        elif rec["event"] == "step.finished" and rec["step"] == "revoke":
            if rec["status"] != "applied":
                raise SystemExit(f"revoke did not apply: {rec.get('error')}")
            out["revoked"] = at
    if "revoked" not in out:
        raise SystemExit("no revoke record in the journal")
    return out


def process_env(cache: str) -> dict[str, str]:
    """This environment for a measured `keyresponse`: bytecode cached in `cache`, no colour."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=cache, NO_COLOR="1")
    return env


def contain(sandbox: Any, env: dict[str, str], latency_ms: float,
            playbook: str | None = None) -> tuple[float, dict[str, float]]:
    """One run on a fresh sandbox state: (wall time, milestones). The playbook is revoke +
    probe, or `playbook` (a name, e.g. leaked-key)."""
    sandbox.reset()
    if latency_ms:
        sandbox.add_fault(service="openai", kind="latency", latency_ms=latency_ms)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = sandbox.write_config(folder)
        config = config if config.suffix == ".yaml" else folder / "keyresponse.yaml"
        book = folder / "contain.yaml"
        book.write_text(PLAYBOOK.format(key_id=sandbox.state.truth["leaked_key_id"]))
        began, total, proc = timed([sys.executable, "-m", "keyresponse", "run", playbook or str(book), "--config",
                                    str(config), "--key", "chatbot-prod", "--yes"], {**env, **sandbox.env}, folder)
        if proc.returncode != 0:
            raise SystemExit(f"the run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        leaked = sandbox.state.truth["leaked_key_id"]
        if any(k["live"] for k in sandbox.state.openai_keys() if k["id"] == leaked):
            raise SystemExit("the key is still live after the run")
        return total, milestones(folder, began)


def main() -> None:
    from keyresponse.sandbox import start

    as_json = json_mode()
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    sandbox = start(port=0)
    cache = tempfile.TemporaryDirectory(prefix="keyresponse-pycache-")
    env = process_env(cache.name)
    helps, rtts, quiet, slow, walls = [], [], [], [], []
    try:
        contain(sandbox, env, 0)  # warms the bytecode cache; not counted
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                helps.append(timed([sys.executable, "-m", "keyresponse", "--help"], env, Path(tmp))[1])
            quiet.append(contain(sandbox, env, 0)[1])
            wall, marks = contain(sandbox, env, LATENCY_MS)
            walls.append(wall)
            slow.append(marks)
            rtts.append(round_trip(sandbox.urls["openai"] + "/organization/projects", sandbox.env["OPENAI_ADMIN_KEY"]))
    finally:
        sandbox.stop()
        cache.cleanup()

    def med(runs: list[dict[str, float]], name: str) -> float:
        return statistics.median(m[name] for m in runs)

    rtt, help_time, wall = statistics.median(rtts), statistics.median(helps), statistics.median(walls)
    start_up = med(quiet, "revoked")
    ready, found, revoked = med(slow, "ready"), med(slow, "found"), med(slow, "revoked")
    added = revoked - start_up
    strict = help_time + 3 * rtt
    print(f"{rounds} rounds, medians; round trip with {LATENCY_MS} ms injected: {rtt * 1000:.0f} ms")
    print(f"process start (the same run, no latency): revoked {start_up * 1000:.0f} ms after exec "
          f"(engine ready at {med(quiet, 'ready') * 1000:.0f} ms)")
    print(f"with {LATENCY_MS} ms on every OpenAI call:")
    print(f"  engine ready (incident opened)      {ready * 1000:5.0f} ms")
    print(f"  key found (revoke preflight)        {found * 1000:5.0f} ms")
    print(f"  key revoked                         {revoked * 1000:5.0f} ms")
    print(f"  whole run (revoke + probe), wall    {wall * 1000:5.0f} ms")
    print(f"target, process start + 3 round trips: {(start_up + 3 * rtt) * 1000:.0f} ms -> "
          f"{'MET' if added <= 3 * rtt else 'MISSED'}: the latency added {added * 1000:.0f} ms "
          f"= {added / rtt:.1f} round trips")
    print(f"stricter, `--help` ({help_time * 1000:.0f} ms) + 3 round trips: {strict * 1000:.0f} ms -> "
          f"{'within' if revoked <= strict else 'over'} by {abs(strict - revoked) * 1000:.0f} ms")
    if as_json:
        emit("time_to_contain", [figure(f"time to contain: exec to revoked, {LATENCY_MS} ms per OpenAI call, vs "
                                        "the same run with none", "ms", revoked * 1000, start_up * 1000,
                                        f"baseline + 3 round trips ({(start_up + 3 * rtt) * 1000:.0f} ms)",
                                        added <= 3 * rtt)])


if __name__ == "__main__":
    main()
