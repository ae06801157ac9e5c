"""The Target protocol, what a target module exports (`TargetKind`), the state targets
of one step share, and `build_targets`.

A target is one place a key lives. The fan-out in actions/targets.py drives each
through write -> verify (-> restart) on a bounded pool of threads; what the
targets of one step share (per-host gates, the GitHub public-key cache) lives in
`Shared`, built once per `build_targets` call. The kinds are listed in
targets/__init__.py; their settings models are the inventory's.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from keyresponse.action import Check, StepContext
    from keyresponse.inventory import KeyEntry, PlatformSettings, TargetSettings
    from keyresponse.secret import Secret

T = TypeVar("T")
R = TypeVar("R")

MAX_PAUSE = 60.0  # longest a rate-limit pause may hold a host before we give up


class Target(Protocol):
    """One place a key lives, ready to act on (built from its settings by `from_config`).

    identity     kind|platform|locator: stable across runs and one per place, what the
                 journal, the outputs and key.retire key a target by (two platforms
                 can hold a secret of the same repo and name: the description is for people)
    describe()   one line naming the place ("GitHub secret acme/api:OPENAI_API_KEY")
    preflight()  read-only; one Check per problem (each with a one-line fix), or one
                 ok Check; never raises for a problem it can describe
    write(s)     put the value there; returns a short note for the journal (never
                 the value) or None; raises TargetError/ServiceError
    verify(s)    True if the target proves it holds the value, False if it cannot
                 tell; raises TargetError when it holds something else
    restart()    make consumers pick the value up: True if done (or a link to what it
                 started, such as a workflow run's page), None if the target has no
                 restart configured
    """

    kind: ClassVar[str]
    identity: str
    restart_what: str | None  # what restart() would do, for plans; None: nothing

    def describe(self) -> str: ...
    def preflight(self) -> list[Check]: ...
    def write(self, secret: Secret) -> str | None: ...
    def verify(self, secret: Secret) -> bool: ...
    def restart(self) -> bool | str | None: ...


class TargetKind(Protocol):
    """What a target module exports; targets/__init__.py lists the modules."""

    kind: str
    Settings: type[TargetSettings]

    def from_config(self, settings: TargetSettings, env: TargetEnv) -> Target: ...


@dataclass(frozen=True)
class TargetEnv:
    """What `from_config` may build a target with. Nothing here calls out: clients and
    credentials are made on first use (`LazyClient`)."""

    ctx: StepContext
    shared: Shared
    platform_name: str | None = None  # the `platforms:` entry the settings name, if any
    platform: PlatformSettings | None = None

    @property
    def root(self) -> Path:
        """The inventory's folder: relative paths start here."""
        return self.ctx.inventory.root

    def credential_env_names(self) -> frozenset[str]:
        """Every env var the inventory names as holding a credential."""
        return frozenset(self.ctx.inventory.model.credential_env_names())


def identity(kind: str, where: str, locator: str) -> str:
    """A target's identity: its kind, its platform's address ("" for none) and where it is there."""
    return f"{kind}|{where}|{locator}"


def address(base_url: str) -> str:
    """A platform's base URL, normalized to be compared (scheme and host lower-case, no trailing /)."""
    parts = urlsplit(base_url if "://" in base_url else "https://" + base_url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def locator_problem(value: str, what: str, *, segments: int | None = 1, free: bool = False) -> str | None:
    """Why `value` cannot name a place in a platform's URL, or None. A locator becomes path
    segments of an API URL: `..` or `.` would climb out of it once the URL is normalized
    (`orgs/acme/../../repos/x` is `repos/x`), and a `/`, `?` or `#` would make it another
    path. `segments`: how many `/`-separated names it is (None: one or more); each is ASCII
    letters, digits, `_`, `.` and `-`. `free`: one name in any characters but `/`, a backslash
    and control characters (GitHub environment and workflow names, sent URL-encoded)."""
    if free:
        if not value.strip():
            return f"{what} is empty"
        if _CONTROL.search(value):
            return f"{what} {value!r} holds a control character"
        if "/" in value or "\\" in value:
            return f"{what} {value!r} holds a '/' or '\\': it would be read as a path"
        if value.strip(".") == "":
            return f"{what} {value!r} is a path step ('.' or '..'), not a name"
        return None
    parts = value.split("/")
    if segments is not None and len(parts) != segments:
        shape = "one name" if segments == 1 else " / ".join(["name"] * segments)
        return f"{what} {value!r} must be {shape} (letters, digits, '_', '.', '-')"
    for part in parts:
        if part in ("", ".", ".."):
            return f"{what} {value!r} has an empty, '.' or '..' part: it would leave its URL"
        if not _NAME.fullmatch(part):
            return f"{what} {value!r}: {part!r} may hold only ASCII letters, digits, '_', '.' and '-'"
    return None


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
        self._cache: dict[Hashable, object] = {}
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def gate(self, host: str) -> HostGate:
        with self._lock:
            if host not in self._gates:
                self._gates[host] = HostGate(self.per_host)
            return self._gates[host]

    def once(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()` at most once per key while it succeeds (concurrent callers wait)."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                self._cache[key] = make()
            return cast(T, self._cache[key])

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._cache.pop(key, None)


def fan_out(items: list[T], work: Callable[[T], R], bound: int,
            on_done: Callable[[int, R], None] | None = None) -> list[R]:
    """`work(item)` for every item, at most `bound` at once; results in input order.
    `work` must not raise (wrap failures in its result); `on_done` runs as each ends.
    Each runs in a copy of the caller's context, so the step's retry budget (a
    ContextVar, http.retry_budget) holds in the workers too."""
    if not items:
        return []
    done: dict[int, R] = {}
    workers = max(1, min(bound, len(items)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyresponse-target") as pool:
        # one copy per item: a Context can be entered by one thread at a time
        futures = {pool.submit(contextvars.copy_context().run, work, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            i = futures[future]
            done[i] = future.result()
            if on_done is not None:
                on_done(i, done[i])
    return [done[i] for i in range(len(items))]


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
    """The Target objects for every place the inventory says `key_entry` lives, each made
    by its kind's module. Nothing is called here: clients and credentials are resolved
    on first use."""
    from keyresponse import targets

    shared = shared or Shared(ctx.inventory.model.concurrency)
    platforms = ctx.inventory.model.platforms
    out: list[Target] = []
    seen: dict[str, int] = {}
    for i, settings in enumerate(key_entry.targets):
        name = settings.platform_name()
        env = TargetEnv(ctx, shared, name, platforms.get(name) if name is not None else None)
        target = targets.target_kind(settings.kind).from_config(settings, env)
        if target.identity in seen:
            # one identity, two entries: the journal could not tell which of them holds which key
            from keyresponse.errors import ConfigError

            raise ConfigError(f"keys.{ctx.key_name}.targets: #{seen[target.identity] + 1} and #{i + 1} are the "
                              f"same place ({target.describe()})", hint="remove one of them")
        seen[target.identity] = i
        out.append(target)
    return out


def select(targets: list[Target], only: Iterable[str | int] | None) -> list[Target]:
    """The targets `only:` names, by identity, by describe() text or by index; all when None."""
    if only is None:
        return list(targets)
    from keyresponse.errors import UsageError

    by_id = {t.identity: t for t in targets}
    by_name: dict[str, list[Target]] = {}
    for t in targets:
        by_name.setdefault(t.describe(), []).append(t)
    chosen: list[Target] = []
    for item in only:
        if isinstance(item, int) or item.isdigit():
            i = int(item)
            if not 0 <= i < len(targets):
                raise UsageError(f"with.only: no target #{i} (the key has {len(targets)})")
            t = targets[i]
        elif item in by_id:
            t = by_id[item]
        elif len(by_name.get(item, [])) == 1:
            t = by_name[item][0]
        elif item in by_name:
            raise UsageError(f"with.only: {item!r} describes {len(by_name[item])} targets",
                             hint="name one by its index or identity: " + "; ".join(
                                 f"#{targets.index(t)} {t.identity}" for t in by_name[item]))
        else:
            known = "; ".join(f"#{i} {t.describe()}" for i, t in enumerate(targets)) or "none"
            raise UsageError(f"with.only: no target {item!r}", hint=f"targets of this key: {known}")
        if t not in chosen:
            chosen.append(t)
    return chosen
