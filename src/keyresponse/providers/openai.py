"""OpenAI as a key issuer, over the organization (admin) API: its inventory settings,
the shape of its keys, and the client.

Wire contract: tests/specs/openai-admin.openapi.yaml. Facts the spec leaves
out (specs/README.md): a revoked or unknown key gets 401 `invalid_api_key`, a live
key missing a scope gets 401 with `code: null` (not dead). `DELETE .../api_keys/{id}`
deletes one key, a service account's too, leaving the account and its other keys
(the current API reference); older API versions answered 400 for a service
account's key, and there the only way to revoke it is to delete the account, with
every sibling key it holds: `revoke` does that only when no sibling would die, or
when the inventory says they may (`revoke: {sibling_keys: revoke}`).
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field

from keyresponse.errors import AnswerLost, ProviderError, ServiceError
from keyresponse.fields import KeyPattern, credential_env
from keyresponse.providers import openai_resources, openai_usage
from keyresponse.providers.base import (
    AuditEvent,
    CannotRevoke,
    GoneKey,
    IssuedKey,
    IssueSpec,
    KeyNotFound,
    KeyRecord,
    Minted,
    MinuteUsage,
    OwnerType,
    ProbeResult,
    RevokePlan,
    RevokeResult,
    SiblingPolicy,
    SiblingsWouldDie,
    StoredResource,
    UsagePoint,
    iso,
)
from keyresponse.providers.settings import ProviderSettings
from keyresponse.secret import Secret

if TYPE_CHECKING:
    import httpx

    from keyresponse.providers.base import HttpFactory

KIND = "openai"
SERVICE = "openai"
PAGE = 100  # the list endpoints' maximum `limit`
FANOUT = 8  # projects read at once
T = TypeVar("T")

KEY_PATTERNS = (
    KeyPattern("OpenAI key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), "OPENAI_ADMIN_KEY"),
)


class OpenAISettings(ProviderSettings):
    """`providers: {NAME: {kind: openai, ...}}` in the inventory."""

    kind: Literal["openai"] = "openai"
    base_url: str = Field("https://api.openai.com/v1", description="API base URL, up to /v1")
    admin_key_env: str = credential_env("Env var holding an OpenAI admin API key")
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per 1M input/output tokens by model, overriding the built-in table",
    )


Settings = OpenAISettings


def connect(settings: ProviderSettings, token: str, http: HttpFactory) -> OpenAIClient:
    assert isinstance(settings, OpenAISettings)
    base = settings.base_url
    return OpenAIClient(http(SERVICE, base, {"Authorization": f"Bearer {token}"}), prices=settings.prices,
                        key_client=lambda secret: http("openai-probe", base, {"Authorization": "Bearer " + secret.reveal()}),
                        mint_settle=settings.mint_settle)


def _check(response: httpx.Response, *, ok: tuple[int, ...] = (200,), what: str = "") -> httpx.Response:
    from keyresponse.http import check

    return check(response, SERVICE, ok=ok, what=what, error_class=ProviderError)


def _decoded(response: httpx.Response, *, ok: tuple[int, ...] = (200,), what: str = "") -> dict[str, Any]:
    """The JSON object of a successful answer. One that cannot be read (not JSON, not an
    object) came from a call that took effect: its outcome is unknown, like a lost answer,
    so the caller looks before trying again."""
    _check(response, ok=ok, what=what)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        request = response.request
        raise AnswerLost(f"openai: {what or request.method}: the {response.status_code} answer's body is not a JSON "
                         "object; the call may have taken effect", service=SERVICE, method=request.method,
                         path=request.url.path)
    return body


def _retried_404(response: httpx.Response) -> bool:
    """A 404 to a DELETE that was sent more than once: an earlier attempt, whose answer was
    lost, most likely did the deleting (the 404 is our own revoke, not an earlier one)."""
    if response.status_code != 404:
        return False
    tries = response.request.extensions.get("keyresponse_tries") or {}
    return int(tries.get("attempts") or 1) > 1


def _deleted(response: httpx.Response, what: str) -> bool:
    """A DELETE's answer: True if it deleted now, False if the object was already gone."""
    if _retried_404(response):
        return True
    if response.status_code == 404:
        return False
    _check(response, what=what)
    return True


def _not_found(message: str, *, candidates: list[KeyRecord] | None = None, hint: str | None = None) -> KeyNotFound:
    return KeyNotFound(message, service=SERVICE, candidates=candidates, hint=hint)


