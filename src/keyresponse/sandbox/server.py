"""Running the sandbox: in a background thread (tests, --sandbox) or in the
foreground (`keyresponse sandbox`)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from keyresponse.sandbox import config, control, github, github_common, gitlab, openai, seed, slack
from keyresponse.sandbox.app import App, Runtime
from keyresponse.sandbox.faults import Fault, FaultSet
from keyresponse.sandbox.state import State

HOST = "127.0.0.1"
FaultSpec = str | Mapping[str, Any] | Fault


def build_runtime(seed_value: int, state_file: str | None, faults: Iterable[FaultSpec] | None) -> Runtime:
    started_at = int(time.time())
    if state_file and Path(state_file).exists():
        state = State.from_json(Path(state_file).read_text())
        seed_value, started_at = state.seed, state.started_at
    else:
        state = seed.build(seed_value, started_at)
    runtime = Runtime(seed_value, state, FaultSet(seed_value), build=lambda: seed.build(seed_value, started_at),
                      rotate_public_key=github_common.rotate_for_path)
    for spec in faults or ():
        runtime.faults.add(spec)
    return runtime


class Sandbox:
    """A running sandbox. Use `start()` to get one."""

    def __init__(self, runtime: Runtime, port: int, state_file: str | None) -> None:
        self.runtime = runtime
        self.port = port
        self.state_file = state_file
        self.base_url = f"http://{HOST}:{port}"
        self.urls = {
            "openai": self.base_url + openai.PREFIX,
            "github": self.base_url + github.PREFIX,
            "gitlab": self.base_url + gitlab.PREFIX,
            "slack": self.base_url + slack.PREFIX + "/",
        }
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        runtime.info = self.info

    @property
    def state(self) -> State:
        return self.runtime.state

    @property
    def env(self) -> dict[str, str]:
        return config.env(self.runtime.state)

    def info(self) -> dict[str, Any]:
        return {**self.urls, "base": self.base_url, "env": self.env}

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def reset(self) -> None:
        """Back to the freshly seeded state (same seed, same clock anchor), faults cleared."""
        self._in_loop(self.runtime.reset)

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.runtime.faults.add(spec).to_dict()

    def clear_faults(self) -> None:
        self.runtime.faults.clear()

    def write_config(self, directory: str | Path) -> Path:
        return config.write(self.runtime.state, self.urls, directory)

    def stop(self) -> None:
        """Stop serving, and save the state if a state file was given."""
        if self._server is not None and self._loop is not None and self._thread is not None:
            stopping = self.runtime.stopping
            if stopping is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(stopping.set)
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None
        if self.state_file:
            self.runtime.state.save(self.state_file)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _in_loop(self, fn: Any) -> None:
        """Run fn on the server's loop thread (the only writer of state) and wait for it."""
        if self._loop is None or self._loop.is_closed():
            fn()
            return

        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def _serve_in_thread(self, sock: socket.socket) -> None:
        app = App(self.runtime, [openai.service(), github.service(), gitlab.service(), slack.service()],
                  control.service())
        cfg = uvicorn.Config(app, ws="none", lifespan="off", log_level="warning", log_config=None,
                             access_log=False, timeout_graceful_shutdown=1)
        server = uvicorn.Server(cfg)
        loop = asyncio.new_event_loop()
        self._server, self._loop = server, loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            self.runtime.stopping = asyncio.Event()
            try:
                loop.run_until_complete(server.serve(sockets=[sock]))
            finally:
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"keyresponse-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {self.base_url}")
            time.sleep(0.01)


def start(*, port: int = 0, seed: int = 42, state_file: str | None = None,
          faults: Iterable[FaultSpec] | None = None) -> Sandbox:
    """Start a sandbox on 127.0.0.1:port (0 = a free port); returns once it accepts connections."""
    runtime = build_runtime(seed, state_file, faults)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then (no 40 ms Nagle stalls)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sandbox = Sandbox(runtime, sock.getsockname()[1], state_file)
    sandbox._serve_in_thread(sock)
    return sandbox


def _describe(sb: Sandbox, config_path: Path | None) -> str:
    truth = sb.state.truth
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(truth["attack_start"]))
    lines = [
        f"keyresponse sandbox (seed {sb.runtime.seed}) on {sb.base_url}  -  Ctrl-C to stop",
        f"  OpenAI   {sb.urls['openai']}",
        f"  GitHub   {sb.urls['github']}",
        f"  GitLab   {sb.urls['gitlab']}",
        f"  Slack    {sb.urls['slack']}",
        f"  control  {sb.base_url}/_sandbox/state  (reset, faults, Slack messages)",
        f"The leaked key: {truth['leaked_key_name']} ({truth['leaked_key_id']}), abused since {when}.",
        "Environment:",
        *(f"  export {name}={value}" for name, value in sb.env.items()),
    ]
    if config_path is not None:
        lines.append(f"Inventory written to {config_path} (credentials in {config_path.parent / 'sandbox.env'}).")
    return "\n".join(lines)


def serve_forever(port: int = 0, seed: int = 42, state_file: str | None = None,
                  faults: Iterable[FaultSpec] | None = None, json_output: bool = False,
                  write_config: str | None = None) -> int:
    """The body of `keyresponse sandbox`: serve until Ctrl-C or SIGTERM; returns the exit code."""
    sb = start(port=port, seed=seed, state_file=state_file, faults=faults)
    try:
        config_path = sb.write_config(write_config) if write_config else None
        if json_output:
            info = sb.info() | ({"config": str(config_path)} if config_path else {})
            print(json.dumps(info), flush=True)
        else:
            print(_describe(sb, config_path), flush=True)

        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
        try:
            while sb.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
    finally:
        sb.stop()
    return 0
