"""The leak hunt itself: a planted value is found in every form it looks for, at every
base64 alignment, and by detect-secrets' OpenAI key plugin; a redacted mask is not."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import fake_key
from tests.reliability.leaks import LeakHunt, forms


@pytest.mark.parametrize("encoding", ["raw", "json", "url", "hex", "HEX", "base64", "base64url"])
@pytest.mark.parametrize("skip", [0, 1, 2])
def test_a_planted_value_is_found(tmp_path: Path, encoding: str, skip: int) -> None:
    value = fake_key("hunt") + "/+é\""  # characters that JSON, URL and base64 each write differently
    body = ("x" * skip + value + "tail").encode()
    text = {
        "raw": body.decode(), "json": json.dumps(body.decode()), "url": quote(body.decode(), safe=""),
        "hex": body.hex(), "HEX": body.hex().upper(), "base64": base64.b64encode(body).decode(),
        "base64url": base64.urlsafe_b64encode(body).decode(),
    }[encoding]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "artifact.log").write_text(f"before {text} after\n")
    hunt = LeakHunt(tmp_path)
    hunt.secret("planted", value)
    hunt.folder(tmp_path / "out")
    assert any(h.secret == "planted" for h in hunt.check()), f"{encoding} at offset {skip} was missed"


def test_detect_secrets_finds_openai_key_shapes_and_not_masks(tmp_path: Path) -> None:
    hunt = LeakHunt(tmp_path)
    for kind in ("proj-", "admin-", "svcacct-", ""):
        hunt.text(kind or "legacy", "token: sk-" + kind + fake_key(kind or "legacy").split("FAKE", 1)[1] + "\n")
    hunt.text("mask", "revoked sk-proj…wxyz and sk-admin…abcd\n")
    hits = hunt.check()
    found = {h.artifact.split(":")[0] for h in hits}
    assert found == {"proj-", "admin-", "svcacct-", "legacy"}, hits


def test_every_form_is_long_enough_to_mean_something() -> None:
    assert all(len(text) >= 12 for _, text in forms(fake_key("x")))
