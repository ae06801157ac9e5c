"""Setting up: `keys` lists the organization, `init` writes an inventory and a drill workflow."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from keyresponse.inventory import load_inventory
from tests.e2e.conftest import World


def test_keys_lists_the_organization(world: World) -> None:
    out = world.kr("keys", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    truth = world.sandbox.state.truth
    leaked = next(r for r in rows if r["key_id"] == truth["leaked_key_id"])
    assert leaked["inventory"] == "chatbot-prod" and leaked["redacted_value"].startswith("sk-proj-")
    assert world.sandbox.env["SANDBOX_LEAKED_KEY"] not in out.stdout


def test_init_writes_a_valid_inventory_and_workflow(world: World) -> None:
    fresh = world.dir / "fresh"
    fresh.mkdir()
    base = world.sandbox.urls["openai"]
    out = world.kr("init", "--base-url", base, "--ci", "github", cwd=fresh)
    assert out.returncode == 0, out.stderr
    inventory = load_inventory(fresh / "keyresponse.yaml")
    ids = {k.key_id for k in inventory.model.keys.values()}
    assert world.sandbox.state.truth["leaked_key_id"] in ids
    workflow = yaml.safe_load((fresh / ".github" / "workflows" / "keyresponse-drill.yml").read_text())
    steps = workflow["jobs"]["drill"]["steps"]
    drill = next(s for s in steps if "drill --all" in s.get("run", ""))
    assert drill["env"]["OPENAI_ADMIN_KEY"] == "${{ secrets.OPENAI_ADMIN_KEY }}"
    assert drill["env"]["GITHUB_TOKEN"] == "${{ secrets.KEYRESPONSE_GITHUB_TOKEN }}"
    assert workflow[True]["schedule"][0]["cron"]  # PyYAML reads the key `on` as True
    # never a bare name from an index this project has not published to: pinned source only
    installs = [s["run"] for s in steps if "pip install" in s.get("run", "")]
    assert installs and all(_pinned(cmd) for cmd in installs), installs
    again = world.kr("init", "--base-url", base, cwd=fresh)
    assert again.returncode == 2 and "--force" in again.stderr


def test_sandbox_flag_runs_against_a_fresh_sandbox_here(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    env["PYTHONPATH"] = str(REPO)
    for args in (["drill", "--all", "--sandbox", "--json"],
                 ["run", "rotate", "--key", "chatbot-prod", "--sandbox", "--yes", "--json"]):
        out = subprocess.run([sys.executable, "-m", "keyresponse", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.splitlines()[-1])["ok"]
    assert (tmp_path / "keyresponse.yaml").is_file() and (tmp_path / ".keyresponse" / "drills").is_dir()


def test_demo_runs_a_whole_incident_in_an_empty_folder(world: World) -> None:
    folder = world.dir / "newcomer"
    folder.mkdir()
    out = world.kr("demo", cwd=folder, env={k: "" for k in world.sandbox.env})  # needs no credentials of yours
    assert out.returncode == 0, out.stderr[-3000:]
    summary = out.stderr[out.stderr.index("── incident "):]
    assert "revoked, probe says dead" in summary and "probe says live" in summary
    assert "targets      6/6 updated" in summary
    assert f"inventory    {folder / 'keyresponse.yaml'}\n               keys.chatbot-prod.key_id: " in summary
    assert "next         open the HTML report" in summary
    assert "anomalous hours, first at" in summary
    reports = [line.split()[-1] for line in summary.splitlines() if line.strip().startswith("report ")]
    assert reports and all(Path(p).is_file() for p in reports)


def test_init_validate_drill_is_a_first_setup_that_works(world: World) -> None:
    fresh = world.dir / "first"
    fresh.mkdir()
    out = world.kr("init", "--base-url", world.sandbox.urls["openai"], cwd=fresh)
    assert out.returncode == 0, out.stderr
    assert "no targets" in out.stdout and "`keyresponse validate`" in out.stdout
    assert world.kr("validate", cwd=fresh).returncode == 0
    drilled = world.kr("drill", "--all", "--json", cwd=fresh)
    result = json.loads(drilled.stdout.splitlines()[-1])
    problems = [p for d in result["drills"] for p in d["problems"]]
    assert not [p for p in problems if "slack" in p.lower()], problems  # Slack is commented out: skipped
    assert "Slack" in (result.get("warning") or ""), result.get("warning")
    names = [d["key"] for d in result["drills"]]
    flagged = {d["key"] for d in result["drills"] if any("no targets" in p for p in d["problems"])}
    assert flagged == set(names) and drilled.returncode == 1  # a response would restore nothing

    # give one key a target: its drill now passes
    (fresh / "app.env").write_text("OPENAI_API_KEY=placeholder\n")
    text = (fresh / "keyresponse.yaml").read_text()
    first = names[0]
    head, sep, rest = text.partition(f"\n  {first}:\n")
    rest = rest.replace("    targets: []", "    targets:\n      - {kind: envfile, path: app.env, variables: [OPENAI_API_KEY]}", 1)
    (fresh / "keyresponse.yaml").write_text(head + sep + rest)
    one = world.kr("drill", "--key", first, "--json", cwd=fresh)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-2000:]


def test_init_without_an_admin_key_does_not_send_you_to_a_drill(world: World) -> None:
    fresh = world.dir / "nokey"
    fresh.mkdir()
    out = world.kr("init", "--base-url", world.sandbox.urls["openai"], cwd=fresh, env={"OPENAI_ADMIN_KEY": ""})
    assert out.returncode == 0, out.stderr
    assert "drill" not in out.stdout
    assert "OPENAI_ADMIN_KEY" in out.stdout and "init --force" in out.stdout


def _pinned(command: str) -> bool:
    import re
    import shlex

    specs = [a for a in shlex.split(command)[2:] if not a.startswith("-")]
    return bool(specs) and all(
        spec == "." or re.fullmatch(r"git\+https://\S+@([0-9a-f]{40}|\$\{\{ github\.sha \}\})", spec)
        for spec in specs)


def test_init_refuses_an_unpinned_install(world: World) -> None:
    fresh = world.dir / "unpinned"
    fresh.mkdir()
    out = world.kr("init", "--base-url", world.sandbox.urls["openai"], "--ci", "github",
                   "--install", "keyresponse", cwd=fresh)
    assert out.returncode == 2 and "pinned" in out.stderr
    sha = "0123456789abcdef" * 2 + "01234567"
    ok = world.kr("init", "--base-url", world.sandbox.urls["openai"], "--ci", "github", "--force",
                  "--install", f"git+https://github.com/acme/keyresponse@{sha}", cwd=fresh)
    assert ok.returncode == 0, ok.stderr
    assert f'pip install "git+https://github.com/acme/keyresponse@{sha}"' in (
        fresh / ".github" / "workflows" / "keyresponse-drill.yml").read_text()


def test_readme_installs_only_pinned_sources() -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert "pip install keyresponse" not in readme
