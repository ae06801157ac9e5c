"""The inventory (`keyresponse.yaml`): which keys exist and every place each one lives.

Credentials keyresponse itself uses are never written here, only the *names* of the
environment variables that hold them (`admin_key_env: OPENAI_ADMIN_KEY`). A value
that looks like a credential anywhere in the file is refused with the variable to
use instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator

from keyresponse.errors import ConfigError, SecretLeakRefused
from keyresponse.providers.settings import ProviderSettings

if TYPE_CHECKING:
    from keyresponse.providers.base import ProviderModule

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Shapes of credentials keyresponse knows; a match in a config file is refused.
# Each provider module adds its own (`KEY_PATTERNS`, see providers/__init__.py).
CREDENTIAL_PATTERNS = [
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{16,}")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_field(description: str) -> Any:
    return Field(pattern=ENV_NAME, description=description)


class GitHubPlatform(_Model):
    kind: Literal["github"] = "github"
    base_url: str = "https://api.github.com"
    token_env: str = _env_field("Env var holding a GitHub token with secrets write access")


class GitLabPlatform(_Model):
    kind: Literal["gitlab"] = "gitlab"
    base_url: str = "https://gitlab.com/api/v4"
    token_env: str = _env_field("Env var holding a GitLab token (api scope)")


Platform = Annotated[Union[GitHubPlatform, GitLabPlatform], Field(discriminator="kind")]


class SlackNotify(_Model):
    token_env: str = _env_field("Env var holding a Slack bot token (chat:write)")
    channel: str = Field(description="Channel id or #name for incident threads")
    drill_channel: str | None = Field(None, description="Channel for drill summaries")
    base_url: str = "https://slack.com/api/"


class Notify(_Model):
    slack: SlackNotify | None = None


class ReportSettings(_Model):
    template_dir: str | None = Field(None, description="Folder of templates overriding the built-in ones")


class EnvFileTarget(_Model):
    kind: Literal["envfile"]
    path: str = Field(description="The dotenv file, relative to the inventory file")
    variables: list[Annotated[str, Field(pattern=ENV_NAME)]] = Field(min_length=1)
    create: bool = Field(True, description="Add the variable if the file lacks it")
    allow_outside: bool = Field(False, description="Allow paths outside the inventory's folder")


class GitHubTarget(_Model):
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


class GitLabTarget(_Model):
    kind: Literal["gitlab"]
    platform: str = "gitlab"
    project: str | int | None = None
    group: str | int | None = None
    variable: str = Field(pattern=ENV_NAME)
    environment_scope: str = "*"
    create: bool = False
    pipeline_ref: str | None = Field(None, description="Run a pipeline on this ref as the restart")


class CommandTarget(_Model):
    kind: Literal["command"]
    name: str | None = None
    argv: list[str] = Field(min_length=1)
    shell: bool = False
    secret_via: Literal["stdin", "env"] = "stdin"
    env_name: str = Field("KEYRESPONSE_SECRET", pattern=ENV_NAME)
    timeout: float = 60.0
    restart_argv: list[str] | None = None
    verify_argv: list[str] | None = None


Target = Annotated[
    Union[EnvFileTarget, GitHubTarget, GitLabTarget, CommandTarget], Field(discriminator="kind")
]


class IssuePolicy(_Model):
    mode: Literal["service_account", "service_account_key"] = "service_account"
    service_account_id: str | None = None
    name_prefix: str = "keyresponse"
    expires_in_seconds: int | None = Field(
        None, ge=1, le=31536000,
        description="Lifetime of the replacement key (required where the organization's key policy sets one)",
    )
    copy_scopes: bool = Field(True, description="Give the replacement the old key's scopes (its restrictions)")


class RevokePolicy(_Model):
    sibling_keys: Literal["revoke", "keep", "ask"] = Field(
        "ask",
        description="Where the provider can revoke the key only by deleting its service account and that account "
                    "holds other live keys: take them down too (revoke), or stop and say so (keep, ask)",
    )


class KeyEntry(_Model):
    provider: str = "openai"
    project: str | None = Field(None, description="Provider project id (OpenAI: proj_...)")
    key_id: str | None = Field(None, description="The key's id at the provider, if known")
    secret_env: str | None = Field(None, pattern=ENV_NAME, description="Env var with the live value")
    canary: bool = False
    description: str | None = None
    issue: IssuePolicy = IssuePolicy()
    revoke: RevokePolicy = RevokePolicy()
    targets: list[Target] = Field(default_factory=list)


def _provider_settings(data: Any) -> ProviderSettings:
    """A `providers:` entry as the settings model its `kind` names (providers/__init__.py)."""
    from keyresponse import providers

    if isinstance(data, ProviderSettings):
        return data
    if not isinstance(data, dict):
        raise ValueError("a provider entry must be a mapping with a `kind:`")
    kind = data.get("kind", "openai")
    if kind not in providers.kinds():
        raise ValueError(f"unknown provider kind {kind!r} (known: {', '.join(providers.kinds())})")
    return providers.module(str(kind)).Settings.model_validate(data)


# A `providers:` entry: checked against the registry when the inventory is read, so a
# provider registered at run time is known; json_schema() lists every kind.
ProviderEntry = Annotated[ProviderSettings, PlainValidator(_provider_settings),
                          WithJsonSchema({"type": "object", "description": "A provider (json_schema() lists the kinds)"})]


class Inventory(_Model):
    version: Literal[1] = 1
    providers: dict[str, ProviderEntry] = Field(default_factory=dict)
    platforms: dict[str, Platform] = Field(default_factory=dict)
    notify: Notify = Notify()
    report: ReportSettings = ReportSettings()
    concurrency: int = Field(16, ge=1, le=256, description="Targets deployed at once")
    keys: dict[str, KeyEntry] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _names(cls, v: dict[str, KeyEntry]) -> dict[str, KeyEntry]:
        for name in v:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
                raise ValueError(f"key name {name!r}: use letters, digits, '.', '_' and '-'")
        return v


class LoadedInventory:
    """An Inventory plus where it came from (for relative paths and error messages)."""

    def __init__(self, model: Inventory, path: Path | None) -> None:
        self.model = model
        self.path = path
        self.root = path.parent.resolve() if path else Path.cwd()

    def key(self, name: str) -> KeyEntry:
        try:
            return self.model.keys[name]
        except KeyError:
            known = ", ".join(sorted(self.model.keys)) or "none"
            raise ConfigError(
                f"no key named {name!r} in {self.path or 'the inventory'} (known: {known})",
                hint="`keyresponse validate` lists the inventory; `keyresponse keys` lists the provider's keys",
            ) from None

    def credential(self, env_name: str, purpose: str) -> str:
        value = os.environ.get(env_name, "").strip()
        if not value:
            raise ConfigError(
                f"{purpose}: environment variable {env_name} is not set",
                hint=f"export {env_name}=... (the inventory names the variable, never the value)",
            )
        from keyresponse.secret import REDACTOR

        REDACTOR.add(value)
        return value


def empty() -> LoadedInventory:
    return LoadedInventory(Inventory(), None)


def load_inventory(path: str | Path) -> LoadedInventory:
    from pydantic import ValidationError

    from keyresponse.yamlio import load_file, pydantic_errors

    doc = load_file(path)
    if doc.data is None:
        raise ConfigError("the inventory is empty", file=doc.file, hint="`keyresponse init` writes one")
    if not isinstance(doc.data, dict):
        raise doc.error((), "the inventory must be a mapping (keys: providers, platforms, notify, keys)")
    refuse_literal_credentials(doc, doc.data, ())
    try:
        model = Inventory.model_validate(doc.data)
    except ValidationError as exc:
        raise pydantic_errors(doc, exc, "inventory") from None
    _check_references(doc, model)
    return LoadedInventory(model, Path(path))


def refuse_literal_credentials(doc: Any, data: Any, loc: tuple[Any, ...]) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            refuse_literal_credentials(doc, v, loc + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            refuse_literal_credentials(doc, v, loc + (i,))
    elif isinstance(data, str):
        for kind, pattern, env in _credential_patterns():
            if pattern.search(data):
                field = str(loc[-1]) if loc else "value"
                raise SecretLeakRefused(
                    f"{'.'.join(map(str, loc))}: this looks like a literal {kind}; "
                    "keyresponse never reads credentials from files",
                    file=doc.file,
                    line=(doc.mark(loc) or _NOMARK).line,
                    column=(doc.mark(loc) or _NOMARK).column,
                    hint=f"put the value in an environment variable and name it here, e.g. "
                    f"`{field if field.endswith('_env') else field + '_env'}: {env}`; "
                    "then rotate that credential: it has been written to a file",
                )


class _NoMark:
    line = None
    column = None


_NOMARK: Any = _NoMark()


_SUGGEST_ENV = {"GitHub token": "GITHUB_TOKEN", "GitLab token": "GITLAB_TOKEN", "Slack token": "SLACK_BOT_TOKEN"}


def _credential_patterns() -> Iterator[tuple[str, re.Pattern[str], str]]:
    """(label, pattern, env var to suggest) for every credential shape keyresponse knows."""
    from keyresponse import providers

    for module in providers.modules():
        for p in module.KEY_PATTERNS:
            yield p.label, p.pattern, p.env
    for label, pattern in CREDENTIAL_PATTERNS:
        yield label, pattern, _SUGGEST_ENV[label]


def _check_references(doc: Any, model: Inventory) -> None:
    for name, key in model.keys.items():
        if key.provider not in model.providers:
            raise doc.error(
                ("keys", name, "provider"),
                f"key {name!r} names provider {key.provider!r}, which is not under `providers:`",
                hint=f"add `providers: {{{key.provider}: {{kind: openai, admin_key_env: OPENAI_ADMIN_KEY}}}}`",
            )
        for i, t in enumerate(key.targets):
            loc = ("keys", name, "targets", i)
            if isinstance(t, (GitHubTarget, GitLabTarget)):
                if t.platform not in model.platforms or model.platforms[t.platform].kind != t.kind:
                    raise doc.error(
                        loc,
                        f"target uses platform {t.platform!r}, which is not a {t.kind} entry under `platforms:`",
                        hint=f"add `platforms: {{{t.platform}: {{kind: {t.kind}, token_env: ...}}}}`",
                    )
            if isinstance(t, GitHubTarget):
                scopes = [t.repo is not None, t.org is not None]
                if sum(scopes) != 1:
                    raise doc.error(loc, "a github target needs exactly one of `repo:` or `org:`")
                if t.environment and not t.repo:
                    raise doc.error(loc, "`environment:` needs `repo:` (environment secrets live in a repo)")
            if isinstance(t, GitLabTarget) and (t.project is None) == (t.group is None):
                raise doc.error(loc, "a gitlab target needs exactly one of `project:` or `group:`")


def _provider_modules() -> list[ProviderModule]:
    from keyresponse import providers

    return providers.modules()


def json_schema() -> dict[str, Any]:
    schema = Inventory.model_json_schema()
    defs = schema.setdefault("$defs", {})
    choices = []
    for module in _provider_modules():  # one branch per registered provider kind
        sub = module.Settings.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[module.Settings.__name__] = sub
        choices.append({"$ref": f"#/$defs/{module.Settings.__name__}"})
    schema["properties"]["providers"]["additionalProperties"] = {"oneOf": choices}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "keyresponse inventory (keyresponse.yaml)"
    return schema
