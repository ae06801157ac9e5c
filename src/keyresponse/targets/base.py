"""The Target protocol, the state targets of one step share, and `build_targets`.

A target is one place a key lives. The fan-out in actions/targets.py drives each
through write -> verify (-> restart) on a bounded pool of threads; what the
targets of one step share (per-host gates, the GitHub public-key cache) lives in
`Shared`, built once per `build_targets` call.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Protocol, TypeVar

if TYPE_CHECKING:
    import httpx

    from keyresponse.action import Check, StepContext
    from keyresponse.inventory import KeyEntry
    from keyresponse.secret import Secret

T = TypeVar("T")
R = TypeVar("R")

MAX_PAUSE = 60.0  # longest a rate-limit pause may hold a host before we give up


class Target(Protocol):
    """One place a key lives.

    describe()   one line naming the place ("GitHub secret acme/api:OPENAI_API_KEY")
    preflight()  read-only; one Check per problem (each with a one-line fix), or one
                 ok Check; never raises for a problem it can describe
    write(s)     put the value there; returns a short note for the journal (never
                 the value) or None; raises TargetError/ServiceError
    verify(s)    True if the target proves it holds the value, False if it cannot
                 tell; raises TargetError when it holds something else
    restart()    make consumers pick the value up: True if done, None if the target
                 has no restart configured
    """

    kind: ClassVar[str]
    restart_what: str | None  # what restart() would do, for plans; None: nothing

    def describe(self) -> str: ...
    def preflight(self) -> list[Check]: ...
    def write(self, secret: Secret) -> str | None: ...
    def verify(self, secret: Secret) -> bool: ...
    def restart(self) -> bool | None: ...


class HostGate:
    """Politeness towards one host: at most `limit` requests in flight, and a
    shared pause when the host says to back off (secondary rate limits)."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + min(seconds, MAX_PAUSE))

    def __enter__(self) -> HostGate:
        while True:
            with self._lock:
                wait = self._until - time.monotonic()
            if wait <= 0:
                break
            time.sleep(wait)
        self._slots.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


class Shared:
    """What the targets of one step share: host gates and caches (one run's worth)."""

    def __init__(self, bound: int = 16, per_host: int | None = None) -> None:
        self.bound = max(1, bound)
        self.per_host = max(1, per_host or self.bound)
        self._gates: dict[str, HostGate] = {}
        self._cache: dict[Any, Any] = {}
        self._key_locks: dict[Any, threading.Lock] = {}
        self._lock = threading.Lock()

    def gate(self, host: str) -> HostGate:
        with self._lock:
            if host not in self._gates:
                self._gates[host] = HostGate(self.per_host)
            return self._gates[host]

    def once(self, key: Any, make: Callable[[], T]) -> T:
        """`make()` at most once per key while it succeeds (concurrent callers wait)."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]  # type: ignore[no-any-return]

    def forget(self, key: Any) -> None:
        with self._lock:
            self._cache.pop(key, None)


def fan_out(items: list[T], work: Callable[[T], R], bound: int,
            on_done: Callable[[int, R], None] | None = None) -> list[R]:
    """`work(item)` for every item, at most `bound` at once; results in input order.
    `work` must not raise (wrap failures in its result); `on_done` runs as each ends."""
    results: list[Any] = [None] * len(items)
    if not items:
        return results
    workers = max(1, min(bound, len(items)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyresponse-target") as pool:
        futures = {pool.submit(work, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_done is not None:
                on_done(i, results[i])
    return results


class LazyClient:
    """An httpx client made on first use, so that a missing token becomes a preflight
    finding of the targets that need it rather than a crash of the whole plan."""

    def __init__(self, make: Callable[[], httpx.Client]) -> None:
        self._make = make
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __call__(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client


def build_targets(ctx: StepContext, key_entry: KeyEntry, shared: Shared | None = None) -> list[Target]:
    """The Target objects for every place the inventory says `key_entry` lives.
    Nothing is called here: clients and credentials are resolved on first use."""
    from keyresponse import inventory as inv

    shared = shared or Shared(ctx.inventory.model.concurrency)
    platforms = ctx.inventory.model.platforms
    out: list[Target] = []
    for cfg in key_entry.targets:
        if isinstance(cfg, inv.EnvFileTarget):
            from keyresponse.targets.envfile import EnvFile

            out.append(EnvFile(cfg, ctx.inventory.root))
        elif isinstance(cfg, inv.GitHubTarget):
            from keyresponse.targets.github import GitHubSecret, github_client

            gh = platforms[cfg.platform]
            out.append(GitHubSecret(cfg, LazyClient(_factory(ctx, github_client, cfg.platform, gh)),
                                    shared, host=gh.base_url))
        elif isinstance(cfg, inv.GitLabTarget):
            from keyresponse.targets.gitlab import GitLabVariable, gitlab_client

            gl = platforms[cfg.platform]
            out.append(GitLabVariable(cfg, LazyClient(_factory(ctx, gitlab_client, cfg.platform, gl)),
                                      shared, host=gl.base_url))
        elif isinstance(cfg, inv.CommandTarget):
            from keyresponse.targets.command import Command

            out.append(Command(cfg, ctx.inventory.root))
        else:  # pragma: no cover - the inventory model admits no other kind
            raise TypeError(f"unknown target kind {type(cfg).__name__}")
    return out


def _factory(ctx: StepContext, make: Callable[..., httpx.Client], name: str, platform: Any) -> Callable[[], httpx.Client]:
    return lambda: make(ctx, name, platform)


def select(targets: list[Target], only: Iterable[str | int] | None) -> list[Target]:
    """The targets `only:` names, by describe() text or index; all when None."""
    if only is None:
        return list(targets)
    from keyresponse.errors import UsageError

    names = {t.describe(): t for t in targets}
    chosen: list[Target] = []
    for item in only:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            i = int(item)
            if not 0 <= i < len(targets):
                raise UsageError(f"with.only: no target #{i} (the key has {len(targets)})")
            t = targets[i]
        elif item in names:
            t = names[item]
        else:
            known = "; ".join(f"#{i} {t.describe()}" for i, t in enumerate(targets)) or "none"
            raise UsageError(f"with.only: no target {item!r}", hint=f"targets of this key: {known}")
        if t not in chosen:
            chosen.append(t)
    return chosen
