"""The inventory (`keyresponse.yaml`): which keys exist and every place each one lives.

Credentials keyresponse itself uses are never written here, only the *names* of the
environment variables that hold them (`admin_key_env: OPENAI_ADMIN_KEY`). A value
that looks like a credential anywhere in the file is refused with the variable to
use instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, NamedTuple, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema

from keyresponse.errors import ConfigError, SecretLeakRefused
from keyresponse.fields import CREDENTIAL_MARK, KeyPattern, credential_env
from keyresponse.providers.settings import ProviderSettings

if TYPE_CHECKING:
    from keyresponse.providers.base import ProviderModule


# Shapes of credentials keyresponse knows; a match in a config file is refused. Slack's
# is the inventory's own (notify); each provider and target module adds its own
# (`KEY_PATTERNS`, see providers/__init__.py and targets/__init__.py).
CREDENTIAL_PATTERNS = [
    KeyPattern("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "SLACK_BOT_TOKEN"),
]




class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackNotify(_Model):
    token_env: str = credential_env("Env var holding a Slack bot token (chat:write)")
    channel: str = Field(description="Channel id or #name for incident threads")
    drill_channel: str | None = Field(None, description="Channel for drill summaries")
    base_url: str = "https://slack.com/api/"


class Notify(_Model):
    slack: SlackNotify | None = None


class ReportSettings(_Model):
    template_dir: str | None = Field(None, description="Folder of templates overriding the built-in ones")


class Problem(NamedTuple):
    """What is wrong with a target's settings, found when the inventory loads."""

    message: str
    field: str | None = None  # the field it is about: the error shows that field's line
    hint: str | None = None


class TargetSettings(_Model):
    """The settings of one place a key lives (`keys.NAME.targets[]`): the base of every
    target kind's model, which its module exports as `Settings` (see targets/__init__.py)."""

    kind: str
    platform_kind: ClassVar[str | None] = None  # the kind of `platforms:` entry it needs, if any

    def platform_name(self) -> str | None:
        """The `platforms:` entry this target uses (None: it uses none)."""
        return None

    def problems(self) -> list[str | Problem]:
        """What is wrong across fields (one message each), checked at load time."""
        return []

    def problems_at(self, root: Path) -> list[str | Problem]:
        """`problems()` and what only the disk can tell (a path's file), checked at load time
        with `root`, the inventory's folder. Read-only; the target checks again before it writes."""
        return self.problems()


class PlatformSettings(_Model):
    """A service that holds targets (`platforms.NAME`): the base of every platform kind's
    model, which its module exports as `Platform`."""

    kind: str

    def address(self) -> str:
        """Where the platform is (its API base URL): part of its targets' identity."""
        raise NotImplementedError


class _FromRegistry:
    """The discriminated union of every registered kind's model, built when the schema is
    (so at first use, after plug-in kinds have registered; `rebuild_models` redoes it)."""

    def __init__(self, family: Literal["target", "platform"]) -> None:
        self.family = family

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from keyresponse import targets

        models = targets.settings_models() if self.family == "target" else targets.platform_models()
        union: Any = Union[tuple(models)]  # noqa: UP007 - built at run time from the registry: no `|` spelling
        return handler.generate_schema(Annotated[union, Field(discriminator="kind")])


TargetConfig = Annotated[TargetSettings, _FromRegistry("target")]
PlatformConfig = Annotated[PlatformSettings, _FromRegistry("platform")]


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


class ExposureRepo(_Model):
    """A git repository whose whole history `exposure.scan` reads (`exposure.repos[]`)."""

    path: str = Field(description="The repository's folder (a clone; bare or not), relative to the inventory")
    name: str | None = Field(None, description="How findings name it (default: the path)")
    github: str | None = Field(None, description="Its GitHub repository, owner/name: the scan asks whether it is "
                                                 "public and whether push protection is on")
    gitlab: str | int | None = Field(None, description="Its GitLab project, id or full path (group/project): the "
                                                       "scan asks GitLab whether it is public")
    platform: str | None = Field(None, description="The `platforms:` entry (kind github, or gitlab) to ask; "
                                                   "default: the only one of that kind")
    public: bool | None = Field(None, description="Whether the repository is public, where no API can say")
    unreachable: bool = Field(False, description="Also read objects no ref reaches (dropped commits, stray blobs)")


