"""`gitlab` targets: project or group CI/CD variables.

GitLab has no spec file in ../shared/specs (see its README for the fields). An
update is `PUT .../variables/:key?filter[environment_scope]=...` that sends the
variable's own `masked`, `protected`, `raw`, `variable_type` and
`environment_scope` back unchanged; a missing variable is created only with
`create: true`. The optional restart runs a pipeline on `pipeline_ref`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field

from keyresponse.errors import KeyresponseError, TargetError
from keyresponse.fields import ENV_NAME, KeyPattern, credential_env
from keyresponse.inventory import PlatformSettings, Problem, TargetSettings
from keyresponse.targets.base import LazyClient, address, identity, locator_problem

if TYPE_CHECKING:
    import httpx

    from keyresponse.action import Check, StepContext
    from keyresponse.secret import Secret
    from keyresponse.targets.base import Shared, TargetEnv

# GitLab masks only values of 8+ characters from this alphabet
# https://docs.gitlab.com/ee/ci/variables/#mask-a-cicd-variable
MASKABLE = re.compile(r"[A-Za-z0-9+/=@:.~_-]{8,}")
KEPT = ("variable_type", "protected", "masked", "raw", "environment_scope", "description")

kind = "gitlab"
KEY_PATTERNS = (KeyPattern("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{16,}"), "GITLAB_TOKEN"),)


class GitLabPlatform(PlatformSettings):
    kind: Literal["gitlab"] = "gitlab"
    base_url: str = "https://gitlab.com/api/v4"
    token_env: str = credential_env("Env var holding a GitLab token (api scope)")

    def address(self) -> str:
        return address(self.base_url)


class GitLabTarget(TargetSettings):
    platform_kind = "gitlab"

    kind: Literal["gitlab"]
    platform: str = "gitlab"
    project: str | int | None = None
    group: str | int | None = None
    variable: str = Field(pattern=ENV_NAME)
    environment_scope: str = "*"
    create: bool = False
    pipeline_ref: str | None = Field(None, description="Run a pipeline on this ref as the restart")

    def platform_name(self) -> str | None:
        return self.platform

    def problems(self) -> list[str | Problem]:
        if (self.project is None) == (self.group is None):
            return ["a gitlab target needs exactly one of `project:` or `group:`"]
        field = "project" if self.project is not None else "group"
        owner = self.project if self.project is not None else self.group
        # an id, or a path of names (`group/subgroup/project`): it goes URL-encoded as one
        # segment, which GitLab decodes, so `..` or `?` in it would be another place
        problem = None if isinstance(owner, int) else locator_problem(str(owner), f"`{field}:`", segments=None)
        if problem:
            return [Problem(problem, field, f"give the {field}'s numeric id or its full path as GitLab shows it")]
        return []


Settings = GitLabTarget
Platform = GitLabPlatform


def from_config(settings: TargetSettings, env: TargetEnv) -> GitLabVariable:
    assert isinstance(settings, GitLabTarget) and isinstance(env.platform, GitLabPlatform)
    ctx, name, platform = env.ctx, env.platform_name or settings.platform, env.platform
    return GitLabVariable(settings, LazyClient(lambda: gitlab_client(ctx, name, platform)), env.shared,
                          base_url=platform.base_url, platform_name=name)


def gitlab_client(ctx: StepContext, name: str, platform: GitLabPlatform) -> httpx.Client:
    token = ctx.inventory.credential(platform.token_env, f"GitLab platform {name!r}")
    return ctx.http("gitlab", platform.base_url, {"PRIVATE-TOKEN": token})


class GitLabVariable:
    kind: ClassVar[str] = "gitlab"

    def __init__(self, cfg: GitLabTarget, client: Callable[[], httpx.Client], shared: Shared,
                 base_url: str = "https://gitlab.com/api/v4", platform_name: str | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.shared = shared
        self.host = urlsplit(base_url).netloc or base_url
        self.platform_name = platform_name
        owner = cfg.project if cfg.project is not None else cfg.group
        self.family = "projects" if cfg.project is not None else "groups"
        self.owner = f"{self.family}/{quote(str(owner), safe='')}"  # paths go URL-encoded, one segment
        self.params = {"filter[environment_scope]": cfg.environment_scope}
        self.restart_what = (f"run a pipeline on {cfg.pipeline_ref} in {cfg.project}"
                             if cfg.pipeline_ref and cfg.project is not None else None)
        self.identity = identity(kind, address(base_url), f"{self.owner}:{cfg.variable}:{cfg.environment_scope}")

    def describe(self) -> str:
        where = f"{self.cfg.project}" if self.cfg.project is not None else f"group {self.cfg.group}"
        scope = f" [{self.cfg.environment_scope}]" if self.cfg.environment_scope != "*" else ""
        on = f" (platform {self.platform_name})" if self.platform_name not in (None, kind) else ""
        return f"GitLab variable {where}:{self.cfg.variable}{scope}{on}"

    def _call(self, method: str, path: str, what: str, ok: tuple[int, ...] = (200,), **kw: Any) -> httpx.Response:
        from keyresponse.http import error_for

        with self.shared.gate(self.host):
            r = self.client().request(method, path, **kw)
        if r.status_code not in ok:
            err = error_for(r, "gitlab", what=what, hint=_hint(r.status_code, self))
            raise TargetError(self.describe(), err.message, hint=err.hint)
        return r

    def _get(self) -> dict[str, Any] | None:
        r = self._call("GET", f"{self.owner}/variables/{self.cfg.variable}", "read the variable",
                       (200, 404), params=self.params)
        if r.status_code == 404:  # no such variable, or no such project/access: tell them apart
            self._call("GET", self.owner, f"read the {self.family[:-1]}")
            return None
        return dict(r.json())

    def preflight(self) -> list[Check]:
        from keyresponse.action import Check

        me = self.describe()
        if self.cfg.pipeline_ref and self.cfg.project is None:
            return [Check(me, False, "`pipeline_ref:` needs `project:` (pipelines run in projects)",
                          "move `pipeline_ref:` to a project target")]
        try:
            current = self._get()
            if current is None:
                if not self.cfg.create:
                    return [Check(me, False, "the variable does not exist in this environment scope",
                                  "create it once in GitLab, or set `create: true` on the target")]
        except KeyresponseError as exc:
            return [Check(me, False, exc.message.removeprefix(me + ": "), exc.hint)]
        return [Check(me, True, "variable exists" if current else "will create")]

    def write(self, secret: Secret) -> str | None:
        value = secret.reveal()
        current = self._get()
        if current is None:
            if not self.cfg.create:
                raise TargetError(self.describe(), "the variable does not exist in this environment scope",
                                  hint="create it once in GitLab, or set `create: true` on the target")
            body = {"key": self.cfg.variable, "value": value, "environment_scope": self.cfg.environment_scope,
                    "masked": bool(MASKABLE.fullmatch(value)), "protected": False, "raw": True}
            self._call("POST", f"{self.owner}/variables", "create the variable", (201,), json=body)
            return "created" + ("" if body["masked"] else " (not masked: GitLab cannot mask this value)")
        body = {k: current[k] for k in KEPT if current.get(k) is not None}
        body["value"] = value
        if current.get("hidden") or current.get("masked_and_hidden"):
            body.pop("masked", None)  # a hidden variable's masking cannot be sent back
        self._call("PUT", f"{self.owner}/variables/{self.cfg.variable}", "update the variable",
                   json=body, params=self.params)
        return None

    def verify(self, secret: Secret) -> bool:
        current = self._get()
        if current is None:
            raise TargetError(self.describe(), "the variable is missing after the write")
        if current.get("value") is None:
            return False  # hidden variables never show their value: cannot tell
        if current["value"] != secret.reveal():
            raise TargetError(self.describe(), "the variable reads back a different value after the write")
        return True

    def restart(self) -> bool | None:
        if not self.restart_what:
            return None
        self._call("POST", f"{self.owner}/pipeline", f"run a pipeline on {self.cfg.pipeline_ref}", (200, 201),
                   json={"ref": self.cfg.pipeline_ref})
        return True


def _hint(status: int, target: GitLabVariable) -> str | None:
    if status in (403, 404):
        return (f"the token cannot see or change variables of {target.owner.split('/', 1)[1]}: "
                "it needs the `api` scope and the Maintainer role there")
    if status == 401:
        return "GitLab refused the token: check the env var the platform's `token_env` names"
    return None
