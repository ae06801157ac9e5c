"""One ASGI app: a prefix per emulated service, faults, and the control API.

Routing is a small table of regexes over the *raw* (still percent-encoded)
path, because both GitHub environment names and GitLab project paths are sent
URL-encoded (`acme%2Fchatbot`) and must stay one path segment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keyresponse.sandbox.faults import Fault, FaultSet
from keyresponse.sandbox.state import State

log = logging.getLogger("keyresponse.sandbox")

Handler = Callable[["Call"], Awaitable[Response]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    mutating: bool


def route(method: str, template: str, handler: Handler, *, mutating: bool | None = None) -> Route:
    """'/repos/{owner}/{repo}' -> one segment per {name}; {name:path} spans slashes."""
    regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", template)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    if mutating is None:
        mutating = method not in ("GET", "HEAD")
    return Route(method, re.compile(regex + "/?"), handler, mutating)


@dataclass
class Service:
    name: str
    prefix: str
    routes: list[Route]
    # (status, message) -> a response in the service's own error shape
    error: Callable[[int, str], Response]
    # decorates every response of the service (request ids, rate-limit headers)
    finish: Callable[[Response], None] = lambda response: None

    def match(self, method: str, raw_path: str) -> tuple[Route | None, dict[str, str]]:
        for r in self.routes:
            m = r.pattern.fullmatch(raw_path)
            if m and r.method == method:
                return r, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, {}


@dataclass
class Runtime:
    """What the handlers share: the current state and the fault set."""

    seed: int
    state: State
    faults: FaultSet
    build: Callable[[], State]
    stopping: asyncio.Event | None = None  # set when the server stops: releases hanging requests
    # the rotate_public_key fault: (state, path below /github) -> None
    rotate_public_key: Callable[[State, str], None] | None = None
    # what GET /_sandbox/info answers (URLs and env of the running server)
    info: Callable[[], dict[str, Any]] = dict

    def reset(self) -> None:
        self.state = self.build()
        self.faults.clear()


@dataclass
class Call:
    request: Request
    params: dict[str, str]
    runtime: Runtime
    service: Service

    @property
    def state(self) -> State:
        return self.runtime.state

    def base_url(self) -> str:
        """The service's base URL as the client reached it."""
        return str(self.request.base_url).rstrip("/") + self.service.prefix

    async def body(self) -> dict[str, Any]:
        """A JSON or form body as a dict ({} when empty); ValueError if malformed."""
        raw = await self.request.body()
        if not raw.strip():
            return {}
        ctype = self.request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in ctype:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True))
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("body is not a JSON object")
        return data


