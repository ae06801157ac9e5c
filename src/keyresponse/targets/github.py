"""`github` targets: Actions secrets (repository, environment, organization) and
Dependabot secrets, sealed with the scope's public key (libsodium sealed box).

Wire format: ../shared/specs/github-actions-secrets.openapi.yaml. PUT answers 201
(created) or 204 (updated); organization secrets must be sent with their
visibility, so the existing visibility and selected repositories are read and sent
back unchanged; a missing one is created `selected` with no repositories (`private`
would be every private repository), and the run says so. Verify reads the secret's
`updated_at` (values are write-only). The restart dispatches a workflow and asks for
the run (`return_run_details`), whose page the report links.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, field_validator

from keyresponse.errors import KeyresponseError, TargetError
from keyresponse.fields import ENV_NAME, KeyPattern, credential_env
from keyresponse.inventory import PlatformSettings, Problem, TargetSettings
from keyresponse.targets.base import LazyClient, address, identity, locator_problem

if TYPE_CHECKING:
    import httpx

    from keyresponse.action import Check, StepContext
    from keyresponse.secret import Secret
    from keyresponse.targets.base import Shared, TargetEnv

API_VERSION = "2022-11-28"
RATE_LIMIT_TRIES = 4

kind = "github"
KEY_PATTERNS = (KeyPattern("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
                           "GITHUB_TOKEN"),)


class GitHubPlatform(PlatformSettings):
    kind: Literal["github"] = "github"
    base_url: str = "https://api.github.com"
    token_env: str = credential_env("Env var holding a GitHub token with secrets write access")

    def address(self) -> str:
        return address(self.base_url)


class GitHubTarget(TargetSettings):
    platform_kind = "github"

    kind: Literal["github"]
    platform: str = "github"
    repo: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$", description="owner/name")
    environment: str | None = None
    org: str | None = None
    dependabot: bool = False
    secret: str = Field(pattern=ENV_NAME, description="Secret name; stored upper-case by GitHub")
    create: bool = False
    workflow: str | None = Field(None, description="Workflow file to dispatch as the restart")
    ref: str = "main"

    @field_validator("secret")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        # https://docs.github.com/en/actions/security-guides/using-secrets-in-github-actions#naming-your-secrets
        if v.upper().startswith("GITHUB_"):
            raise ValueError("GitHub secret names must not start with GITHUB_")
        return v

    def platform_name(self) -> str | None:
        return self.platform

    def problems(self) -> list[str | Problem]:
        if (self.repo is None) == (self.org is None):
            return ["a github target needs exactly one of `repo:` or `org:`"]
        if self.environment and not self.repo:
            return ["`environment:` needs `repo:` (environment secrets live in a repo)"]
        if self.dependabot and self.environment is not None:
            # Dependabot secrets exist per repository and organization only: with both set the
            # write would land in the environment's Actions secrets, not where Dependabot reads
            return [Problem("`dependabot: true` cannot be combined with `environment:` "
                            "(Dependabot has no environment secrets)", "dependabot",
                            "drop `environment:` for the repository's Dependabot secret, or "
                            "`dependabot:` for the environment's Actions secret")]
        # each becomes part of an API path: one that climbs out of it would write elsewhere
        found = [Problem(problem, field, "name the repository, organization or environment exactly as GitHub does")
                 for field, problem in (
                     ("repo", self.repo and locator_problem(self.repo, "`repo:`", segments=2)),
                     ("org", self.org and locator_problem(self.org, "`org:`")),
                     ("environment", self.environment is not None
                      and locator_problem(self.environment, "`environment:`", free=True)),
                     ("workflow", self.workflow is not None
                      and locator_problem(self.workflow, "`workflow:`", free=True)),
                 ) if problem]
        return list(found)


Settings = GitHubTarget
Platform = GitHubPlatform


def from_config(settings: TargetSettings, env: TargetEnv) -> GitHubSecret:
    assert isinstance(settings, GitHubTarget) and isinstance(env.platform, GitHubPlatform)
    ctx, name, platform = env.ctx, env.platform_name or settings.platform, env.platform
    return GitHubSecret(settings, LazyClient(lambda: github_client(ctx, name, platform)), env.shared,
                        base_url=platform.base_url, platform_name=name)


def github_client(ctx: StepContext, name: str, platform: GitHubPlatform) -> httpx.Client:
    token = ctx.inventory.credential(platform.token_env, f"GitHub platform {name!r}")
    return ctx.http("github", platform.base_url, {
        "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
    })


def seal(public_key_b64: str, value: str) -> str:
    """GitHub's encryption: a libsodium sealed box to the scope's public key, base64."""
    from nacl.encoding import Base64Encoder
    from nacl.public import PublicKey, SealedBox

    box = SealedBox(PublicKey(public_key_b64.encode(), encoder=Base64Encoder))
    return base64.b64encode(box.encrypt(value.encode("utf-8"))).decode("ascii")


class GitHubSecret:
    kind: ClassVar[str] = "github"

    def __init__(self, cfg: GitHubTarget, client: Callable[[], httpx.Client], shared: Shared,
                 base_url: str = "https://api.github.com", platform_name: str | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.shared = shared
        self.host = urlsplit(base_url).netloc or base_url  # rate limits are per host
        self.address = address(base_url)  # public keys are per platform and scope
        self.platform_name = platform_name
        self.name = cfg.secret.upper()  # GitHub stores names upper-case
        family = "dependabot" if cfg.dependabot else "actions"
        if cfg.org:
            self.base, self.scope = f"orgs/{cfg.org}/{family}/secrets", f"org:{cfg.org}"
        elif cfg.environment:
            env = quote(cfg.environment, safe="")
            self.base = f"repos/{cfg.repo}/environments/{env}/secrets"
            self.scope = f"env:{cfg.repo}:{cfg.environment}"
        else:
            self.base, self.scope = f"repos/{cfg.repo}/{family}/secrets", f"repo:{cfg.repo}"
        if cfg.dependabot:
            self.scope = "dependabot:" + self.scope.split(":", 1)[1]
        self.permission = ("'Secrets: read and write' and 'Environments: read and write'" if cfg.environment
                           else "'Dependabot secrets: read and write'" if cfg.dependabot
                           else "'Secrets: read and write'")
        self.restart_what = (f"dispatch workflow {cfg.workflow} on {cfg.ref} in {cfg.repo}"
                             if cfg.workflow and cfg.repo else None)
        self.identity = identity(kind, self.address, f"{self.scope}:{self.name}")
        self._before: dict[str, Any] | None = None
        self._seen = False  # whether _before is known (None: the secret did not exist)

    def describe(self) -> str:
        what = "Dependabot secret" if self.cfg.dependabot else "secret"
        if self.cfg.org:
            return f"GitHub org {what} {self.cfg.org}:{self.name}{self._on()}"
        env = f"@{self.cfg.environment}" if self.cfg.environment else ""
        return f"GitHub {what} {self.cfg.repo}{env}:{self.name}{self._on()}"

    def _on(self) -> str:
        """Which platform, unless it is the one named like the kind (two can hold the same name)."""
        return f" (platform {self.platform_name})" if self.platform_name not in (None, kind) else ""

    # --- HTTP, politely

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request through the host's gate; a secondary rate limit (403/429 with
        Retry-After, or x-ratelimit-remaining: 0) pauses every request to the host."""
        gate = self.shared.gate(self.host)
        client = self.client()
        for attempt in range(RATE_LIMIT_TRIES):
            with gate:
                response = client.request(method, path, **kw)
            wait = _rate_limit_wait(response)
            if wait is None or attempt + 1 == RATE_LIMIT_TRIES or wait > 60:
                return response
            response.close()
            gate.pause(wait)
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response, ok: tuple[int, ...], what: str) -> httpx.Response:
        from keyresponse.http import error_for

        if response.status_code in ok:
            return response
        err = error_for(response, "github", what=what, hint=_hint(response, self))
        raise TargetError(self.describe(), err.message, hint=err.hint)

    def _public_key(self) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            r = self._check(self._call("GET", f"{self.base}/public-key"), (200,), "read the public key")
            return dict(r.json())

        return self.shared.once(("github-key", self.address, self.base), fetch)

    def _get(self) -> dict[str, Any] | None:
        r = self._call("GET", f"{self.base}/{self.name}")
        if r.status_code == 404:
            return None
        return dict(self._check(r, (200,), "read the secret").json())

    # --- Target

    def preflight(self) -> list[Check]:
        from keyresponse.action import Check

        me = self.describe()
        if self.cfg.workflow and not self.cfg.repo:
            return [Check(me, False, "`workflow:` needs `repo:`", "move `workflow:` to a repository target")]
        try:
            self._public_key()  # proves the token can reach this scope
            current = self._get()
        except KeyresponseError as exc:
            return [Check(me, False, exc.message.removeprefix(me + ": "), exc.hint)]
        if current is None and not self.cfg.create:
            return [Check(me, False, "the secret does not exist",
                          "create it once in GitHub, or set `create: true` on the target")]
        self._before, self._seen = current, True  # lets write() skip one GET
        detail = "token can read the public key; " + ("secret exists" if current else "will create")
        if current is None and self.cfg.org:
            detail += f" ({_NEW_ORG_SECRET})"
        if self.cfg.environment:
            # the write needs more than this read proves (fine-grained tokens, GitHub Apps):
            # https://docs.github.com/rest/actions/secrets#create-or-update-an-environment-secret
            detail += "; the write needs 'Environments: write' and 'Secrets: write' (fine-grained tokens)"
        return [Check(me, True, detail)]

    def write(self, secret: Secret) -> str | None:
        self._public_key()  # first: a 404 here means no access, not a missing secret
        if not self._seen:
            self._before, self._seen = self._get(), True
        if self._before is None and not self.cfg.create:
            raise TargetError(self.describe(), "the secret does not exist",
                              hint="create it once in GitHub, or set `create: true` on the target")
        for attempt in (1, 2):
            key = self._public_key()
            body: dict[str, Any] = {"encrypted_value": seal(key["key"], secret.reveal()), "key_id": key["key_id"]}
            if self.cfg.org:
                body.update(self._visibility())
            r = self._call("PUT", f"{self.base}/{self.name}", json=body)
            if r.status_code in (400, 422) and attempt == 1:
                # the scope's key may have rotated since we cached it: fetch it again, once
                self.shared.forget(("github-key", self.address, self.base))
                continue
            self._check(r, (201, 204), "write the secret")
            if r.status_code != 201:
                return None
            return f"created ({_NEW_ORG_SECRET}: choose them in GitHub)" if self.cfg.org and not self._before \
                else "created"
        raise AssertionError("unreachable")

    def _visibility(self) -> dict[str, Any]:
        """Keep an org secret's visibility and selected repositories as they are."""
        before = self._before or {}
        # a new org secret: least exposure is `selected` with no repositories (`private`
        # would hand it to every private repository of the organization)
        visibility = before.get("visibility") or "selected"
        out: dict[str, Any] = {"visibility": visibility}
        if not before:
            out["selected_repository_ids"] = []
        elif visibility == "selected":
            ids: list[int] = []
            page = 1
            while True:
                r = self._check(self._call("GET", f"{self.base}/{self.name}/repositories",
                                           params={"per_page": 100, "page": page}), (200,), "list selected repositories")
                data = r.json()
                ids += [repo["id"] for repo in data.get("repositories", [])]
                if not data.get("repositories") or len(ids) >= data.get("total_count", 0):
                    break
                page += 1
            out["selected_repository_ids"] = ids
        return out

    def verify(self, secret: Secret) -> bool:
        after = self._get()
        if after is None:
            raise TargetError(self.describe(), "the secret is missing after the write")
        before = (self._before or {}).get("updated_at")
        if before is None or after.get("updated_at") != before:
            return True
        # `updated_at` has one-second resolution: an update in the same second as the
        # previous one cannot show; only a stale older stamp proves the write did not take
        if _age(before) < 3.0:
            return False
        raise TargetError(self.describe(), f"updated_at did not move (still {before}): the write did not take",
                          hint="check the token's permission on this secret and retry")

    def restart(self) -> bool | str | None:
        """Dispatch the workflow; the run's page when GitHub names the run (200 with
        `return_run_details`), else True (204: a GitHub that predates the option)."""
        if not self.restart_what:
            return None
        path = f"repos/{self.cfg.repo}/actions/workflows/{quote(self.cfg.workflow or '', safe='')}/dispatches"
        r = self._check(self._call("POST", path, json={"ref": self.cfg.ref, "return_run_details": True}),
                        (200, 204), f"dispatch {self.cfg.workflow}")
        if r.status_code == 200:
            try:
                page = r.json().get("html_url")
            except ValueError:
                page = None
            if isinstance(page, str) and page.startswith(("https://", "http://")):
                return page
        return True


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds GitHub asks us to wait, for a secondary (or primary) rate limit."""
    from keyresponse.http import parse_retry_after

    if response.status_code not in (403, 429):
        return None
    told = parse_retry_after(response.headers.get("retry-after"))
    if told is not None:
        return told
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        return max(0.0, float(reset) - time.time()) + 1 if reset.isdigit() else 60.0
    return None


def _age(stamp: str) -> float:
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return time.time() - when.timestamp()


_NEW_ORG_SECRET = "visibility selected, no repositories"


def _hint(response: httpx.Response, target: GitHubSecret) -> str | None:
    status = response.status_code
    where = target.cfg.org or target.cfg.repo
    if target.cfg.environment:
        where = f"{where} (environment {target.cfg.environment})"
    if status in (403, 404):
        # GitHub names what the endpoint accepts (fine-grained tokens, GitHub Apps)
        accepted = response.headers.get("x-accepted-github-permissions", "").strip()
        return (f"the token cannot see or write secrets in {where}: give it access "
                f"(fine-grained: {target.permission}; classic: `repo`"
                + (", `admin:org`" if target.cfg.org else "") + ")"
                + (f"; GitHub says this call accepts: {accepted[:200]}" if accepted else "")
                + ", or remove this target")
    if status == 401:
        return "GitHub refused the token: check the env var the platform's `token_env` names"
    return None
