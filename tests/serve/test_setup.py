"""`keyresponse init --serve` prints a section that loads and the URLs to give each scanner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO


def test_init_serve_prints_a_valid_section_and_the_urls(tmp_path: Path) -> None:
    from keyresponse.commands.setup import SERVE_SECTION
    from keyresponse.inventory import Inventory, rebuild_models

    out = subprocess.run([sys.executable, "-m", "keyresponse", "init", "--serve", "--public-url", "https://kr.acme.test/"],
                         cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for path in ("/webhooks/github", "/webhooks/gitguardian", "/webhooks/generic"):
        assert f"https://kr.acme.test{path}" in out.stdout
    assert not (tmp_path / "keyresponse.yaml").exists()
    rebuild_models()
    settings = Inventory.model_validate(yaml.safe_load(SERVE_SECTION)).serve
    assert settings.github is not None and settings.github.secret_env == "GITHUB_WEBHOOK_SECRET"


def test_demo_serve_contains_the_key_with_no_command_typed(tmp_path: Path) -> None:
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRESPONSE_")}
    out = subprocess.run([sys.executable, "-m", "keyresponse", "demo", "--serve"], cwd=tmp_path, capture_output=True,
                         text=True, env={**env, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded" and Path(result["report"]).is_file()
    assert '"event": "key.revoked"' in out.stderr