class App:
    """The ASGI callable uvicorn serves."""

    def __init__(self, runtime: Runtime, services: list[Service], control: Service) -> None:
        self.runtime = runtime
        self.services = services
        self.control = control

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        request = Request(scope, receive)
        response: Response | None
        if raw_path.startswith(self.control.prefix + "/"):
            response = await self._control(request, raw_path[len(self.control.prefix) :])
        else:
            service = next((s for s in self.services if raw_path.startswith(s.prefix + "/")), None)
            if service is None:
                response = JSONResponse({"error": f"no emulated service at {raw_path}"}, 404)
            else:
                response = await self._serve(service, request, raw_path[len(service.prefix) :], send)
        if response is not None:
            await response(scope, receive, send)

    async def _control(self, request: Request, rel: str) -> Response:
        route, params = self.control.match(request.method, rel)
        if route is None:
            return self.control.error(404, f"no control endpoint {request.method} {self.control.prefix}{rel}")
        return await self._run(route, Call(request, params, self.runtime, self.control))

    async def _serve(self, service: Service, request: Request, rel: str, send: Any) -> Response | None:
        """The service's answer, disturbed by any faults; None when the connection was dropped."""
        method = request.method
        self.runtime.state.requests[(service.name, method, unquote(rel))] += 1
        terminal = await self._pre_faults(service, rel, self.runtime.faults.take(service.name, method,
                                                                                 (rel, unquote(rel))))
        kind = terminal.kind if terminal is not None else None
        if terminal is not None and kind == "status":
            response = service.error(terminal.status or 503, "injected fault")
            retry_after = terminal.retry_after_header()
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            service.finish(response)
            return response
        if terminal is not None and kind in ("hang", "drop"):
            if kind == "hang":
                await self._hang(request.receive, terminal.latency_ms / 1000.0 or 600.0)
            await _drop(send)
            return None
        if terminal is not None and kind == "commit_after_timeout":
            # the client's timeout passes, then the change lands: nobody hears the answer
            await request.body()  # kept by the request: the wait below reads the channel
            await self._hang(request.receive, 600.0)
            await asyncio.sleep(terminal.latency_ms / 1000.0)
        route, params = service.match(method, rel)
        if route is None:
            response = service.error(404, f"Invalid URL ({method} {service.prefix}{unquote(rel)})")
        else:
            response = await self._run(route, Call(request, params, self.runtime, service))
            if route.mutating:
                self.runtime.state.record_mutation(service.name, method, unquote(rel), response.status_code)
        if terminal is not None and kind in ("commit_then_drop", "commit_after_timeout"):
            await _drop(send)
            return None
        if terminal is not None and kind == "headers_then_reset":
            service.finish(response)
            await _headers_then_reset(send, response)
            return None
        if terminal is not None and kind == "commit_then_fail":
            response = service.error(terminal.status or 502, "injected fault after the change was made")
        if terminal is not None and kind == "commit_then_garble":
            # the change is made and its status sent, with a body that is not JSON (a proxy's page)
            response = Response(b"<html><body>upstream hiccup</body></html>", status_code=response.status_code,
                                media_type="text/html")
        service.finish(response)
        return response

    async def _pre_faults(self, service: Service, rel: str, fired: list[Fault]) -> Fault | None:
        """Apply latency and key rotation; return the first fault that decides the outcome."""
        delay = 0.0
        terminal = None
        for fault in fired:
            if fault.kind == "latency":
                delay += fault.delay(self.runtime.faults.rng)
            elif fault.kind == "rotate_public_key":
                if self.runtime.rotate_public_key is not None:
                    self.runtime.rotate_public_key(self.runtime.state, unquote(rel))
            elif terminal is None:
                terminal = fault
        if delay:
            await asyncio.sleep(delay)
        return terminal

    async def _run(self, route: Route, call: Call) -> Response:
        try:
            return await route.handler(call)
        except Exception:  # the sandbox must answer, like a real service, with a 500
            log.exception("sandbox handler failed: %s %s", call.request.method, call.request.url.path)
            return call.service.error(500, "The sandbox failed while processing your request.")

    async def _hang(self, receive: Any, seconds: float) -> None:
        """Hold the request until the client gives up, the server stops, or time passes."""

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(client_gone())]
        if self.runtime.stopping is not None:
            waiters.append(asyncio.ensure_future(self.runtime.stopping.wait()))
        _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()


async def _drop(send: Any) -> None:
    """Close the connection without a response.

    ASGI has no verb for this; uvicorn's `send` is a bound method of its
    request cycle, which holds the transport. Other servers get a response
    that starts and is then cut off, which clients also see as a dropped
    connection.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        # let the loop run connection_lost() so uvicorn sees the disconnect
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    raise ConnectionAbortedError("sandbox dropped the connection on purpose")


async def _headers_then_reset(send: Any, response: Response) -> None:
    """Send the status line, the headers and the first half of the body, then reset the
    connection (RST, not a clean close): the client has heard the answer begin and loses
    the rest. A body of one byte or none is cut before its last byte or at its start."""
    body = bytes(response.body)
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # not uvicorn: the unfinished response is the best there is
        raise ConnectionResetError("sandbox reset the connection mid-body on purpose")
    while transport.get_write_buffer_size():  # what was sent reaches the socket before the reset
        await asyncio.sleep(0.001)
    sock = transport.get_extra_info("socket")
    if sock is not None:  # linger 0: closing sends RST, the client reads ECONNRESET after the data
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # let the loop run connection_lost() so uvicorn sees the disconnect
    await asyncio.sleep(0)
    await asyncio.sleep(0)