class ExposureSettings(_Model):
    """Where `exposure.scan` looks for copies of a key (`exposure:`, at the top and per key;
    a key's places are added to the top-level ones)."""

    repos: list[ExposureRepo] = Field(default_factory=list)
    folders: list[str] = Field(default_factory=list, description="Plain folders searched file by file")
    shell_history: bool = Field(False, description="Also search this user's shell history files (opt-in)")
    notebooks: list[str] = Field(default_factory=list, description="Folders whose Jupyter notebooks' outputs "
                                                                   "are searched (opt-in)")
    ci_logs: list[str] = Field(default_factory=list, description="Folders of CI logs saved to disk (opt-in)")

    @field_validator("repos", mode="before")
    @classmethod
    def _paths(cls, v: Any) -> Any:
        return [{"path": r} if isinstance(r, str) else r for r in v] if isinstance(v, list) else v

    def merged(self, other: ExposureSettings | None) -> ExposureSettings:
        if other is None:
            return self
        return ExposureSettings(
            repos=[*self.repos, *other.repos], folders=[*self.folders, *other.folders],
            shell_history=self.shell_history or other.shell_history,
            notebooks=[*self.notebooks, *other.notebooks], ci_logs=[*self.ci_logs, *other.ci_logs])


class AdminKeySettings(_Model):
    """`keys.NAME.admin`, for an entry of `kind: admin` (playbook leaked-admin-key)."""

    source: int | None = Field(
        None, ge=1,
        description="The target (numbered from 1; an envfile) keyresponse reads its own admin credential back "
                    "from when a resumed run finds the leaked one in the environment, already revoked")
    name_prefix: str = Field("keyresponse-admin", description="The new admin key is named PREFIX-INCIDENT-N")
    expires_in_seconds: int | None = Field(None, ge=1, le=31536000, description="Lifetime of the new admin key")


class HuntSettings(_Model):
    """What key.hunt trusts and may revoke (`hunt:` at the top level, and per key)."""

    trusted_actors: list[str] = Field(default_factory=list, description="Actors whose changes are not flagged: "
                                      "user, service account or key ids, or emails (responders, automation)")
    revoke: Literal["ask", "never", "auto"] | None = Field(
        None, description="What key.hunt does with flagged keys and service accounts: revoke them with the run's "
                          "approval (ask), list them only (never, the default), or revoke them unasked (auto)")


class KeyEntry(_Model):
    model_config = ConfigDict(defer_build=True)  # its targets' union is built from the registry

    kind: Literal["project", "admin"] = Field(
        "project", description="project: a project API key; admin: an organization admin API key (its "
                               "`secret_env` defaults to the provider's admin_key_env: the one keyresponse uses)")
    admin: AdminKeySettings = AdminKeySettings()
    provider: str = Field("openai", description="Name under `providers:`; the only one there when there is one")
    project: str | None = Field(None, description="Provider project id (OpenAI: proj_...)")
    key_id: str | None = Field(None, description="The key's id at the provider, if known")
    secret_env: str | None = credential_env("Env var with the live value", default=None)
    canary: bool = False
    description: str | None = None
    issue: IssuePolicy = IssuePolicy()
    revoke: RevokePolicy = RevokePolicy()
    targets: list[TargetConfig] = Field(default_factory=list)
    exposure: ExposureSettings | None = Field(None, description="Places to scan for this key, besides the top-level ones")
    hunt: HuntSettings | None = Field(None, description="key.hunt settings for this key, besides the top-level ones")


class ServeSource(_Model):
    """One webhook source `keyresponse serve` accepts (absent: its endpoint answers 404)."""

    secret_env: str = credential_env("Env var holding the webhook secret (GitHub), signature token "
                                     "(GitGuardian) or bearer token (generic)")
    max_age_seconds: int = Field(300, ge=1, le=3600,
                                 description="GitGuardian: refuse a Timestamp further than this from now")


