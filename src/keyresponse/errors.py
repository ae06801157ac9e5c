"""The errors keyresponse raises on purpose.

    KeyresponseError            message + optional hint; exit code 1
    ├── UsageError              bad flags, missing input; exit code 2
    ├── ConfigError             bad inventory or playbook (file:line:col); exit code 2
    │   └── SecretLeakRefused   a literal credential where an env var name belongs
    ├── LockedError             another run holds the key's lock
    ├── ExpressionError         a `${{ }}` expression that cannot be evaluated (expr.py)
    ├── ReadOnlyViolation       a write from a plan-mode client: a bug in a plan (http.py)
    └── StepError               a step failed (which step, what happened); `retryable`
        ├── ServiceError        an HTTP call failed: method, path, status, redacted answer
        │   ├── ProviderError   a provider's call failed (KeyNotFound, in providers/, below it)
        │   ├── Unreachable     the request never left (no connection): nothing changed; no status
        │   └── AnswerLost      sent, but no whole answer came back (timeout, reset, body cut
        │                       off or undecodable): a write may have taken effect; no status
        ├── TargetError         a target failed (which target, redacted answer)
        └── ApprovalRefused     a confirmation was declined or impossible (not retryable)

http.py raises every ServiceError of an HTTP exchange; no httpx exception leaves it.
Code that must know whether a write took effect treats a ServiceError without a
status (Unreachable or AnswerLost) as "maybe": it looks before doing it again.

Every message is redacted before it is shown (see secret.Redactor); still, code
that builds one never formats a secret value into it.
"""

from __future__ import annotations


class KeyresponseError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(KeyresponseError):
    exit_code = 2


class ConfigError(KeyresponseError):
    """A problem in a file the user wrote; names file, line and column."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file:
            where = file
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(where + message, hint=hint)
        self.file, self.line, self.column = file, line, column


class SecretLeakRefused(ConfigError):
    pass


class LockedError(KeyresponseError):
    pass


class StepError(KeyresponseError):
    """A step could not do its job. `retryable` lets the engine's `retries:` apply;
    `outputs`, when set, is what the step did before failing (kept in the journal)."""

    retryable = True
    outputs: dict[str, object] | None = None


class ServiceError(StepError):
    """An HTTP call failed. Carries method, path, status and the service's redacted answer."""

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.service, self.method, self.path = service, method, path
        self.status, self.code, self.request_id = status, code, request_id


class ProviderError(ServiceError):
    pass


class Unreachable(ServiceError):
    """The request provably never left (no connection could be made, or no request could be
    built): nothing was changed. `status` is None."""


class AnswerLost(ServiceError):
    """The request was sent (or may have been) and no whole answer came back: a timeout, a
    reset, a body cut off or one that cannot be decoded. A write may have taken effect, so
    the caller looks before doing it again. `status` is None."""


class TargetError(StepError):
    def __init__(self, target: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{target}: {message}", hint=hint)
        self.target = target


class ApprovalRefused(StepError):
    retryable = False


def interrupt_inside(exc: BaseException) -> bool:
    """Whether `exc` is, or was raised while handling, a KeyboardInterrupt (Ctrl-C, or
    SIGTERM, which the CLI turns into one). Python 3.11 wraps a signal that lands while a
    class is built (a descriptor's __set_name__) in a RuntimeError."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        if isinstance(inner, KeyboardInterrupt):
            return True
        seen.add(id(inner))
        inner = inner.__cause__ or inner.__context__
    return False
