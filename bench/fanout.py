"""Fan-out benchmark: targets.deploy to N GitHub repository secrets on the sandbox,
every request delayed by a fixed latency, bounded-concurrent vs serial, one run.

    /tmp/venv/bin/python bench/fanout.py                 # 200 repos, 50 ms, bound 16
    /tmp/venv/bin/python bench/fanout.py --targets 50 --latency-ms 20 --bound 32

Preflight reads each scope's public key and the secret (2 requests a target);
the deploy writes and verifies it (PUT + GET, 2 requests a target). The serial
figure is the same code with `concurrency: 1`, measured in the same run. The
sandbox runs in a process of its own (loaded from a state file with the N repos),
so that its request handling does not compete with the client for one GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path


def seeded_state(path: Path, n: int) -> list[str]:
    """The sandbox's seeded world plus N repositories, each with an OPENAI_API_KEY
    secret to replace, written to `path` for `python -m keyresponse.sandbox --state`."""
    from keyresponse.sandbox import ghcrypto, seed
    from keyresponse.sandbox.state import iso

    st = seed.build(42, int(time.time()))
    names = []
    old = iso(time.time() - 90 * 86400)
    for i in range(n):
        full = f"acme/bench-{i:03d}"
        st.github["repos"][full] = {
            "id": 810000 + i, "owner": "acme", "name": full.split("/")[1], "full_name": full, "private": True,
            "environments": [], "workflows": {}, "branches": ["main"], "created_at": old,
        }
        scope = f"repo:{full}"
        ghcrypto.issue_key(st, scope)
        encrypted, key_id = ghcrypto.encrypt(st, scope, "old-" + secrets.token_hex(16))
        st.github["secrets"][scope] = {"OPENAI_API_KEY": {
            "name": "OPENAI_API_KEY", "encrypted_value": encrypted, "key_id": key_id,
            "created_at": old, "updated_at": old}}
        names.append(full)
    st.save(path)
    return names


@contextmanager
def sandbox_process(state: Path, latency_ms: int) -> Iterator[dict[str, Any]]:
    """The sandbox in a process of its own, so its work does not share our GIL."""
    fault = json.dumps({"service": "github", "kind": "latency", "latency_ms": latency_ms})
    proc = subprocess.Popen([sys.executable, "-m", "keyresponse.sandbox", "--state", str(state), "--json",
                             "--fault", fault], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


def deploy_once(sb: dict[str, Any], repos: list[str], bound: int, root: Path) -> dict[str, Any]:
    from keyresponse.action import StepContext
    from keyresponse.actions.targets import Deploy, DeployArgs
    from keyresponse.http import build_client
    from keyresponse.inventory import Inventory, LoadedInventory
    from keyresponse.journal import Incident
    from keyresponse.secret import Secret

    inventory = Inventory.model_validate({
        "concurrency": bound,
        "platforms": {"github": {"kind": "github", "base_url": sb["github"], "token_env": "GITHUB_TOKEN"}},
        "keys": {"bench": {"targets": [{"kind": "github", "repo": r, "secret": "OPENAI_API_KEY"} for r in repos]}},
    })
    clients: dict[Any, Any] = {}

    def http(service: str, base_url: str, headers: dict[str, str]) -> Any:
        key = (service, base_url, tuple(sorted(headers.items())))
        if key not in clients:
            clients[key] = build_client(service, base_url, headers)
        return clients[key]

    ctx = StepContext(
        incident=Incident.create(root / ".keyresponse"), inventory=LoadedInventory(inventory, root / "inv.yaml"),
        inputs={}, key_name="bench", step_id="deploy", attempt=1, outputs={}, assume_yes=True,
        interactive=False, deadline=None, _http=http, _emit=lambda kind, message: None,
    )
    secret = Secret("sk-" + "proj-" + "bench" + secrets.token_urlsafe(40))
    action = Deploy()
    try:
        t0 = time.perf_counter()
        plan = action.plan(DeployArgs(secret=secret), ctx)
        checks = action.preflight(plan, ctx)
        t1 = time.perf_counter()
        out = action.apply(plan, ctx)
        t2 = time.perf_counter()
    finally:
        for client in clients.values():
            client.close()
    bad = [c.line() for c in checks if not c.ok]
    with httpx.Client(base_url=sb["base"]) as control:  # the sandbox's decrypt hook
        wrong = [r for r in repos if control.get("/_sandbox/github/secret", params={
            "scope": f"repo:{r}", "name": "OPENAI_API_KEY"}).json()["value"] != secret.reveal()]
    if bad or out["failed"] or wrong:
        raise SystemExit(f"bench run failed: {len(bad)} preflight problems, {out['failed']} failed targets, "
                         f"{len(wrong)} secrets not holding the new value")
    return {"preflight": t1 - t0, "deploy": t2 - t1, "total": t2 - t0}


def main(argv: list[str] | None = None) -> int:
    as_json = json_mode() if argv is None else False
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--bound", type=int, default=16, help="inventory `concurrency` (default 16)")
    parser.add_argument("--no-serial", action="store_true", help="skip the (slow) serial run")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        repos = seeded_state(Path(tmp) / "state.json", args.targets)
        with sandbox_process(Path(tmp) / "state.json", args.latency_ms) as sb:
            os.environ["GITHUB_TOKEN"] = sb["env"]["GITHUB_TOKEN"]
            rows = [(f"concurrent ({args.bound})", deploy_once(sb, repos, args.bound, Path(tmp)))]
            if not args.no_serial:
                rows.append(("serial (1)", deploy_once(sb, repos, 1, Path(tmp))))
    print(f"targets.deploy to {args.targets} GitHub repo secrets, sandbox latency {args.latency_ms} ms/request")
    print(f"{'':18}{'preflight':>12}{'deploy':>12}{'total':>12}   (deploy = write + verify)")
    for label, t in rows:
        print(f"{label:18}{t['preflight']:>11.2f}s{t['deploy']:>11.2f}s{t['total']:>11.2f}s")
    if len(rows) == 2:
        print(f"speed-up of the deploy: {rows[1][1]['deploy'] / rows[0][1]['deploy']:.1f}x")
    if as_json and len(rows) == 2:
        ours, serial = rows[0][1]["deploy"], rows[1][1]["deploy"]
        emit("fanout", [figure(f"deploy to {args.targets} GitHub secrets, {args.latency_ms} ms per request, "
                               f"concurrency {args.bound} vs serial", "s", ours, serial,
                               f"at least {args.bound // 2}x faster than serial", serial / ours >= args.bound // 2)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
