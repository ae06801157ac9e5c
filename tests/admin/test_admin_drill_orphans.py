"""The drill's orphan check reads the admin playbook's mint intents too: a run killed right
after its admin-key mint took effect (the answer heard, not yet journaled) leaves a live
admin key no target holds; `keyresponse drill` names it, read-only."""

from __future__ import annotations

from tests.admin.conftest import own_admin
from tests.e2e.conftest import World


def test_drill_reports_a_live_admin_mint_no_target_holds(admin_world: World) -> None:
    world, sandbox = admin_world, admin_world.sandbox
    seeded = set(sandbox.state.admin_keys)
    killed = world.kr("run", "leaked-admin-key", "--key", "org-admin", "--yes",
                      env={"KEYRESPONSE_CRASH_AT": "admin_key.issue:after-mint"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    (orphan,) = [a for k, a in sandbox.state.admin_keys.items() if k not in seeded and a["live"]]
    (folder,) = (world.dir / ".keyresponse" / "incidents").iterdir()

    before = {k: a["live"] for k, a in sandbox.state.admin_keys.items()}
    drill = world.kr("drill", "--key", "org-admin")
    assert drill.returncode != 0, drill.stdout[-3000:]
    shown = drill.stdout + drill.stderr
    assert f"orphans: admin key {orphan['id']} ({orphan['name']})" in shown, shown[-3000:]
    assert f"keyresponse resume {folder.name}" in shown
    assert {k: a["live"] for k, a in sandbox.state.admin_keys.items()} == before, "the drill changed admin keys"
    assert own_admin(sandbox)["live"]
