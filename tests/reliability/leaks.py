"""The leak hunt: every artifact a test produced, searched for every secret value in
every form a careless writer could give it (raw, JSON-escaped, URL-encoded, base64 at
each alignment, hex), plus detect-secrets with a plugin for OpenAI key shapes."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

PLUGIN = Path(__file__).with_name("openai_keys_plugin.py")
MIN_SECRET = 12  # shorter values (a test's "x") would match by chance


def forms(value: str) -> Iterator[tuple[str, str]]:
    """(encoding, text) for every form of `value` the hunt looks for."""
    raw = value.encode()
    yield "raw", value
    yield "json", json.dumps(value, ensure_ascii=False)[1:-1]
    yield "json-ascii", json.dumps(value, ensure_ascii=True)[1:-1]
    yield "url", quote(value, safe="")
    yield "url-plus", quote_plus(value)
    yield "hex", raw.hex()
    yield "HEX", raw.hex().upper()
    # base64 of a text that contains the value: the value starts at one of three alignments
    # within a 3-byte group; for each, the groups wholly inside the value are a fixed string
    for skip in range(3):
        body = raw[skip:]
        whole = len(body) // 3 * 3
        if whole < 12:
            continue
        for name, enc in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            yield f"{name}+{skip}", enc(body[:whole]).decode()


@dataclass
class Hit:
    artifact: str
    secret: str  # the secret's label, never its value
    encoding: str

    def __str__(self) -> str:
        return f"{self.artifact}: {self.secret} ({self.encoding})"


@dataclass
class LeakHunt:
    """What a test registers; `check()` searches it all (the fixture calls it at teardown)."""

    workdir: Path
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # label -> value
    texts: dict[str, str] = field(default_factory=dict, repr=False)  # artifact name -> text
    folders: list[tuple[Path, tuple[str, ...]]] = field(default_factory=list)
    sandboxes: list[Any] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def secret(self, label: str, value: str) -> None:
        if len(value) >= MIN_SECRET:
            with self._lock:
                self.secrets[label] = value

    def text(self, name: str, text: str) -> None:
        with self._lock:
            self.texts[name] = text

    def folder(self, path: Path, *, exclude: tuple[str, ...] = ()) -> None:
        """Every file under `path`, but those whose path relative to it matches an `exclude`
        glob (the targets, which must hold the key; the test's own credentials file)."""
        with self._lock:
            self.folders.append((path, exclude))

    def sandbox(self, sb: Any) -> None:
        """Its credentials and every key value it ever held; its Slack messages as an artifact.
        Read at check time, so keys minted later count too."""
        with self._lock:
            self.sandboxes.append(sb)

    def snapshot(self, sb: Any, tag: str) -> None:
        """Like `sandbox`, read now: for a sandbox about to be reset for the next case."""
        state = sb.state
        with self._lock:
            for name, value in state.credentials.items():
                if len(value) >= MIN_SECRET:
                    self.secrets[f"{tag}:{name}"] = value
            for key_id, key in state.keys.items():
                self.secrets[f"{tag}:key {key_id}"] = str(key["value"])
            self.texts[f"{tag}: Slack messages"] = json.dumps(state.slack_messages)

    def _collect(self) -> tuple[dict[str, str], dict[str, Path | str]]:
        secrets = dict(self.secrets)
        artifacts: dict[str, Path | str] = dict(self.texts)
        for i, sb in enumerate(self.sandboxes):
            state = sb.state
            for name, value in state.credentials.items():
                if len(value) >= MIN_SECRET:
                    secrets[f"sandbox{i}:{name}"] = value
            for key_id, key in state.keys.items():
                secrets[f"sandbox{i}:key {key_id}"] = str(key["value"])
            artifacts[f"sandbox{i}: Slack messages"] = json.dumps(state.slack_messages)
        for root, exclude in self.folders:
            if not root.is_dir():
                continue
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root)
                if p.is_file() and not p.is_symlink() and not any(rel.match(g) for g in exclude):
                    artifacts[str(p)] = p
        return secrets, artifacts

    def check(self) -> list[Hit]:
        secrets, artifacts = self._collect()
        labels: dict[str, str] = {}  # value -> its first label: a seeded sandbox holds the same values every case
        for label, value in secrets.items():
            labels.setdefault(value, label)
        needles = [(label, enc, text) for value, label in labels.items() for enc, text in forms(value)]
        hits: list[Hit] = []
        spill = self.workdir / "leak-hunt"
        spill.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for n, (name, art) in enumerate(artifacts.items()):
            if isinstance(art, Path):
                data = art.read_bytes().decode("utf-8", "replace")
                files[name] = art
            else:
                data = art
                files[name] = spill / f"artifact-{n}.txt"
                files[name].write_text(art)
            for label, enc, text in needles:
                if text in data:
                    hits.append(Hit(name, label, enc))
        hits.extend(detect_secrets_hits(files))
        return hits


def detect_secrets_hits(files: dict[str, Path]) -> list[Hit]:
    """detect-secrets with only the OpenAI key plugin: a key shape anywhere is a hit."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import transient_settings

    hits = []
    config = {"plugins_used": [{"name": "OpenAIKeyDetector", "path": f"file://{PLUGIN}"}]}
    with _DETECT_SECRETS, transient_settings(config):  # its settings are process-wide
        for name, path in files.items():
            for found in scan_file(str(path)):
                hits.append(Hit(f"{name}:{found.line_number}", f"detect-secrets: {found.type}", "key shape"))
    return hits


_DETECT_SECRETS = threading.Lock()
