"""Alert payloads an incident can start from (`--from-alert FILE`).

Reads what secret scanners publish — GitHub secret scanning (webhooks and REST),
gitleaks, TruffleHog v3, GitGuardian (API, webhooks, multiscan) and detect-secrets
baselines — into one shape: the secret value when the payload carries it, what
kind of secret it is, where it was found and when. Placeholders such as
``--censored--`` or ``XXXX…`` are not values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keyresponse.errors import UsageError
from keyresponse.secret import Secret

MAX_BYTES = 16 * 1024 * 1024


@dataclass
class Location:
    repo: str | None = None
    path: str | None = None
    line: int | None = None
    commit: str | None = None
    url: str | None = None
    author: str | None = None
    when: str | None = None


@dataclass
class Alert:
    source: str  # "github", "gitleaks", "trufflehog", "gitguardian", "detect-secrets"
    secret_type: str | None = None
    secret: Secret | None = None
    detected_at: str | None = None
    leaked_at: str | None = None
    url: str | None = None
    locations: list[Location] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The non-secret part, as journaled and shown in the report."""
        data = asdict(self)
        data["secret"] = self.secret.masked if self.secret else None
        return data


def load(path: str | Path) -> list[Alert]:
    """The alerts in a scanner's file, or a UsageError (exit 2) that names what is wrong
    with it: read at most MAX_BYTES of a regular file, never a FIFO or a device, with
    its values counted and its nesting bounded before anything is parsed, and every
    object the parsers read checked to be one."""
    p = Path(path)
    text = _read(p)
    data = _decode(p, text)
    try:
        alerts = parse(data, jsonl=isinstance(data, _Lines))
    except _Shape as exc:
        raise UsageError(f"--from-alert {p}: {exc}",
                         hint="pass the payload exactly as the scanner published it") from None
    if not alerts:
        raise UsageError(f"--from-alert {p}: no alert found in it", hint=_SUPPORTED)
    return alerts


class PayloadError(Exception):
    """What is wrong with a payload received whole (a webhook body): `reason` is `invalid_json`
    (not JSON or JSON Lines, too many values, nested too deep), `bad_shape` or `no_alert`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode(text: str) -> Any:
    """A payload's JSON (or JSON Lines), within the bounds `load` applies to a file."""
    try:
        return _decode(Path("payload"), text)
    except UsageError as exc:
        raise PayloadError("invalid_json", str(exc).removeprefix("--from-alert payload: ")) from None


def from_data(data: Any) -> list[Alert]:
    """The alerts in what `decode` returned; at least one, or PayloadError."""
    try:
        found = parse(data, jsonl=isinstance(data, _Lines))
    except _Shape as exc:
        raise PayloadError("bad_shape", str(exc)) from None
    if not found:
        raise PayloadError("no_alert", "no alert found in the payload: " + _SUPPORTED)
    return found


_SUPPORTED = "supported: GitHub secret scanning, gitleaks, TruffleHog v3, GitGuardian, detect-secrets"
MAX_VALUES = 500_000  # a parsed value costs up to ~120 bytes: this keeps a parse under ~60 MB
MAX_DEPTH = 64  # the deepest published payload nests 6 levels
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket"}


def _not_regular(p: Path, mode: int) -> UsageError:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
    return UsageError(f"--from-alert {p}: not a regular file ({kind})", hint="save the alert to a file and pass that")


