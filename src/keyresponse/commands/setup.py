"""`keyresponse init`: a commented inventory from the keys the provider lists, and a drill workflow."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from keyresponse.errors import UsageError

WORKFLOW = """\
# Runs `keyresponse drill --all` every Monday and on demand. It changes nothing:
# every step of the leaked-key playbook is planned and preflighted, and the job
# fails (exit 1) with one line per problem if a response would not work today.
name: keyresponse drill
on:
  schedule:
    - cron: "17 6 * * 1"
  workflow_dispatch: {{}}
permissions:
  contents: read
jobs:
  drill:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      # keyresponse from a pinned source only, never a bare name from a package index: this job
      # holds the organization's admin key, and whoever publishes that name would run here.
      - run: pip install "{install}"
      - run: keyresponse drill --all --config {config}
        env:
{env}
      - run: keyresponse drill --history --config {config}
        if: always()
"""


def _env_names(inventory: Any) -> list[str]:
    """The credentials a drill uses (admin keys, platform and Slack tokens, whatever field
    names their kinds give them), not the keys' own live values (`secret_env`)."""
    model = inventory.model
    live = {k.secret_env for k in model.keys.values() if k.secret_env}
    return sorted(set(model.credential_env_names()) - live)


_PINNED = re.compile(
    r"\.|\./\S*"                                               # this repository, checked out at the run's commit
    r"|git\+https://\S+@([0-9a-f]{40}|\$\{\{ github\.sha \}\})"   # a repository at a full commit
)


