"""One place for HTTP clients: timeouts, retries, Retry-After, user agent, redaction.

One boundary around each whole exchange (`Client.send`, like httpx's own
`map_httpcore_exceptions` around sending *and* reading): building the request,
sending it, every retry, reading the body and decoding it all happen inside it,
and any httpx error that crosses it becomes the project's (`_exchange`):
`Unreachable` when the request provably never left (nothing changed), else
`AnswerLost` (the answer was lost, cut off or unreadable: a write may have taken
effect). Both are `ServiceError`s with no status. Bodies are read whole by
`RetryTransport` before it returns, so a connection reset mid-body happens where
it can be retried (this client does not stream).

Retries (exponential backoff with full jitter) cover 429 and 500/502/503/504 and
connection failures and answers cut off mid-body, for idempotent methods only. A POST
is retried only when it provably never reached the service (connect error) or was
refused with 429; a POST that mints something is never retried blindly — even when
its 201 headers arrived and the body was cut — the caller checks whether the first
attempt took effect (actions/key_issue.py, `Issue.apply`: list by the journaled name).

Waiting is bounded three ways: attempts per request, seconds per request
(`RetryPolicy.budget`), and seconds per step (`retry_budget()`, shared by every
request the step makes, in any thread that copies the context). A Retry-After
longer than the cap is not waited out: the answer goes back to the caller at once.
A request that gave up carries `response.extensions["keyresponse_retries"]`, and
`error_for` says how many attempts were made and why it stopped (an exchange that
failed says so in its `AnswerLost`/`Unreachable` message).

In plan mode the client is read-only: any method but GET/HEAD raises before a byte
is sent, unless the request is marked ``extensions={"read_only_ok": True}`` (for
services whose reads are POSTs).
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import random
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from keyresponse import __version__
from keyresponse.errors import AnswerLost, KeyresponseError, ServiceError, Unreachable
from keyresponse.secret import REDACTOR

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
READ_METHODS = frozenset({"GET", "HEAD"})
USER_AGENT = f"keyresponse/{__version__}"
CREDENTIAL_HEADERS = frozenset({"authorization", "private-token", "x-api-key", "job-token"})

# the request provably never left this machine: nothing can have changed
NEVER_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                           httpx.UnsupportedProtocol, httpx.InvalidURL)
# worth another try whatever the method: the connection could not be made
RETRY_ANY_METHOD = (httpx.ConnectError, httpx.ConnectTimeout)
# worth another try for an idempotent method: sent, but the whole answer never came back
# (a timeout, a reset, a connection closed before the body was complete)
RETRY_IDEMPOTENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError,
                    httpx.RemoteProtocolError)
# everything httpx raises about an exchange (InvalidURL and StreamError are not HTTPErrors)
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)


class RetryPolicy:
    def __init__(self, attempts: int = 5, base: float = 0.25, cap: float = 8.0,
                 retry_after_cap: float = 30.0, budget: float = 60.0) -> None:
        self.attempts = attempts  # tries in all, first included
        self.base = base
        self.cap = cap
        self.retry_after_cap = retry_after_cap
        self.budget = budget  # seconds of waiting one request may spend

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2 ** attempt))


DEFAULT_POLICY = RetryPolicy()
STEP_RETRY_BUDGET = 60.0  # seconds of retry waiting one step may spend across all its requests


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self._lock = threading.Lock()

    def allows(self, delay: float) -> bool:
        return delay <= self.left

    def spend(self, delay: float) -> None:
        with self._lock:
            self.left = max(0.0, self.left - delay)


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("keyresponse_retry_budget", default=None)


@contextlib.contextmanager
def retry_budget(seconds: float | None = None) -> Iterator[None]:
    """Bound the seconds every retry inside this block may wait, together: one step's budget,
    `STEP_RETRY_BUDGET` at most, less when the step has less time left (`seconds`). Worker
    threads share it when they run in a copy of the context (`contextvars.copy_context`)."""
    limit = STEP_RETRY_BUDGET if seconds is None else max(0.0, min(seconds, STEP_RETRY_BUDGET))
    token = _BUDGET.set(_Budget(limit))
    try:
        yield
    finally:
        _BUDGET.reset(token)


class ReadOnlyViolation(KeyresponseError):
    """A write attempted by a client handed out in plan mode: a bug in an action's plan/preflight."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class RetryTransport(httpx.BaseTransport):
    """Retries as the module docstring says, and reads every body whole before returning it.
    It lets httpx's errors through (noting the attempts on the request): `Client`, the
    boundary around it, translates them."""

    def __init__(self, inner: httpx.BaseTransport, service: str, policy: RetryPolicy,
                 read_only: bool, sleep: Any = time.sleep, credential_env: str | None = None) -> None:
        self.credential_env = credential_env
        self.inner = inner
        self.service = service
        self.policy = policy
        self.read_only = read_only
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._handle(request)
        if self.credential_env:  # lets error_for name the env var behind a refused credential
            response.extensions["keyresponse.credential_env"] = self.credential_env
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        method = request.method.upper()
        if self.read_only and method not in READ_METHODS and not request.extensions.get("read_only_ok"):
            raise ReadOnlyViolation(
                f"{self.service}: refused {method} {request.url.path} in plan mode (read-only client)"
            )
        budget = _BUDGET.get()
        waited = 0.0
        attempt = 0
        while True:
            # what the boundary says if this attempt's error ends the exchange
            tries: dict[str, Any] = {"attempts": attempt + 1, "waited": round(waited, 2)}
            request.extensions["keyresponse_tries"] = tries
            try:
                response = _read_body(self.inner.handle_request(request))
            except RETRY_ANY_METHOD:
                # never reached the service: safe to retry whatever the method
                delay = self.policy.backoff(attempt)
                tries["reason"] = self._stop(attempt, waited, delay, budget)
                if tries["reason"]:
                    raise
            except RETRY_IDEMPOTENT:
                # sent, and the answer lost (maybe half way through its body): only an
                # idempotent request may be sent again; any other may have taken effect
                delay = self.policy.backoff(attempt)
                tries["reason"] = (self._stop(attempt, waited, delay, budget) if method in IDEMPOTENT
                                   else f"not retried: a {method} may have taken effect")
                if tries["reason"]:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                if method not in IDEMPOTENT and response.status_code != 429:
                    return response
                told = parse_retry_after(response.headers.get("retry-after"))
                delay = told if told is not None else self.policy.backoff(attempt)
                reason = self._stop(attempt, waited, delay, budget)
                if told is not None and told > self.policy.retry_after_cap:
                    reason = f"asked to wait {told:.0f} s, more than the {self.policy.retry_after_cap:.0f} s cap"
                if reason:
                    # the caller turns it into a ServiceError that carries the answer and this note
                    response.extensions["keyresponse_retries"] = {
                        "attempts": attempt + 1, "waited": round(waited, 2), "reason": reason}
                    return response
                response.close()
            attempt += 1
            waited += delay
            if budget is not None:
                budget.spend(delay)
            self.sleep(delay)

    def _stop(self, attempt: int, waited: float, delay: float, budget: _Budget | None) -> str:
        """Why not to retry again ('' = go on)."""
        if attempt + 1 >= self.policy.attempts:
            return "attempts used up"
        if waited + delay > self.policy.budget:
            return "request retry budget spent"
        if budget is not None and not budget.allows(delay):
            return "step retry budget spent"
        return ""

    def close(self) -> None:
        self.inner.close()