def _read(p: Path) -> str:
    """At most MAX_BYTES of a regular file. Checked before opening (a device is never
    opened) and again on the open descriptor; O_NONBLOCK so a FIFO swapped in between
    cannot block the open."""
    try:
        before = os.stat(p)
        if not stat.S_ISREG(before.st_mode):
            raise _not_regular(p, before.st_mode)
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"--from-alert {p}: cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(p, st.st_mode)
        if st.st_size > MAX_BYTES:
            raise UsageError(f"--from-alert {p}: larger than {MAX_BYTES >> 20} MiB ({st.st_size >> 20} MiB)")
        chunks, size = [], 0
        while size <= MAX_BYTES:  # the size may have grown since fstat: never read past the limit
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UsageError(f"--from-alert {p}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise UsageError(f"--from-alert {p}: larger than {MAX_BYTES >> 20} MiB")
    return b"".join(chunks).decode("utf-8", "replace")


class _Lines(list[Any]):
    """JSON Lines: one document per line (TruffleHog)."""


def _decode(p: Path, text: str) -> Any:
    # Every value but the outermost follows one of these: an upper bound on what parsing
    # would build, counted at C speed before it builds anything.
    values = sum(text.count(c) for c in "[{,:")
    if values > MAX_VALUES:
        raise UsageError(f"--from-alert {p}: more than {MAX_VALUES} values: not an alert",
                         hint="pass the one finding that leaked the key")
    try:
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError:
            try:  # JSON Lines (TruffleHog)
                data = _Lines(json.loads(line) for line in text.splitlines() if line.strip())
            except json.JSONDecodeError as exc:
                raise UsageError(f"--from-alert {p}: not JSON or JSON Lines (line {exc.lineno})") from None
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_DEPTH:
        raise UsageError(f"--from-alert {p}: nested more than {MAX_DEPTH} levels deep: not an alert")
    return data


def _depth(data: Any) -> int:
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return depth
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


class _Shape(Exception):
    """A value of the wrong type where a parser reads: `$.alert: expected an object, got a string`."""

    def __init__(self, where: str, expected: str, got: Any) -> None:
        super().__init__(f"{where}: expected {expected}, got {_kind(got)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "null"


class _Obj:
    """A JSON object and where it sits, so that a wrong type names its field."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{self.where}[{key!r}]"

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def obj(self, key: str) -> _Obj:
        value = self.data.get(key)
        if value is None:
            return _Obj({}, self.at(key))
        if not isinstance(value, dict):
            raise _Shape(self.at(key), "an object", value)
        return _Obj(value, self.at(key))

    def objs(self, key: str) -> list[_Obj]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _Shape(self.at(key), "an array", value)
        return [_as_obj(v, f"{self.at(key)}[{i}]") for i, v in enumerate(value)]

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise _Shape(self.at(key), "a string", value)
        return value

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _Shape(self.at(key), "an integer", value)
        return value

    def __bool__(self) -> bool:
        return bool(self.data)


def _as_obj(value: Any, where: str) -> _Obj:
    if not isinstance(value, dict):
        raise _Shape(where, "an object", value)
    return _Obj(value, where)


def parse(data: Any, *, jsonl: bool = False) -> list[Alert]:
    """Alerts from a parsed payload; raises _Shape for a wrong type where a parser reads."""
    items = data if isinstance(data, list) else [data]
    out: list[Alert] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        node = _Obj(item, f"line {i + 1}: $" if jsonl else f"$[{i}]" if isinstance(data, list) else "$")
        for test, parser in _PARSERS:
            if test(item):
                out.extend(parser(node))
                break
    if out and all(a.source == "github-locations" for a in out):
        merged = Alert("github", locations=[loc for a in out for loc in a.locations])
        return [merged]
    return out


def _value(raw: str | None) -> Secret | None:
    if raw is None:
        return None
    value = raw.strip()
    placeholder = (
        len(value) < 8
        or "censored" in value.lower()
        or "redacted" in value.lower()
        or re.search(r"[X*•]{8,}", value) is not None  # GitHub's XXXX…-us2 examples, masks
    )
    return None if placeholder else Secret(value)


def _time(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    candidates = [text, text.replace("Z", "+00:00")]
    for c in candidates:
        try:
            when = dt.datetime.fromisoformat(c)
            return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d %H:%M:%S %z %Z", "%Y-%m-%d %H:%M:%S %z", "%m-%d-%Y", "%Y-%m-%d %I:%M:%S %p"):
        try:
            when = dt.datetime.strptime(re.sub(r" [A-Z]{3,4}$", "", text) if "%Z" not in fmt else text, fmt)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        try:
            return when.astimezone(dt.UTC).isoformat()
        except (OverflowError, ValueError):  # year 1 minus an offset
            return None
    return None


def _repo_from_api_url(url: str | None) -> str | None:
    m = re.search(r"/repos/([^/]+/[^/]+)/", url or "")
    return m.group(1) if m else None


def _github_webhook(d: _Obj) -> list[Alert]:
    alert, repository = d.obj("alert"), d.obj("repository")
    repo = repository.text("full_name")
    locations = []
    if "location" in d and d.data["location"] is not None:
        det = d.obj("location").obj("details")
        locations.append(Location(repo=repo, path=det.text("path"), line=det.integer("start_line"),
                                  commit=det.text("commit_sha"), url=det.text("commit_url")))
    elif repo:
        locations.append(Location(repo=repo, url=repository.text("html_url")))
    return [Alert("github", secret_type=alert.text("secret_type"), detected_at=_time(alert.text("created_at")),
                  secret=_value(alert.text("secret")), url=alert.text("html_url"), locations=locations)]


def _github_rest(d: _Obj) -> list[Alert]:
    repo = _repo_from_api_url(d.text("url"))
    locations = []
    first = d.obj("first_location_detected")
    if first:
        locations.append(Location(repo=repo, path=first.text("path"), line=first.integer("start_line"),
                                  commit=first.text("commit_sha"), url=first.text("commit_url")))
    elif repo:
        locations.append(Location(repo=repo, url=d.text("html_url")))
    return [Alert("github", secret_type=d.text("secret_type"), secret=_value(d.text("secret")),
                  detected_at=_time(d.text("created_at")), url=d.text("html_url"), locations=locations)]


def _github_location(d: _Obj) -> list[Alert]:
    det = d.obj("details")
    url = det.text("commit_url") or next((v for k, v in det.data.items() if k.endswith("_url") and isinstance(v, str)),
                                        None)
    return [Alert("github-locations", locations=[Location(
        repo=_repo_from_api_url(url), path=det.text("path"), line=det.integer("start_line"),
        commit=det.text("commit_sha"), url=url)])]


def _gitleaks(d: _Obj) -> list[Alert]:
    when = _time(d.text("Date"))
    return [Alert("gitleaks", secret_type=d.text("RuleID"), secret=_value(d.text("Secret")), leaked_at=when,
                  locations=[Location(path=d.text("File"), line=d.integer("StartLine"), commit=d.text("Commit") or None,
                                      author=d.text("Email") or d.text("Author"), when=when, url=d.text("Link"))])]


def _trufflehog(d: _Obj) -> list[Alert]:
    data = d.obj("SourceMetadata").obj("Data")
    src = data.obj(next(iter(data.data))) if data else data  # one source kind: Git, Github, Filesystem…
    when = _time(src.text("timestamp"))
    return [Alert("trufflehog", secret_type=d.text("DetectorName"), secret=_value(d.text("Raw")), leaked_at=when,
                  locations=[Location(repo=src.text("repository"), path=src.text("file"), line=src.integer("line"),
                                      commit=src.text("commit"), author=src.text("email"), url=src.text("link"),
                                      when=when)])]


def _gg_incident(inc: _Obj, occurrence: _Obj | None = None) -> Alert:
    det = inc.obj("detector")
    locations = []
    for occ in ([occurrence] if occurrence else []) + inc.objs("occurrences"):
        source = occ.obj("source")
        locations.append(Location(repo=source.text("full_name"), path=occ.text("filepath"), commit=occ.text("sha"),
                                  url=occ.text("url"), author=occ.text("author_info"), when=_time(occ.text("date"))))
    return Alert("gitguardian", secret_type=det.text("name"), detected_at=_time(inc.text("date")),
                 url=inc.text("gitguardian_url"), locations=locations)


def _gg_webhook(d: _Obj) -> list[Alert]:
    return [_gg_incident(d.obj("incident"), d.obj("occurrence"))]


def _gg_occurrence(d: _Obj) -> list[Alert]:
    source = d.obj("source")
    line = next((m.integer("post_line_start") for m in d.objs("matches") if m.integer("post_line_start")), None)
    return [Alert("gitguardian", detected_at=_time(d.text("date")), locations=[Location(
        repo=source.text("full_name"), path=d.text("filepath"), line=line, commit=d.text("sha"),
        url=d.text("url"), author=d.text("author_info"), when=_time(d.text("date")))])]


def _gg_multiscan(d: _Obj) -> list[Alert]:
    out = []
    for pb in d.objs("policy_breaks"):
        for m in pb.objs("matches"):
            out.append(Alert("gitguardian", secret_type=pb.text("detector_name") or pb.text("type"),
                             secret=_value(m.text("match")), url=pb.text("incident_url") or None,
                             locations=[Location(line=m.integer("line_start"))]))
    return out


def _gg_test_message(d: _Obj) -> list[Alert]:
    return [Alert("gitguardian", secret_type=d.text("type"), detected_at=_time(d.text("date")),
                  secret=_value(next((m.text("match") for m in d.objs("matches")), None)),
                  url=d.text("gitguardian_link"), locations=[Location(url=d.text("break_url"))])]


def _detect_secrets(d: _Obj) -> list[Alert]:
    out = []
    results = d.obj("results")
    for path in results.data:
        for r in results.objs(path):
            out.append(Alert("detect-secrets", secret_type=r.text("type"), detected_at=_time(d.text("generated_at")),
                             locations=[Location(path=r.text("filename") or path, line=r.integer("line_number"))]))
    return out


_PARSERS: list[tuple[Any, Any]] = [
    (lambda d: "RuleID" in d and "File" in d, _gitleaks),
    (lambda d: "DetectorName" in d and "SourceMetadata" in d, _trufflehog),
    (lambda d: "alert" in d and "repository" in d, _github_webhook),
    (lambda d: "secret_type" in d and "number" in d, _github_rest),
    (lambda d: "type" in d and "details" in d and len(d) <= 3, _github_location),
    (lambda d: "incident" in d and "action" in d, _gg_webhook),
    (lambda d: "detector" in d and "secret_hash" in d, lambda d: [_gg_incident(d)]),
    (lambda d: "filepath" in d and "matches" in d, _gg_occurrence),
    (lambda d: "policy_breaks" in d, _gg_multiscan),
    (lambda d: "break_url" in d and "matches" in d, _gg_test_message),
    (lambda d: "results" in d and "plugins_used" in d, _detect_secrets),
]
