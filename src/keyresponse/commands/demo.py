"""`keyresponse demo`, `sandbox` and `--sandbox`: a whole incident with no account anywhere.

Starts the embedded sandbox on loopback, writes a ready `keyresponse.yaml` (and
the env files it names) into the folder, puts the sandbox's credentials into this
process's environment, runs the real playbook and prints a one-screen summary.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keyresponse.errors import UsageError

MARKER = "written by keyresponse sandbox"


@contextlib.contextmanager
def sandbox_session(folder: Path, seed: int = 42, force: bool = False) -> Iterator[Any]:
    """A running sandbox with its config written into `folder`; stopped on exit."""
    from keyresponse import sandbox

    config = folder / "keyresponse.yaml"
    if config.exists() and not force and MARKER not in config.read_text(errors="replace")[:400]:
        raise UsageError(
            f"{config} exists and is not a sandbox config; the demo will not overwrite it",
            hint="run the demo in an empty folder, or pass --force",
        )
    server = sandbox.start(port=0, seed=seed)
    try:
        server.write_config(folder)
        os.environ.update(server.env)  # the credentials, as a real deployment would export them
        yield server
    finally:
        server.stop()


def demo(folder: Path, seed: int, force: bool, open_report: bool, json_output: bool, serve: bool = False) -> int:
    if serve:
        return _demo_serve(folder, seed, force, open_report)
    from keyresponse import playbook as pbmod
    from keyresponse.commands.common import load_config
    from keyresponse.console import reporter_for
    from keyresponse.engine import Engine, Mode
    from keyresponse.secret import Secret

    started = time.monotonic()
    with sandbox_session(folder, seed=seed, force=force) as server:
        _seed_repo(folder, server)
        inventory = load_config(folder / "keyresponse.yaml")
        key_name = server.state.truth["inventory_name"] if hasattr(server.state, "truth") else "chatbot-prod"
        book = pbmod.load_playbook(pbmod.find("leaked-key", inventory.root))
        given: dict[str, Any] = {"key": key_name, "leaked": Secret(server.env["SANDBOX_LEAKED_KEY"]),
                                 "severity": "high"}
        inputs = pbmod.coerce_inputs(book, given)
        result = Engine(inventory, mode=Mode.APPLY, reporter=reporter_for(json_output), assume_yes=True).start(
            book, inputs, key_name)
    if not json_output:
        _summary(result, time.monotonic() - started)
    if open_report:
        _open(result.incident.dir / "report.html")
    return result.exit_code


def _demo_serve(folder: Path, seed: int, force: bool, open_report: bool) -> int:
    """The whole path with no command typed: the sandbox posts a signed GitHub secret
    scanning webhook to `keyresponse serve`, which revokes, rotates and reports."""
    import json
    import secrets

    import httpx

    from keyresponse.journal import Incident
    from keyresponse.serve.app import JsonLog, Receiver, Server

    with sandbox_session(folder, seed=seed, force=force) as sb:
        os.environ["DEMO_GITHUB_WEBHOOK_SECRET"] = secrets.token_hex(32)
        with (folder / "keyresponse.yaml").open("a") as fh:
            fh.write("serve:\n  github: {secret_env: DEMO_GITHUB_WEBHOOK_SECRET}\n")
        server = Server(Receiver(folder / "keyresponse.yaml", JsonLog(sys.stderr)), "127.0.0.1", 0).start()
        try:
            sys.stderr.write(f"keyresponse serve on {server.url}; the sandbox posts a GitHub secret scanning alert\n")
            answer = httpx.post(f"{sb.base_url}/_sandbox/webhooks/send", timeout=30, json={
                "kind": "github", "url": f"{server.url}/webhooks/github",
                "secret": os.environ["DEMO_GITHUB_WEBHOOK_SECRET"]}).json()
            sys.stderr.write(f"webhook answered {answer['status']}: {answer['body']}\n")
            server.receiver.queue.wait_idle(300)
        finally:
            server.stop()
    incidents = [i.summary() for i in Incident.all(folder / ".keyresponse")]
    if not incidents:
        sys.stderr.write("no incident was opened\n")
        return 1
    last = incidents[-1]
    print(json.dumps({"incident": last["id"], "status": last["status"], "report": f"{last['dir']}/report.html"}))
    if open_report:
        _open(Path(last["dir"]) / "report.html")
    return 0 if last["status"] == "succeeded" else 1


def _seed_repo(folder: Path, server: Any) -> None:
    """The chatbot's git clone, in which the leaked key was committed (see sandbox/seed_git.py),
    and the inventory's `exposure:` section that points exposure.scan at it."""
    from keyresponse.sandbox import seed_git

    truth = server.state.truth
    seed_git.demo_repo(folder, server.env["SANDBOX_LEAKED_KEY"], int(server.state.started_at),
                       int(truth["attack_start"]))
    config = folder / "keyresponse.yaml"
    text = config.read_text()
    if "\nexposure:" not in text:
        config.write_text(text.rstrip("\n") + "\n" + seed_git.DEMO_EXPOSURE)


def sandbox(port: int, seed: int, state: Path | None, write_config: Path | None, faults: list[str],
            json_output: bool) -> int:
    """`keyresponse sandbox`: serve the emulator until Ctrl-C."""
    from keyresponse.sandbox import parse_fault, serve_forever

    for spec in faults:  # a bad spec is a usage error before the server starts
        try:
            parse_fault(spec)
        except ValueError as exc:
            raise UsageError(f"--fault {spec!r}: {exc}",
                             hint="SERVICE:METHOD:PATH:KIND[:k=v,...], e.g. openai:GET:/models:latency:latency_ms=100") from None
    rc: int = serve_forever(port=port, seed=seed, state_file=str(state) if state else None, faults=faults,
                            json_output=json_output, write_config=str(write_config) if write_config else None)
    return rc


def _summary(result: Any, elapsed: float) -> None:
    """After the run's own summary (the reporter prints it): what to try next."""
    lines = [
        f"  demo         a whole incident in {elapsed:.1f}s against a sandbox that is now stopped",
        "  next         open the HTML report; `keyresponse incidents`; then, each against a fresh",
        "               sandbox: `keyresponse drill --all --sandbox`,",
        "               `keyresponse run rotate --key chatbot-prod --sandbox --yes`",
    ]
    sys.stderr.write("\n".join(lines) + "\n")


def _open(path: Path) -> None:
    from keyresponse.commands.incidents import open_in_browser

    if path.exists():
        open_in_browser(path)