def _read_body(response: httpx.Response) -> httpx.Response:
    """The response with its whole body read (still encoded: the client decodes it), so
    that a connection cut mid-body fails inside the retry loop and the boundary."""
    if response.is_stream_consumed:  # built in memory (a mock transport): nothing to read
        return response
    try:
        body = b"".join(response.iter_raw())
    except BaseException:
        with contextlib.suppress(Exception):
            response.close()  # give the broken connection back to be discarded
        raise
    return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(body),
                          extensions=response.extensions)


@contextlib.contextmanager
def _exchange(service: str, method: str, path: str, request: httpx.Request | None) -> Iterator[None]:
    """The one boundary: any httpx error raised inside becomes `Unreachable` or `AnswerLost`."""
    try:
        yield
    except HTTPX_ERRORS as exc:
        raise _lost(service, method, path, request, exc) from None


def _lost(service: str, method: str, path: str, request: httpx.Request | None, exc: Exception) -> ServiceError:
    tries = (request.extensions.get("keyresponse_tries") if request is not None else None) or {}
    n, waited = int(tries.get("attempts", 1)), float(tries.get("waited", 0.0))
    text = (f"{service}: {method} {path}: {type(exc).__name__} after {n} attempt{'s' if n != 1 else ''} "
            f"({waited:.1f} s waiting): {REDACTOR.redact(str(exc)) or 'no answer'}")
    if tries.get("reason"):
        text += f"; {tries['reason']}"
    where = f"{request.url.scheme}://{request.url.host}" if request is not None else "the service"
    if isinstance(exc, NEVER_SENT):
        return Unreachable(text, service=service, method=method, path=path,
                           hint=f"check that {where} is reachable from here")
    if method.upper() in IDEMPOTENT:
        hint = f"the answer from {where} was lost or unreadable; `keyresponse resume` tries again"
    else:
        hint = f"the answer was lost: the {method} may have taken effect at {where}; check before doing it again"
    return AnswerLost(text, service=service, method=method, path=path, hint=hint)