ServeSourceName = Literal["github", "gitguardian", "generic"]


def _all_sources() -> list[ServeSourceName]:
    return ["github", "gitguardian", "generic"]


class ServeRule(_Model):
    """Which alerts start which playbook, and how: the first rule that matches decides."""

    sources: list[ServeSourceName] = Field(default_factory=_all_sources, description="Alert sources it covers")
    secret_types: list[str] = Field(default_factory=lambda: ["*openai*"],
                                    description="Secret types it covers (shell patterns, case-insensitive)")
    action: Literal["auto", "ask", "record"] = Field(
        "auto", description="auto: contain now; ask: Approve/Dismiss in Slack first; record: open an incident, change nothing")
    playbook: str = "leaked-key"
    key: str | None = Field(None, description="The inventory key these alerts are about, when the alert "
                                              "carries no value and no known repository")


class ServeSettings(_Model):
    """`keyresponse serve`: the webhook receiver's sources and policy."""

    github: ServeSource | None = None
    gitguardian: ServeSource | None = None
    generic: ServeSource | None = None
    slack_signing_secret_env: str | None = credential_env(
        "Env var holding the Slack app's signing secret (for the `ask` buttons)", default=None)
    workers: int = Field(4, ge=1, le=64, description="Incidents run at once (one per key)")
    max_body_bytes: int = Field(1 << 20, ge=1024, le=16 << 20, description="Larger requests are refused (413)")
    rules: list[ServeRule] = Field(default_factory=lambda: [ServeRule()])


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
    model_config = ConfigDict(defer_build=True)  # its platforms' union is built from the registry

    version: Literal[1] = 1
    providers: dict[str, ProviderEntry] = Field(default_factory=dict)
    platforms: dict[str, PlatformConfig] = Field(default_factory=dict)
    notify: Notify = Notify()
    report: ReportSettings = ReportSettings()
    concurrency: int = Field(16, ge=1, le=256, description="Targets deployed at once")
    keys: dict[str, KeyEntry] = Field(default_factory=dict)
    serve: ServeSettings = ServeSettings()
    exposure: ExposureSettings = Field(default_factory=ExposureSettings,
                                       description="Places exposure.scan searches for every key")
    hunt: HuntSettings = Field(default_factory=HuntSettings, description="key.hunt settings for every key")

    @model_validator(mode="before")
    @classmethod
    def _only_provider(cls, data: Any) -> Any:
        """A key that names no provider belongs to the only one the inventory has, whatever
        its name (with several, `provider:` defaults to `openai`)."""
        if isinstance(data, dict) and isinstance(data.get("providers"), dict) and len(data["providers"]) == 1 \
                and isinstance(data.get("keys"), dict):
            (only,) = data["providers"]
            data = {**data, "keys": {name: ({"provider": only, **entry} if isinstance(entry, dict) else entry)
                                     for name, entry in data["keys"].items()}}
        return data

    @field_validator("keys")
    @classmethod
    def _names(cls, v: dict[str, KeyEntry]) -> dict[str, KeyEntry]:
        for name in v:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
                raise ValueError(f"key name {name!r}: use letters, digits, '.', '_' and '-'")
        return v

    def credential_env_names(self) -> list[str]:
        """Every env var this inventory names as holding a credential (admin keys, platform
        and Slack tokens, keys' live values, ...): each field declared with `credential_env`."""
        return list(dict.fromkeys(_credential_envs(self)))


def _credential_envs(value: object) -> Iterator[str]:
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            field = getattr(value, name)
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get(CREDENTIAL_MARK) and isinstance(field, str):
                yield field
            else:
                yield from _credential_envs(field)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _credential_envs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _credential_envs(item)


def rebuild_models() -> None:
    """Build the inventory's schema again from the target and platform registries (after a
    kind was registered or removed at run time)."""
    KeyEntry.model_rebuild(force=True)
    Inventory.model_rebuild(force=True)


