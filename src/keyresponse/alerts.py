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
import re
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
    p = Path(path)
    try:
        raw = p.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise UsageError(f"--from-alert {p}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(f"--from-alert {p}: larger than {MAX_BYTES >> 20} MiB")
    text = raw.decode("utf-8", "replace")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:  # JSON Lines (TruffleHog)
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise UsageError(f"--from-alert {p}: not JSON or JSON Lines (line {exc.lineno})") from None
    alerts = parse(data)
    if not alerts:
        raise UsageError(
            f"--from-alert {p}: no alert found in it",
            hint="supported: GitHub secret scanning, gitleaks, TruffleHog v3, GitGuardian, detect-secrets",
        )
    return alerts


def parse(data: Any) -> list[Alert]:
    items = data if isinstance(data, list) else [data]
    out: list[Alert] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        for test, parser in _PARSERS:
            if test(item):
                out.extend(parser(item))
                break
    if out and all(a.source == "github-locations" for a in out):
        merged = Alert("github", locations=[loc for a in out for loc in a.locations])
        return [merged]
    return out


def _value(raw: Any) -> Secret | None:
    if not isinstance(raw, str):
        return None
    value = raw.strip()
    placeholder = (
        len(value) < 8
        or "censored" in value.lower()
        or "redacted" in value.lower()
        or re.search(r"[X*•]{8,}", value) is not None  # GitHub's XXXX…-us2 examples, masks
    )
    return None if placeholder else Secret(value)


def _time(raw: Any) -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    candidates = [text, text.replace("Z", "+00:00")]
    for c in candidates:
        try:
            when = dt.datetime.fromisoformat(c)
            return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat()
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d %H:%M:%S %z %Z", "%Y-%m-%d %H:%M:%S %z", "%m-%d-%Y", "%Y-%m-%d %I:%M:%S %p"):
        try:
            when = dt.datetime.strptime(re.sub(r" [A-Z]{3,4}$", "", text) if "%Z" not in fmt else text, fmt)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return when.astimezone(dt.timezone.utc).isoformat()
    return None


def _repo_from_api_url(url: Any) -> str | None:
    m = re.search(r"/repos/([^/]+/[^/]+)/", url or "")
    return m.group(1) if m else None


def _github_webhook(d: dict[str, Any]) -> list[Alert]:
    alert, repo = d.get("alert") or {}, (d.get("repository") or {}).get("full_name")
    locations = []
    if isinstance(d.get("location"), dict):
        det = d["location"].get("details") or {}
        locations.append(Location(repo=repo, path=det.get("path"), line=det.get("start_line"),
                                  commit=det.get("commit_sha"), url=det.get("commit_url")))
    elif repo:
        locations.append(Location(repo=repo, url=(d.get("repository") or {}).get("html_url")))
    return [Alert("github", secret_type=alert.get("secret_type"), detected_at=_time(alert.get("created_at")),
                  secret=_value(alert.get("secret")), url=alert.get("html_url"), locations=locations)]


def _github_rest(d: dict[str, Any]) -> list[Alert]:
    repo = _repo_from_api_url(d.get("url"))
    locations = []
    first = d.get("first_location_detected") or {}
    if first:
        locations.append(Location(repo=repo, path=first.get("path"), line=first.get("start_line"),
                                  commit=first.get("commit_sha"), url=first.get("commit_url")))
    elif repo:
        locations.append(Location(repo=repo, url=d.get("html_url")))
    return [Alert("github", secret_type=d.get("secret_type"), secret=_value(d.get("secret")),
                  detected_at=_time(d.get("created_at")), url=d.get("html_url"), locations=locations)]


def _github_location(d: dict[str, Any]) -> list[Alert]:
    det = d.get("details") or {}
    url = det.get("commit_url") or next((v for k, v in det.items() if k.endswith("_url") and isinstance(v, str)), None)
    return [Alert("github-locations", locations=[Location(
        repo=_repo_from_api_url(url), path=det.get("path"), line=det.get("start_line"),
        commit=det.get("commit_sha"), url=url)])]


def _gitleaks(d: dict[str, Any]) -> list[Alert]:
    when = _time(d.get("Date"))
    return [Alert("gitleaks", secret_type=d.get("RuleID"), secret=_value(d.get("Secret")), leaked_at=when,
                  locations=[Location(path=d.get("File"), line=d.get("StartLine"), commit=d.get("Commit") or None,
                                      author=d.get("Email") or d.get("Author"), when=when, url=d.get("Link"))])]


def _trufflehog(d: dict[str, Any]) -> list[Alert]:
    data = (d.get("SourceMetadata") or {}).get("Data") or {}
    src: dict[str, Any] = next(iter(data.values()), {}) if data else {}
    when = _time(src.get("timestamp"))
    return [Alert("trufflehog", secret_type=d.get("DetectorName"), secret=_value(d.get("Raw")), leaked_at=when,
                  locations=[Location(repo=src.get("repository"), path=src.get("file"), line=src.get("line"),
                                      commit=src.get("commit"), author=src.get("email"), url=src.get("link"),
                                      when=when)])]


def _gg_incident(inc: dict[str, Any], occurrence: dict[str, Any] | None = None) -> Alert:
    det = inc.get("detector") or {}
    locations = []
    for occ in ([occurrence] if occurrence else []) + list(inc.get("occurrences") or []):
        source = occ.get("source") or {}
        locations.append(Location(repo=source.get("full_name"), path=occ.get("filepath"), commit=occ.get("sha"),
                                  url=occ.get("url"), author=occ.get("author_info"), when=_time(occ.get("date"))))
    return Alert("gitguardian", secret_type=det.get("name"), detected_at=_time(inc.get("date")),
                 url=inc.get("gitguardian_url"), locations=locations)


def _gg_occurrence(d: dict[str, Any]) -> list[Alert]:
    source = d.get("source") or {}
    line = next((m.get("post_line_start") for m in d.get("matches") or [] if m.get("post_line_start")), None)
    return [Alert("gitguardian", detected_at=_time(d.get("date")), locations=[Location(
        repo=source.get("full_name"), path=d.get("filepath"), line=line, commit=d.get("sha"),
        url=d.get("url"), author=d.get("author_info"), when=_time(d.get("date")))])]


def _gg_multiscan(d: dict[str, Any]) -> list[Alert]:
    out = []
    for pb in d.get("policy_breaks") or []:
        for m in pb.get("matches") or []:
            out.append(Alert("gitguardian", secret_type=pb.get("detector_name") or pb.get("type"),
                             secret=_value(m.get("match")), url=pb.get("incident_url") or None,
                             locations=[Location(line=m.get("line_start"))]))
    return out


def _gg_test_message(d: dict[str, Any]) -> list[Alert]:
    return [Alert("gitguardian", secret_type=d.get("type"), detected_at=_time(d.get("date")),
                  secret=_value(next((m.get("match") for m in d.get("matches") or []), None)),
                  url=d.get("gitguardian_link"), locations=[Location(url=d.get("break_url"))])]


def _detect_secrets(d: dict[str, Any]) -> list[Alert]:
    out = []
    for path, results in (d.get("results") or {}).items():
        for r in results:
            out.append(Alert("detect-secrets", secret_type=r.get("type"), detected_at=_time(d.get("generated_at")),
                             locations=[Location(path=r.get("filename") or path, line=r.get("line_number"))]))
    return out


_PARSERS: list[tuple[Any, Any]] = [
    (lambda d: "RuleID" in d and "File" in d, _gitleaks),
    (lambda d: "DetectorName" in d and "SourceMetadata" in d, _trufflehog),
    (lambda d: "alert" in d and "repository" in d, _github_webhook),
    (lambda d: "secret_type" in d and "number" in d, _github_rest),
    (lambda d: "type" in d and "details" in d and len(d) <= 3, _github_location),
    (lambda d: "incident" in d and "action" in d,
     lambda d: [_gg_incident(d["incident"], d.get("occurrence"))]),
    (lambda d: "detector" in d and "secret_hash" in d, lambda d: [_gg_incident(d)]),
    (lambda d: "filepath" in d and "matches" in d, _gg_occurrence),
    (lambda d: "policy_breaks" in d, _gg_multiscan),
    (lambda d: "break_url" in d and "matches" in d, _gg_test_message),
    (lambda d: "results" in d and "plugins_used" in d, _detect_secrets),
]