class Client(httpx.Client):
    """An httpx.Client whose every exchange runs inside the one boundary (`_exchange`):
    building the request, sending it, the transport's retries, reading and decoding the
    body. No httpx error leaves it; the body is always read (even with ``stream=True``)."""

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        with _exchange(self.service, method.upper(), str(url), None):
            return super().build_request(method, url, **kwargs)

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with _exchange(self.service, request.method, request.url.path, request):
            response = super().send(request, **kwargs)
            try:
                response.read()  # decoding errors too are raised inside the boundary
            except BaseException:
                response.close()
                raise
            return response


def build_client(service: str, base_url: str, headers: dict[str, str] | None = None, *,
                 read_only: bool = False, policy: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0, max_connections: int = 64,
                 credential_env: str | None = None) -> Client:
    for name, value in (headers or {}).items():
        if name.lower() in CREDENTIAL_HEADERS:  # not Accept or API-version headers
            REDACTOR.add(value.split(" ", 1)[-1])
    inner = transport or httpx.HTTPTransport(verify=_ssl_context(base_url), limits=httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections))
    return Client(
        service=service,
        base_url=base_url.rstrip("/") + "/",
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=10.0),
        transport=RetryTransport(inner, service, policy or DEFAULT_POLICY, read_only,
                                 credential_env=credential_env),
        follow_redirects=False,
    )


_SSL: dict[bool, Any] = {}


def _ssl_context(base_url: str) -> Any:
    """One verifying TLS context per process (loading the CA bundle costs ~20 ms a client).
    A plain-http base URL (the loopback sandbox) gets a context that trusts no CA at all:
    the client never speaks TLS, and if it ever did, verification would fail closed."""
    import ssl

    tls = base_url.lower().startswith("https:")
    if tls not in _SSL:
        _SSL[tls] = httpx.create_ssl_context() if tls else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return _SSL[tls]


def error_for(response: httpx.Response, service: str, *, what: str = "",
              error_class: type[ServiceError] = ServiceError, hint: str | None = None) -> ServiceError:
    """A ServiceError that says method, path, status, the service's own code and
    message, and its request id — redacted."""
    code, message = _service_error(response)
    req = response.request
    request_id = response.headers.get("x-request-id") or response.headers.get("x-github-request-id")
    text = f"{service}: {req.method} {req.url.path} -> {response.status_code}"
    if what:
        text = f"{what}: {text}"
    if code:
        text += f" {code}"
    if message:
        text += f": {message}"
    if request_id:
        text += f" (request id {request_id})"
    retries = response.extensions.get("keyresponse_retries")
    if retries:
        n = retries["attempts"]
        text += f"; gave up after {n} attempt{'s' if n != 1 else ''} ({retries['waited']:.1f} s waiting): {retries['reason']}"
    return error_class(
        REDACTOR.redact(text), service=service, method=req.method, path=req.url.path,
        status=response.status_code, code=code, request_id=request_id, hint=hint or _hint(response.status_code, response.extensions.get("keyresponse.credential_env")),
    )


def check(response: httpx.Response, service: str, *, ok: Iterable[int] = (200, 201, 202, 204),
          what: str = "", error_class: type[ServiceError] = ServiceError) -> httpx.Response:
    if response.status_code not in set(ok):
        raise error_for(response, service, what=what, error_class=error_class)
    return response


def _service_error(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()[:200]
        return None, REDACTOR.redact(text) if text else None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # OpenAI
            return err.get("code") or err.get("type"), REDACTOR.redact(str(err.get("message") or ""))
        if isinstance(err, str):  # Slack, GitLab
            return err, REDACTOR.redact(str(body.get("error_description") or body.get("message") or ""))
        if "message" in body:  # GitHub, GitLab
            msg = body["message"]
            return None, REDACTOR.redact(msg if isinstance(msg, str) else str(msg))
    return None, None


def _hint(status: int, credential_env: str | None = None) -> str | None:
    if credential_env and status in (401, 403):
        problem = "was refused" if status == 401 else "lacks a permission this step needs"
        return f"the credential in ${credential_env} {problem}: set it to a valid one with the right access"
    return {
        401: "the credential was refused: check the env var the inventory names",
        403: "the credential lacks a permission this step needs",
        404: "not found, or the credential cannot see it",
        429: "rate limited after retries: wait and `keyresponse resume`",
    }.get(status, "the service failed; `keyresponse resume` retries the step" if status >= 500 else None)