class LoadedInventory:
    """An Inventory plus where it came from (for relative paths and error messages)."""

    def __init__(self, model: Inventory, path: Path | None) -> None:
        self.model = model
        self.path = path
        self.root = path.parent.resolve() if path else Path.cwd()
        self._overrides: dict[str, str] = {}

    def key(self, name: str) -> KeyEntry:
        try:
            return self.model.keys[name]
        except KeyError:
            known = ", ".join(sorted(self.model.keys)) or "none"
            raise ConfigError(
                f"no key named {name!r} in {self.path or 'the inventory'} (known: {known})",
                hint="`keyresponse validate` lists the inventory; `keyresponse keys` lists the provider's keys",
            ) from None

    def use_credential(self, env_name: str, value: str) -> None:
        """From now on in this process, `credential(env_name)` is `value` (in memory only):
        the new admin key, once proven, replaces the leaked one the environment holds."""
        from keyresponse.secret import REDACTOR

        REDACTOR.add(value)
        self._overrides[env_name] = value

    def credential(self, env_name: str, purpose: str) -> str:
        value = self._overrides.get(env_name) or os.environ.get(env_name, "").strip()
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
    loaded = LoadedInventory(model, Path(path))
    _check_references(doc, model, loaded.root)
    return loaded


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


def _credential_patterns() -> Iterator[tuple[str, re.Pattern[str], str]]:
    """(label, pattern, env var to suggest) for every credential shape keyresponse knows."""
    from keyresponse import providers, targets

    kinds: list[Any] = [*providers.modules(), *(targets.target_kind(k) for k in targets.target_kinds())]
    for p in [*CREDENTIAL_PATTERNS, *(p for module in kinds for p in getattr(module, "KEY_PATTERNS", ()))]:
        yield p.label, p.pattern, p.env


def _check_references(doc: Any, model: Inventory, root: Path) -> None:
    for name, key in model.keys.items():
        if key.provider not in model.providers:
            raise doc.error(
                ("keys", name, "provider"),
                f"key {name!r} names provider {key.provider!r}, which is not under `providers:`",
                hint=f"add `providers: {{{key.provider}: {{kind: openai, admin_key_env: OPENAI_ADMIN_KEY}}}}`",
            )
        for i, t in enumerate(key.targets):
            loc = ("keys", name, "targets", i)
            _check_target(doc, model, loc, t, root)
        source = key.admin.source
        if source is not None and (key.kind != "admin" or source > len(key.targets)
                                   or key.targets[source - 1].kind != "envfile"):
            raise doc.error(("keys", name, "admin", "source"),
                            f"keys.{name}.admin.source: {source} is not one of this admin key's envfile targets",
                            hint="number the envfile target (from 1) keyresponse reads the new admin key back from, "
                                 "on an entry with `kind: admin`")


def _check_target(doc: Any, model: Inventory, loc: tuple[Any, ...], t: TargetSettings, root: Path) -> None:
    """Refuse, at the target's line, what would fail only when the target is written (after
    the revoke, in an incident): a platform that is not there, a path or locator that leaves
    its place. Targets are numbered from 1 in messages, as people count."""
    from keyresponse import targets

    which = f"keys.{loc[1]}: target #{loc[3] + 1} ({t.kind})"
    platform_kind, platform = t.platform_kind, t.platform_name()
    if platform_kind is not None and platform is not None:
        entry = model.platforms.get(platform)
        if entry is None or entry.kind != platform_kind:
            needed = ", ".join(f"{f}: ..." for f, info in targets.platform_model(platform_kind).model_fields.items()
                               if info.is_required() and f != "kind")
            raise doc.error(
                loc,
                f"{which} uses platform {platform!r}, which is not a {platform_kind} entry under `platforms:`",
                hint=f"add `platforms: {{{platform}: {{kind: {platform_kind}" + (f", {needed}" if needed else "") + "}}`",
            )
    for found in t.problems_at(root):
        problem = found if isinstance(found, Problem) else Problem(found)
        raise doc.error(loc + ((problem.field,) if problem.field else ()), f"{which}: {problem.message}",
                        hint=problem.hint)


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
