"""Time to containment in the real `leaked-key` playbook, not a revoke-only one.

`time_to_contain.py` measures a playbook of just revoke + probe. `leaked-key` first
plans every step and runs their read-only preflights (so that nothing changes when a
later step could only fail), finds the key and opens the Slack thread; all of that
comes before the revoke. This runs `keyresponse run leaked-key --key chatbot-prod --yes`
against the sandbox, with no latency and with 100 ms added to every OpenAI call, and
reads from the journal when each milestone happened after exec:

    engine ready (incident opened), forecast done (first step started), key revoked

Target: the forecast adds at most 3 round trips before the first step (its longest
chain of preflights: key.find, key.revoke, then key.issue's two reads), so the revoke
lands within the no-latency run + 6 round trips.

Usage: python bench/contain_playbook.py [rounds]   (default 5)
"""

from __future__ import annotations

import statistics
import sys
import tempfile

from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path
from time_to_contain import contain, process_env

LATENCY_MS = 100


def main() -> None:
    from keyresponse.sandbox import start

    as_json = json_mode()
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sandbox = start(port=0)
    cache = tempfile.TemporaryDirectory(prefix="keyresponse-pycache-")
    env = process_env(cache.name)

    def run(latency_ms: float) -> dict[str, float]:
        return contain(sandbox, env, latency_ms, "leaked-key")[1]

    quiet: list[dict[str, float]] = []
    slow: list[dict[str, float]] = []
    try:
        run(0)  # warms the bytecode cache; not counted
        for _ in range(rounds):
            quiet.append(run(0))
            slow.append(run(LATENCY_MS))
    finally:
        sandbox.stop()
        cache.cleanup()

    def med(runs: list[dict[str, float]], name: str) -> float:
        return statistics.median(m[name] for m in runs) * 1000

    rtt = LATENCY_MS
    forecast = (med(slow, "first step") - med(slow, "ready")) - (med(quiet, "first step") - med(quiet, "ready"))
    added = med(slow, "revoked") - med(quiet, "revoked")
    if as_json:
        emit("contain_playbook", [figure(
            f"leaked-key playbook: exec to revoked, {LATENCY_MS} ms per OpenAI call, vs the same run with none",
            "ms", round(med(slow, "revoked")), round(med(quiet, "revoked")),
            f"baseline + 6 round trips ({med(quiet, 'revoked') + 6 * rtt:.0f} ms)", added <= 6 * rtt * 1.1)])
        return
    print(f"leaked-key, {rounds} rounds, medians, ms after exec:")
    print(f"{'':24}{'no latency':>12}{f'{LATENCY_MS} ms/call':>14}")
    for name in ("ready", "first step", "revoked"):
        print(f"{name:24}{med(quiet, name):12.0f}{med(slow, name):14.0f}")
    print(f"the forecast's preflights add {forecast:.0f} ms = {forecast / rtt:.1f} round trips "
          f"(target 3: {'MET' if forecast <= 3 * rtt * 1.1 else 'MISSED'})")
    print(f"the revoke lands {added:.0f} ms = {added / rtt:.1f} round trips later than with no latency "
          f"(target 6: {'MET' if added <= 6 * rtt * 1.1 else 'MISSED'})")

if __name__ == "__main__":
    main()
