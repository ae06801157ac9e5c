"""`keyresponse serve`: receive scanners' webhooks and contain what they report."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any


def serve(config: Path, host: str, port: int) -> int:
    from keyresponse.serve.app import Receiver, Server

    receiver = Receiver(config)
    server = Server(receiver, host, port)
    sources = [s for s in ("github", "gitguardian", "generic") if getattr(receiver.settings, s) is not None]
    # the first stdout line says where it listens (port 0 picks a free one)
    print(json.dumps({"url": server.url, "webhooks": {s: f"{server.url}/webhooks/{s}" for s in sources}}), flush=True)
    receiver.log("serve.started", url=server.url, sources=sources, workers=receiver.settings.workers)
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: Any) -> None:
            server.server.should_exit = True

        signal.signal(signal.SIGTERM, on_term)
    server.serve()
    receiver.log("serve.stopped")
    return 0