def install_source(spec: str | None) -> str:
    """What the drill workflow installs: `spec` if it is pinned, else the commit this copy of
    keyresponse was installed from (PEP 610 `direct_url.json`), else the checked-out repository."""
    if spec is not None:
        if not _PINNED.fullmatch(spec):
            raise UsageError(
                f"--install {spec!r} is not pinned: the workflow runs with the organization's admin key, "
                "so it installs keyresponse only from a fixed source",
                hint='give a repository at a full commit, e.g. --install "git+https://github.com/ORG/keyresponse@'
                     '<40-hex sha>", or `.` for the repository the workflow runs in')
        return spec
    import json
    from importlib import metadata

    try:
        direct = json.loads(metadata.distribution("keyresponse").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        direct = {}
    vcs = direct.get("vcs_info") or {}
    url, commit = str(direct.get("url", "")), str(vcs.get("commit_id", ""))
    if vcs.get("vcs") == "git" and url.startswith("https://") and re.fullmatch(r"[0-9a-f]{40}", commit):
        return f"git+{url}@{commit}"
    return "."


def init(folder: Path, base_url: str, admin_key_env: str, ci: str | None, force: bool,
         install: str | None = None) -> int:
    from keyresponse.inventory import Inventory, LoadedInventory
    from keyresponse.journal import Incident  # noqa: F401 - keeps the import graph honest
    from keyresponse.providers.openai import OpenAISettings

    config = folder / "keyresponse.yaml"
    if config.exists() and not force:
        raise UsageError(f"{config} exists", hint="pass --force to overwrite it, or edit it by hand")
    if ci is not None and ci != "github":
        raise UsageError(f"--ci {ci}: only `github` is supported; see the README for cron and Kubernetes")
    if install is not None:
        install_source(install)  # a bad --install is refused before anything is written
    provider = OpenAISettings(base_url=base_url, admin_key_env=admin_key_env)
    probe_inventory = LoadedInventory(Inventory(providers={"openai": provider}), None)
    import os

    keys: list[dict[str, Any]] = []
    note = f"# {admin_key_env} was not set: add your keys under `keys:` by hand, or set it and re-run init.\n"
    has_admin_key = bool(os.environ.get(admin_key_env))
    if has_admin_key:
        from keyresponse.commands.keys import list_keys

        keys = list_keys(probe_inventory)
        note = f"# {len(keys)} key(s) found through the organization API. Add each key's targets.\n"
    text = _render_inventory(base_url, admin_key_env, keys, note)
    config.write_text(text)
    print(f"wrote {config}")
    if keys:
        print(f"  {len(keys)} key(s), each with no targets yet (`targets: []`): list where each key is deployed,\n"
              "  or a leaked-key response revokes it and restores nothing (a drill fails such a key)")
    elif has_admin_key:
        print("  the admin key sees no keys: add yours under `keys:` by hand")
    if ci == "github":
        from keyresponse.inventory import load_inventory

        inventory = load_inventory(config)
        # GitHub refuses secret names starting with GITHUB_, and the job's own GITHUB_TOKEN
        # cannot write other repositories' secrets: such variables come from KEYRESPONSE_<NAME>.
        secrets = {n: (f"KEYRESPONSE_{n}" if n.upper().startswith("GITHUB_") else n) for n in _env_names(inventory)}
        env = "\n".join(f"          {n}: ${{{{ secrets.{s} }}}}" for n, s in secrets.items())
        wf = folder / ".github" / "workflows" / "keyresponse-drill.yml"
        wf.parent.mkdir(parents=True, exist_ok=True)
        source = install_source(install)
        wf.write_text(WORKFLOW.format(config=config.name, env=env, install=source))
        print(f"wrote {wf} (add {', '.join(secrets.values())} as repository secrets)")
        print(f"  it installs keyresponse with `pip install \"{source}\"`"
              + (" (this repository at the commit the workflow runs)" if source == "." else "")
              + "; change it with --install")
    if not has_admin_key:
        print(f"next: {admin_key_env} is not set, so no keys were listed: set it to an admin key and run "
              "`keyresponse init --force`, or add your keys by hand; then `keyresponse validate`")
    else:
        print("next: add each key's targets, then `keyresponse validate`, then `keyresponse drill --all`")
    return 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower() or "key"


def _render_inventory(base_url: str, admin_key_env: str, keys: list[dict[str, Any]], note: str) -> str:
    lines = [
        "# keyresponse inventory: which keys exist and every place each one lives.",
        "# Credentials are never written here, only the names of the env vars that hold them.",
        "# Reference: README.md (Configuration); schema: `keyresponse schema inventory`.",
        "version: 1",
        "providers:",
        "  openai:",
        "    kind: openai",
        f"    admin_key_env: {admin_key_env}",
    ]
    if base_url != "https://api.openai.com/v1":
        lines.append(f"    base_url: {base_url}")
    lines += [
        "platforms:",
        "  github: {kind: github, token_env: GITHUB_TOKEN}",
        "  # gitlab: {kind: gitlab, token_env: GITLAB_TOKEN}",
        "# notify:",
        "#   slack: {token_env: SLACK_BOT_TOKEN, channel: \"#incidents\", drill_channel: \"#keyresponse-drills\"}",
        note.rstrip(),
        "keys:" if keys else "keys: {}",
    ]
    used: set[str] = set()
    for k in keys:
        name = _slug(k.get("name") or k.get("key_id") or "key")
        while name in used:
            name += "-2"
        used.add(name)
        lines += [
            f"  {name}:",
            f"    # {k.get('redacted_value') or ''} owned by {k.get('owner_type') or '?'} "
            f"{k.get('owner_id') or ''}; last used {k.get('last_used_at') or 'never'}",
            "    provider: openai",
            f"    project: {k.get('project_id')}",
            f"    key_id: {k.get('key_id')}",
            "    targets: []",
            "    # targets:",
            "    #   - {kind: envfile, path: app/.env, variables: [OPENAI_API_KEY]}",
            "    #   - {kind: github, repo: owner/repo, secret: OPENAI_API_KEY}",
        ]
    return "\n".join(lines) + "\n"


SERVE_SECTION = """\
serve:
  github: {secret_env: GITHUB_WEBHOOK_SECRET}
  gitguardian: {secret_env: GITGUARDIAN_WEBHOOK_TOKEN, max_age_seconds: 300}
  generic: {secret_env: KEYRESPONSE_WEBHOOK_TOKEN}
  # slack_signing_secret_env: SLACK_SIGNING_SECRET   # for `action: ask`
  rules:
    - {sources: [github, gitguardian, generic], secret_types: ["*openai*"], action: auto}
"""


def init_serve(folder: Path, public_url: str) -> int:
    """`keyresponse init --serve`: the `serve:` section and how to point each scanner at it.
    Prints no secret: each is generated straight into an environment variable."""
    config = folder / "keyresponse.yaml"
    base = public_url.rstrip("/")
    has_section = config.exists() and any(line.startswith("serve:") for line in config.read_text().splitlines())
    gen = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    print("1. The receiver's section of keyresponse.yaml"
          + (" (already there):" if has_section else f" (add it to {config}):"))
    if not has_section:
        print("\n" + SERVE_SECTION)
    print("2. Secrets: generate each into the service's environment (never into the file):\n"
          f"     export GITHUB_WEBHOOK_SECRET={gen}\n"
          f"     export GITGUARDIAN_WEBHOOK_TOKEN={gen}\n"
          f"     export KEYRESPONSE_WEBHOOK_TOKEN={gen}\n"
          "3. GitHub: repository or organization Settings > Webhooks > Add webhook\n"
          f"     Payload URL   {base}/webhooks/github\n"
          "     Content type  application/json\n"
          "     Secret        the value of GITHUB_WEBHOOK_SECRET\n"
          "     Events        Secret scanning alerts, Secret scanning alert locations\n"
          "4. GitGuardian: Settings > Integrations > Destinations > Custom webhook\n"
          f"     URL              {base}/webhooks/gitguardian\n"
          "     Signature token  the value of GITGUARDIAN_WEBHOOK_TOKEN\n"
          "     Events           Incident triggered, Incident regression, New occurrence\n"
          "5. CI (gitleaks, TruffleHog, detect-secrets): post the report\n"
          f"     curl -sf -H \"Authorization: Bearer $KEYRESPONSE_WEBHOOK_TOKEN\" -H 'Content-Type: application/json' \\\n"
          f"          --data-binary @gitleaks.json {base}/webhooks/generic\n"
          "6. Run it:  keyresponse serve --host 0.0.0.0 --port 8080   (health: /healthz, metrics: /metrics)")
    return 0