class OpenAIClient:
    """The `Provider` for OpenAI, on an admin-authenticated client; `key_client(secret)`
    gives a client authenticated by a key under test (for `probe`)."""

    service = SERVICE
    title = "OpenAI"

    def __init__(self, client: httpx.Client, prices: dict[str, tuple[float, float]] | None = None, *,
                 key_client: Callable[[Secret], httpx.Client] | None = None, mint_settle: float = 60.0) -> None:
        self.client = client
        self.prices: dict[str, tuple[float, float]] = {
            **openai_usage.DEFAULT_PRICES, **{k: (float(v[0]), float(v[1])) for k, v in (prices or {}).items()}}
        self.key_client = key_client
        self.mint_settle = mint_settle

    # --- plumbing

    def get(self, path: str, params: Any = None, *, what: str = "") -> dict[str, Any]:
        response = self.client.get(path, params=params)
        body: dict[str, Any] = _check(response, what=what).json()
        return body

    def pages(self, path: str, params: dict[str, Any] | None = None, *, what: str = "") -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paged list (`limit`/`after`/`has_more`/`last_id`)."""
        after: str | None = None
        while True:
            query = {"limit": PAGE, **(params or {})}
            if after:
                query["after"] = after
            body = self.get(path, query, what=what)
            data = body.get("data") or []
            yield from data
            following = body.get("last_id") or (data[-1].get("id") if data else None)
            if not body.get("has_more") or not following or following == after:
                return
            after = following

    def fan_out(self, fn: Callable[[str], T], items: list[str]) -> list[T]:
        """`fn` over items, a few at once; each worker sees this context (the step's retry budget)."""
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(FANOUT, len(items)), thread_name_prefix="openai") as pool:
            futures = [pool.submit(contextvars.copy_context().run, fn, i) for i in items]
            return [f.result() for f in futures]

    # --- reading keys

    def preflight(self) -> str:
        body = self.get("organization/projects", {"limit": 1}, what="check the admin key")
        return f"admin key accepted ({'projects visible' if body.get('data') else 'no projects visible'})"

    def projects(self) -> list[str]:
        return list(self.project_names())

    def project_names(self) -> dict[str, str]:
        return {p["id"]: p.get("name") or "" for p in self.pages("organization/projects", what="list projects")}

    def list_keys(self, project_id: str | None = None) -> list[KeyRecord]:
        projects = [project_id] if project_id else self.projects()
        return [k for keys in self.fan_out(self._project_keys, projects) for k in keys]

    def _project_keys(self, project_id: str) -> list[KeyRecord]:
        # `any`: without it the listing may hide keys whose owner lost project access,
        # and a leaked key of a departed engineer is exactly the one we look for
        items = self.pages(f"organization/projects/{project_id}/api_keys", {"owner_project_access": "any"},
                           what=f"list keys of {project_id}")
        return [_record(project_id, raw) for raw in items]

    def get_key(self, project_id: str, key_id: str) -> KeyRecord | None:
        response = self.client.get(f"organization/projects/{project_id}/api_keys/{key_id}")
        if response.status_code == 404:
            return None
        _check(response, what=f"read key {key_id}")
        return _record(project_id, response.json())

    def find(self, *, key_id: str | None = None, project_id: str | None = None,
             value: Secret | None = None) -> KeyRecord:
        if key_id:
            projects = [project_id] if project_id else self.projects()
            hits = [r for r in self.fan_out(lambda p: self.get_key(p, key_id), projects) if r]
            if not hits:
                where = project_id or f"any of {len(projects)} projects"
                raise _not_found(f"no key {key_id} in {where}",
                                  hint="it may be deleted already; `keyresponse keys` lists the keys that exist")
            return hits[0]
        if value is None:
            raise _not_found("nothing to find the key by: give a key id or the leaked value")
        every = self.list_keys(project_id)
        hits = [r for r in every if r.matches(value.reveal())]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            tail = value.reveal()[-4:]
            near = [r for r in every if r.redacted_value.endswith(tail)]
            raise _not_found(
                f"no key among {len(every)} listed matches the leaked value {value.masked}"
                + (": candidates ending alike: " + "; ".join(r.describe() for r in near) if near else ""),
                candidates=near,
                hint="it may be deleted or disabled already (check the audit log), or belong to another "
                     "organization; `keyresponse keys` lists every key the admin key can see",
            )
        raise _not_found(
            f"{len(hits)} keys match the leaked value {value.masked}; refusing to guess: "
            + "; ".join(r.describe() for r in hits),
            candidates=hits,
            hint="name the key exactly: `with: {key_id: key_...}` or `key_id:` in the inventory",
        )

    # --- changing keys

    def revoke_call(self, key: KeyRecord) -> str:
        call = f"DELETE /organization/projects/{key.project_id}/api_keys/{key.key_id}"
        if key.owner_type == "service_account":
            call += (f" (where OpenAI refuses to delete a service account's key alone: DELETE its service account "
                     f"{key.owner_id or '?'}, only if it holds no other live key)")
        return call

    def revoke_plan(self, key: KeyRecord, *, listed: list[KeyRecord] | None = None) -> RevokePlan:
        calls = [f"DELETE /organization/projects/{key.project_id}/api_keys/{key.key_id}"]
        if key.owner_type != "service_account" or key.gone:
            return RevokePlan(key, calls)
        owner = key.owner_id or getattr(self.get_key(key.project_id, key.key_id), "owner_id", "")
        calls.append(f"DELETE /organization/projects/{key.project_id}/service_accounts/{owner or '?'}")
        # the listing the caller made early (key.revoke's prefetch, beside the lookup) spares
        # a round trip on the way to the revoke
        siblings = _siblings_in(listed, owner, key.key_id) if listed is not None \
            else self._siblings(key.project_id, owner, key.key_id)
        return RevokePlan(key, calls, account=owner or None, siblings=siblings)

    def _siblings(self, project_id: str, account: str, key_id: str) -> list[KeyRecord]:
        if not account:
            return []
        return _siblings_in(self._project_keys(project_id), account, key_id)

    def revoke(self, key: KeyRecord, *, siblings: SiblingPolicy = "ask") -> RevokeResult:
        path = f"organization/projects/{key.project_id}/api_keys/{key.key_id}"
        response = self.client.delete(path)
        if _retried_404(response):
            return RevokeResult("DELETE /" + path, already_gone=False, revoked_at=iso(time.time()))
        if response.status_code == 400:
            # an older API refuses this for a service account's key: the account must go with it
            fresh = self.get_key(key.project_id, key.key_id)
            if fresh is None:
                return RevokeResult("DELETE /" + path, already_gone=True, revoked_at=None)
            if fresh.owner_type == "service_account":
                return self._delete_with_account(fresh, siblings)
        if response.status_code == 404:
            return RevokeResult("DELETE /" + path, already_gone=True, revoked_at=None)
        _check(response, what=f"revoke {key.key_id}")
        return RevokeResult("DELETE /" + path, already_gone=False, revoked_at=iso(time.time()))

    def _delete_with_account(self, key: KeyRecord, policy: SiblingPolicy) -> RevokeResult:
        owner = key.owner_id
        others = self._siblings(key.project_id, owner, key.key_id)
        if others and policy != "revoke":
            names = "; ".join(o.describe() for o in others)
            raise SiblingsWouldDie(
                f"openai: {key.key_id} cannot be deleted alone (this API deletes a service account's key only "
                f"with the account), and service account {owner} holds {len(others)} other live key(s) that "
                f"would die with it: {names}",
                service=SERVICE, siblings=others, account=owner,
                hint="set `revoke: {sibling_keys: revoke}` on the key in the inventory to take them down too "
                     "(then redeploy them), or delete the key in the OpenAI dashboard; then `keyresponse resume`",
            )
        path = f"organization/projects/{key.project_id}/service_accounts/{owner}"
        gone = not self.delete_service_account(key.project_id, owner, what=f"revoke {key.key_id}")
        return RevokeResult("DELETE /" + path, already_gone=gone, revoked_at=None if gone else iso(time.time()),
                            deleted_account=owner, also_revoked=[o.key_id for o in others])

    def delete_service_account(self, project_id: str, service_account_id: str, *, what: str = "") -> bool:
        """True if deleted now, False if it was already gone."""
        response = self.client.delete(f"organization/projects/{project_id}/service_accounts/{service_account_id}")
        return _deleted(response, what or f"delete {service_account_id}")

    def probe(self, secret: Secret) -> ProbeResult:
        from keyresponse.errors import ServiceError
        from keyresponse.http import error_for

        if self.key_client is None:
            raise ProviderError("openai: no client to try a key with", service=SERVICE)
        try:
            response = self.key_client(secret).get("models")
        except ServiceError as exc:
            return ProbeResult("unknown", exc.message)
        if response.status_code == 200:
            return ProbeResult("live", "GET /models -> 200", 200)
        err = error_for(response, SERVICE)
        detail = err.message
        if response.status_code == 401 and err.code == "invalid_api_key":
            return ProbeResult("dead", detail, 401)
        text = detail.lower()
        if response.status_code == 403 or (response.status_code == 401 and ("scope" in text or "permission" in text)):
            return ProbeResult("restricted", detail, response.status_code)
        return ProbeResult("unknown", detail, response.status_code)

    def probe_listing(self, key: KeyRecord) -> ProbeResult:
        found = self.get_key(key.project_id, key.key_id)
        if found is None:
            return ProbeResult("dead", f"{key.key_id} is no longer listed in {key.project_id}")
        if found.owner_type == "service_account" and found.owner_id:
            if not self.service_account_exists(key.project_id, found.owner_id):
                return ProbeResult("dead", f"{key.key_id}'s service account {found.owner_id} is deleted")
        return ProbeResult("live", f"{key.key_id} is still listed in {key.project_id}")

    def preflight_issue(self, project_id: str, service_account_id: str | None) -> str:
        what = "the admin key can create the replacement"
        if service_account_id:
            if not self.service_account_exists(project_id, service_account_id):
                raise _not_found(f"no service account {service_account_id} in {project_id}",
                                 hint="fix issue.service_account_id, or use issue.mode: service_account")
        else:
            self.get(f"organization/projects/{project_id}/service_accounts", {"limit": 1}, what=what)
        return f"project {project_id}"

    def issue_call(self, spec: IssueSpec) -> str:
        limits = (f", scopes {', '.join(spec.scopes)}" if spec.scopes else "") + \
                 (f", expiring in {spec.expires_in_seconds}s" if spec.expires_in_seconds else "")
        if spec.service_account_id:
            return (f"POST .../service_accounts/{spec.service_account_id}/api_keys in {spec.project_id} "
                    f"(a new key {spec.name}{limits})")
        return f"POST .../service_accounts in {spec.project_id}: new service account {spec.name} with key {spec.name}{limits}"

    def issue(self, spec: IssueSpec) -> IssuedKey:
        base = f"organization/projects/{spec.project_id}/service_accounts"
        wanted: dict[str, Any] = {"name": spec.name}
        if spec.scopes:
            wanted["scopes"] = list(spec.scopes)
        if spec.expires_in_seconds:
            wanted["expires_in_seconds"] = spec.expires_in_seconds
        account = spec.service_account_id
        if account:
            key = self._mint_key(base, account, wanted)
        else:
            # The account alone, then its key: only a key made on an account takes a name and
            # scopes (the one POST /service_accounts makes is unrestricted and named "Secret Key").
            response = self.client.post(base, json={"name": spec.name, "create_service_account_only": True})
            made = _decoded(response, ok=(200, 201), what="create the replacement's service account")
            if not made.get("id"):
                raise AnswerLost("openai: the new service account's answer carries no id; it may exist",
                                 service=SERVICE, method="POST", path=response.request.url.path)
            account = str(made["id"])
            try:
                _check(self.client.post(f"{base}/{account}", json={"role": "member"}), what="make it a project member")
                key = self._mint_key(base, account, wanted)
            except ServiceError:
                self._discard(spec.project_id, account)
                raise
        if not key.get("value"):
            raise ProviderError(f"openai: {spec.name}: the answer carried no key value", service=SERVICE)
        secret = Secret(key["value"])
        return IssuedKey(secret=secret, key_id=key.get("id", ""), service_account_id=account, name=spec.name,
                         project_id=spec.project_id, redacted_value=secret.masked, created_at=key.get("created_at"),
                         expires_at=key.get("expires_at"), scopes=spec.scopes)

    def _mint_key(self, base: str, account: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"{base}/{account}/api_keys", json=body)
        if response.status_code == 400 and "expires_in_seconds" not in body and "expir" in response.text.lower():
            from keyresponse.http import error_for

            raise ProviderError(f"openai: {error_for(response, SERVICE).message}", service=SERVICE, status=400,
                                hint="the organization's key policy requires an expiry: set "
                                     "`issue: {expires_in_seconds: N}` on the key in the inventory")
        return _decoded(response, ok=(200, 201), what="mint a key")

    def _discard(self, project_id: str, account: str) -> None:
        """Best effort: a half-made replacement account (find_minted finds it by name otherwise)."""
        try:
            self.delete_service_account(project_id, account, what="remove a half-made replacement")
        except ServiceError:
            pass

    def find_minted(self, project_id: str, names: Iterable[str], *, keys: bool = False) -> list[Minted]:
        """Service accounts (and with `keys`, keys) carrying one of `names`: what earlier
        mints left behind, whether or not we heard their answer."""
        wanted = set(names)
        found = [Minted(str(sa.get("name")), service_account_id=sa["id"])
                 for sa in self.list_service_accounts(project_id) if sa.get("name") in wanted]
        if keys:
            found += [Minted(k.name, key_id=k.key_id) for k in self._project_keys(project_id) if k.name in wanted]
        return found

    def service_account_exists(self, project_id: str, service_account_id: str) -> bool:
        response = self.client.get(f"organization/projects/{project_id}/service_accounts/{service_account_id}")
        if response.status_code == 404:
            return False
        _check(response, what=f"read {service_account_id}")
        return True

    def list_service_accounts(self, project_id: str) -> list[dict[str, Any]]:
        return list(self.pages(f"organization/projects/{project_id}/service_accounts", what="list service accounts"))

    def revoke_minted(self, project_id: str, service_account_id: str | None, key_id: str | None) -> bool:
        if service_account_id:
            return self.delete_service_account(project_id, service_account_id, what="revoke an orphan replacement")
        response = self.client.delete(f"organization/projects/{project_id}/api_keys/{key_id}")
        if response.status_code == 400:
            raise CannotRevoke(
                f"openai: {key_id} cannot be revoked alone (OpenAI deletes a service account's keys only "
                "with the account)", service=SERVICE, status=400,
                hint=f"delete {key_id} in the OpenAI dashboard, then `keyresponse resume`; "
                     "issue.mode: service_account avoids this")
        return _deleted(response, f"revoke orphan key {key_id}")

    # --- usage and audit (openai_usage.py)

    def gone_key(self, key_id: str, project_id: str | None) -> GoneKey | None:
        return openai_usage.gone_key(self, key_id, project_id)

    def key_scopes(self, key: KeyRecord) -> tuple[str, ...] | None:
        return openai_usage.key_scopes(self, key)

    def usage(self, key: KeyRecord, start: int, end: int) -> list[UsagePoint]:
        return openai_usage.usage(self, key, start, end)

    def minute_usage(self, key: KeyRecord, start: int, end: int | None = None) -> MinuteUsage | None:
        return openai_usage.minute_usage(self, key, start, end)

    def events(self, key: KeyRecord, start: int, end: int) -> list[AuditEvent]:
        return openai_usage.events(self, key, start, end)

    def costs(self, key: KeyRecord, start: int, end: int) -> float | None:
        return openai_usage.costs(self, key, start, end)

    # --- the blast radius and the hunt (openai_resources.py): providers.base.Hunting

    def audit_log(self, start: int, end: int, types: Sequence[str], *, project_id: str | None = None,
                  actor_ids: Sequence[str] | None = None) -> list[AuditEvent]:
        return openai_resources.audit_log(self, start, end, types, project_id=project_id, actor_ids=actor_ids)

    def usage_by_category(self, key: KeyRecord, start: int, end: int) -> dict[str, dict[str, Any]]:
        return openai_resources.usage_by_category(self, key, start, end)

    def costs_by_line_item(self, key: KeyRecord, start: int, end: int) -> dict[str, float] | None:
        return openai_resources.costs_by_line_item(self, key, start, end)

    def category_of(self, line_item: str) -> str:
        return openai_resources.category_of(line_item)

    def project_resources(self, secret: Secret, start: int) -> tuple[list[StoredResource], list[str]]:
        return openai_resources.project_resources(self, secret, start)

    def revoke_key_id(self, project_id: str, key_id: str) -> bool:
        return self.revoke_minted(project_id, None, key_id)


def _siblings_in(keys: list[KeyRecord], account: str, key_id: str) -> list[KeyRecord]:
    """The other keys of service account `account` among `keys`."""
    if not account:
        return []
    return [k for k in keys if k.owner_type == "service_account" and k.owner_id == account and k.key_id != key_id]


def _record(project_id: str, raw: dict[str, Any]) -> KeyRecord:
    owner = raw.get("owner") or {}
    kind: OwnerType = "service_account" if owner.get("type") == "service_account" else "user"
    who = owner.get(kind) or {}
    return KeyRecord(
        key_id=raw["id"], project_id=project_id, name=raw.get("name") or "", owner_type=kind,
        owner_id=who.get("id", ""), owner_name=who.get("email") or who.get("name") or "",
        redacted_value=raw.get("redacted_value") or "", created_at=raw.get("created_at"),
        last_used_at=raw.get("last_used_at"),
    )
