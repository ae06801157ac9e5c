"""The HTTP side of `keyresponse serve`: routes, limits, and serving on a socket.

Each webhook is checked in this order, cheapest first, and nothing is journaled or run
before every check passed: source configured (404), `Content-Type: application/json`
(415), body size (413, read no further than the limit), signature (401, stale 401),
JSON (400), payload shape (422), then the policy (200 `ignored`: not an event that
starts anything, or a secret type no rule covers). Accepted: 202 once its incident is
opened on disk (`queue`), and the worker starts after the answer is sent; a value-only
alert under `auto` is answered once its key's id is journaled (503 if that takes over
VALUE_WAIT seconds: send it again). A delivery id seen before answers 200 `duplicate`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from keyresponse.serve import signatures
from keyresponse.serve.metrics import Metrics
from keyresponse.serve.policy import Decision, Ignored, decide
from keyresponse.serve.queue import DeliveryQueue, Job
from keyresponse.serve.signatures import Refused

GITHUB_ACTING = {"secret_scanning_alert": {"created", "reopened", "publicly_leaked"},
                 "secret_scanning_alert_location": {"created"}}
GITGUARDIAN_ACTING = {"incident_triggered", "incident_regression", "incident_reopened", "new_occurrence"}
VALUE_WAIT = 30.0  # seconds a value-only alert's answer waits for its key's id to be journaled


class JsonLog:
    """One JSON object per line; every line passes the redactor (no known secret in a log)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        from keyresponse.secret import REDACTOR

        line = REDACTOR.redact(json.dumps({"t": round(time.time(), 3), "level": level, "event": event, **fields},
                                          default=str))
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Receiver:
    def __init__(self, config: Path, log: JsonLog | None = None) -> None:
        from keyresponse.commands.common import load_config

        self.config = config
        self.inventory = load_config(config)
        self.settings = self.inventory.model.serve
        self.log = log or JsonLog()
        self.metrics = Metrics()
        state_dir = self.inventory.root / ".keyresponse"
        self.queue = DeliveryQueue(config, state_dir, self.settings.workers, self.metrics, self.log, ask=self._ask,
                                   inventory=self.inventory)
        for rule in self.settings.rules:
            if rule.key is not None:
                self.inventory.key(rule.key)  # a typo fails at start, not at the first alert
        # a service pays its start-up once: the rules' playbooks, what they run, the parsers,
        # and the threads that write the durable record (started now, not at the first alert)
        self.queue.warm(sorted({rule.playbook for rule in self.settings.rules}))
        from keyresponse import alerts  # noqa: F401

        self._accepting = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyresponse-accept")
        for done in [self._accepting.submit(time.sleep, 0.01) for _ in range(4)]:
            done.result()
        self.app = Starlette(routes=[
            Route("/webhooks/github", self.github, methods=["POST"]),
            Route("/webhooks/gitguardian", self.gitguardian, methods=["POST"]),
            Route("/webhooks/generic", self.generic, methods=["POST"]),
            Route("/slack/interactions", self.slack, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ])

    def close(self) -> None:
        """No more answers; the running incidents finish."""
        self._accepting.shutdown(wait=True)
        self.queue.shutdown()

    # --- routes

    async def github(self, request: Request) -> Response:
        return await self._webhook("github", request)

    async def gitguardian(self, request: Request) -> Response:
        return await self._webhook("gitguardian", request)

    async def generic(self, request: Request) -> Response:
        return await self._webhook("generic", request)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def prometheus(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def _webhook(self, source: str, request: Request) -> Response:
        self.metrics.inc("keyresponse_alerts_received_total", source=source)
        try:
            return await self._handle(source, request)
        except Refused as exc:
            return self._refused(source, request, exc.status, exc.reason, str(exc))
        except Ignored as exc:
            self.metrics.inc("keyresponse_alerts_refused_total", source=source, reason=exc.reason)
            self.log("alert.ignored", source=source, reason=exc.reason, message=str(exc),
                     delivery=request.headers.get("x-github-delivery"))
            return JSONResponse({"status": "ignored", "reason": exc.reason, "message": str(exc)}, 200)

    def _refused(self, source: str, request: Request, status: int, reason: str, message: str) -> Response:
        self.metrics.inc("keyresponse_alerts_refused_total", source=source, reason=reason)
        self.log("alert.refused", level="warning", source=source, status=status, reason=reason, message=message,
                 peer=request.client.host if request.client else None)
        return JSONResponse({"status": "refused", "reason": reason, "message": message}, status)

    async def _handle(self, source: str, request: Request) -> Response:
        received = time.monotonic()
        cfg = getattr(self.settings, source)
        if cfg is None:
            raise Refused(404, "not_configured", f"no `serve.{source}` in the inventory: this endpoint is off")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Refused(415, "content_type", f"Content-Type {ctype or '(none)'}: send application/json")
        body = await self._body(request)
        secret = self.inventory.credential(cfg.secret_env, f"serve.{source}.secret_env")
        headers = request.headers
        if source == "github":
            signatures.verify_github(headers, body, secret)
            event = headers.get("x-github-event", "")
            delivery = headers.get("x-github-delivery") or ""
            if event == "ping":
                return JSONResponse({"status": "pong"}, 200)
        elif source == "gitguardian":
            signatures.verify_gitguardian(headers, body, secret, cfg.max_age_seconds)
            delivery = "gg-" + headers.get("gitguardian-signature", "").removeprefix("sha256=")[:32]
        else:
            signatures.verify_bearer(headers, secret)
            delivery = headers.get("idempotency-key") or headers.get("x-delivery-id") or ""
        data = self._json(body)
        if source == "github":
            action = data.get("action") if isinstance(data, dict) else None
            if event not in GITHUB_ACTING or action not in GITHUB_ACTING[event]:
                raise Ignored("not_acting", f"GitHub {event or '(no X-GitHub-Event)'} {action or ''}: nothing to contain")
        elif source == "gitguardian" and isinstance(data, dict) and "action" in data:
            if data["action"] not in GITGUARDIAN_ACTING:
                raise Ignored("not_acting", f"GitGuardian {data['action']}: nothing to contain")
        decision = self._decide(source, data)
        if not delivery:
            import hashlib

            delivery = f"{source}-" + hashlib.sha256(body).hexdigest()[:32]
        job = Job(f"{source}:{delivery}", source, decision.action, decision.playbook, decision.key,
                  decision.dedup, decision.alert, decision.leaked_at, decision.leaked, received=received)
        checked = time.monotonic()
        status, answer = await asyncio.get_running_loop().run_in_executor(self._accepting, self.queue.accept, job)
        opened = time.monotonic()
        if job.resolved is not None and answer["status"] == "accepted":
            # a value-only alert: answered once the key's id is on disk, never before
            try:
                key_id = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.resolved)), VALUE_WAIT)
            except TimeoutError:
                self.log("alert.not_yet_durable", level="warning", source=source, delivery=job.delivery,
                         incident=job.incident)
                return JSONResponse({"status": "retry", "delivery": job.delivery, "incident": job.incident,
                                     "message": f"the key was not found by value within {VALUE_WAIT:g}s; "
                                                "send the alert again"}, 503, headers={"retry-after": "5"})
            answer["key_id"] = key_id
        # where the answer's time went: checks (signature, parsing, policy), then the durable record
        self.log("alert." + answer["status"], source=source, delivery=job.delivery, key=job.key, action=job.action,
                 incident=answer.get("incident"), secret_type=decision.secret_type,
                 ms={"checks": round((checked - received) * 1000, 1), "journal": round((opened - checked) * 1000, 1),
                     "total": round((time.monotonic() - received) * 1000, 1)})
        return JSONResponse(answer, status, background=BackgroundTask(self._answered, job))

    def _answered(self, job: Job) -> None:
        """After the answer is on the wire: the worker may start."""
        from keyresponse.faults import crashpoint

        crashpoint("serve:answered")
        job.answered.set()

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise Refused(413, "too_large", f"the body is over {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "too_large", f"the body is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _json(self, body: bytes) -> Any:
        from keyresponse import alerts

        try:
            return alerts.decode(body.decode("utf-8", "replace"))
        except alerts.PayloadError as exc:
            raise Refused(400, exc.reason, str(exc)) from None

    def _decide(self, source: str, data: Any) -> Decision:
        from keyresponse import alerts

        try:
            found = alerts.from_data(data)
        except alerts.PayloadError as exc:
            raise Refused(422, exc.reason, str(exc)) from None
        return decide(self.inventory, source, found)

    # --- ask: Approve / Dismiss in Slack

    def _ask(self, job: Job) -> None:
        from keyresponse import slack

        cfg = self.inventory.model.notify.slack
        if cfg is None:
            raise RuntimeError("an `ask` rule needs notify.slack in the inventory")
        where = ", ".join(f"{loc.get('repo') or ''}{'/' + loc['path'] if loc.get('path') else ''}"
                          for loc in job.alert.get("locations", [])[:3]) or "unknown location"
        text = (f"Leaked key alert from {job.source}: {job.alert.get('secret_type') or 'secret'} "
                f"for key {job.key or '(found by value)'} at {where}. Contain it now?")
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": slack.escape(text)}},
            {"type": "actions", "block_id": "keyresponse-ask", "elements": [
                {"type": "button", "action_id": "approve", "style": "danger", "value": job.delivery,
                 "text": {"type": "plain_text", "text": "Approve: revoke and rotate"}},
                {"type": "button", "action_id": "dismiss", "value": job.delivery,
                 "text": {"type": "plain_text", "text": "Dismiss"}},
            ]},
        ]
        token = self.inventory.credential(cfg.token_env, "notify.slack.token_env")
        slack.client(token, cfg.base_url).chat_postMessage(channel=cfg.channel, text=text, blocks=blocks)
        self.log("alert.asked", delivery=job.delivery, channel=cfg.channel)

    async def slack(self, request: Request) -> Response:
        self.metrics.inc("keyresponse_alerts_received_total", source="slack")
        try:
            env = self.settings.slack_signing_secret_env
            if env is None:
                raise Refused(404, "not_configured", "no `serve.slack_signing_secret_env`: this endpoint is off")
            body = await self._body(request)
            signatures.verify_slack(request.headers, body, self.inventory.credential(env, "serve.slack_signing_secret_env"))
        except Refused as exc:
            return self._refused("slack", request, exc.status, exc.reason, str(exc))
        from urllib.parse import parse_qs

        try:
            payload = json.loads(parse_qs(body.decode("utf-8", "replace")).get("payload", ["null"])[0])
            action = payload["actions"][0]
            user = payload.get("user") or {}
            by = str(user.get("username") or user.get("name") or user.get("id") or "someone")
            choice, delivery = str(action["action_id"]), str(action["value"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return self._refused("slack", request, 400, "bad_shape", "not a block_actions payload")
        if choice not in ("approve", "dismiss"):
            return self._refused("slack", request, 400, "bad_shape", f"unknown action {choice!r}")
        status, text = await run_in_threadpool(self.queue.decide, delivery, choice == "approve", by)
        self.log("alert." + ("approved" if choice == "approve" else "dismissed"), delivery=delivery, by=by,
                 status=status)
        return JSONResponse({"replace_original": True, "text": text}, status)


class Server:
    """A running receiver on a socket, in a background thread (tests) or in the foreground."""

    def __init__(self, receiver: Receiver, host: str, port: int) -> None:
        import uvicorn

        self.receiver = receiver
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(2048)  # before the URL is printed: a sender may connect before the loop runs
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        cfg = uvicorn.Config(receiver.app, ws="none", lifespan="off", log_level="warning", log_config=None,
                             access_log=False, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(cfg)
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """In the foreground until SIGTERM / Ctrl-C; then running incidents finish."""
        self.receiver.queue.recover()
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        finally:
            self.sock.close()
            self.receiver.log("serve.stopping", running="finishing the incidents in progress")
            self.receiver.close()

    def start(self) -> Server:
        self.receiver.queue.recover()
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                        name=f"keyresponse-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the receiver did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
        self.receiver.close()
