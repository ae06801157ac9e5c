"""The errors keyresponse raises on purpose.

    KeyresponseError            message + optional hint; exit code 1
    ├── UsageError              bad flags, missing input; exit code 2
    ├── ConfigError             bad inventory or playbook (file:line:col); exit code 2
    ├── SecretLeakRefused       a literal credential where an env var name belongs; exit 2
    ├── LockedError             another run holds the key's lock; exit 1
    ├── StepError               a step failed (which step, what happened)
    │   ├── ProviderError       a provider call failed (service, status, redacted answer)
    │   ├── TargetError         a target failed (which target, redacted answer)
    │   └── ApprovalRefused     a confirmation was declined or impossible
    └── ServiceError            an HTTP call failed after retries (raised by http.py)

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


class TargetError(StepError):
    def __init__(self, target: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{target}: {message}", hint=hint)
        self.target = target


class ApprovalRefused(StepError):
    retryable = False
