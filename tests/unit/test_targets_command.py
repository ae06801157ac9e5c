"""command target: the secret reaches the child on stdin or in its env, never argv."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from keyresponse.errors import TargetError
from keyresponse.targets.command import Command, CommandTarget
from tests.helpers.target_contract import check_equal, check_in, check_not_in, new_secret, run_target

# The child proves what it received by writing its sha256, and waits for a release
# file so the test can read /proc while it runs.
CHILD = """
import hashlib, os, sys, time
out = sys.argv[1]
value = sys.stdin.read() if sys.argv[2] == "stdin" else os.environ["KR_VALUE"]
open(out + ".pid.tmp", "w").write(str(os.getpid()))
os.replace(out + ".pid.tmp", out + ".pid")  # whole: the test reads it as soon as it exists
deadline = time.time() + 10
while not os.path.exists(out + ".release") and time.time() < deadline:
    time.sleep(0.01)
open(out, "w").write(hashlib.sha256(value.encode()).hexdigest())
"""


def command(tmp_path: Path, argv: list[str], **cfg: Any) -> Command:
    return Command(CommandTarget(kind="command", argv=argv, **cfg), tmp_path)


def all_cmdlines() -> str:
    texts = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                texts.append((entry / "cmdline").read_bytes().decode("utf-8", "replace"))
            except OSError:
                pass
    return "\n".join(texts)


@pytest.mark.parametrize("via", ["stdin", "env"])
def test_secret_never_in_any_argv_while_the_child_runs(tmp_path: Path, via: str) -> None:
    out = tmp_path / "received"
    secret = new_secret()
    t = command(tmp_path, [sys.executable, "-c", CHILD, str(out), via], secret_via=via, env_name="KR_VALUE",
                timeout=20)
    errors: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(errors, run_target, t, secret))
    worker.start()
    pid_file = Path(str(out) + ".pid")
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = int(pid_file.read_text())
    check_not_in(secret.reveal(), (Path(f"/proc/{pid}/cmdline")).read_bytes().decode(), "the child's argv")
    check_not_in(secret.reveal(), all_cmdlines(), "some process's argv")
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
    (check_in if via == "env" else check_not_in)(secret.reveal(), environ, "the child's environment")
    Path(str(out) + ".release").touch()
    worker.join(20)
    assert not errors, errors
    assert out.read_text() == hashlib.sha256(secret.reveal().encode()).hexdigest()  # exactly, no newline


def _catch(errors: list[BaseException], fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - reported by the test thread
        errors.append(exc)


def test_failure_reports_exit_code_and_redacted_output(tmp_path: Path) -> None:
    secret = new_secret()
    t = command(tmp_path, ["/bin/sh", "-c", 'v=$(cat); echo "rejected $v" >&2; exit 3'])
    with pytest.raises(TargetError) as info:
        t.write(secret)
    text = str(info.value)
    assert "exited with 3" in text and "rejected sk-proj-…" in text
    check_not_in(secret.reveal(), text, "the error message")


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-survived"
    t = command(tmp_path, [f"(sleep 1.5; touch {marker}) & sleep 30"], shell=True, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"timed out after 0\.5s"):
        t.write(new_secret())
    assert time.monotonic() - started < 5
    time.sleep(1.5)
    assert not marker.exists()


def test_no_shell_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command(tmp_path, ["/bin/echo", f"$HOME > {out}"]).write(new_secret())
    assert not out.exists()  # argv went to echo literally, no shell parsed it
    command(tmp_path, [f"cat > {out}"], shell=True).write(secret := new_secret())
    check_in(secret.reveal(), out.read_text(), "the file the shell wrote")


def test_preflight_finds_missing_programs(tmp_path: Path) -> None:
    t = command(tmp_path, ["no-such-program-kr"], restart_argv=["also-missing-kr"])
    checks = t.preflight()
    assert [c.ok for c in checks] == [False, False]
    assert "not an executable on PATH" in checks[0].detail and checks[1].fix
    ok = command(tmp_path, ["true"], verify_argv=["true"], restart_argv=["true"], name="noop")
    run = run_target(ok, new_secret())
    assert run.description == "command noop" and run.verified is True
    assert ok.restart() is True and command(tmp_path, ["true"]).restart() is None
    assert run_target(command(tmp_path, ["true"]), new_secret()).verified is False


def test_verify_argv_gets_the_secret_too(tmp_path: Path) -> None:
    secret = new_secret()
    good = tmp_path / "expected"
    good.write_text(secret.reveal())
    check = [sys.executable, "-c", f"import sys; sys.exit(sys.stdin.read() != open({str(good)!r}).read())"]
    run_target(command(tmp_path, ["true"], verify_argv=check), secret)
    with pytest.raises(TargetError, match="verify_argv exited with 1"):
        command(tmp_path, ["true"], verify_argv=check).verify(new_secret())
    assert os.environ.get("KEYRESPONSE_SECRET") is None  # the parent's env never holds it


def test_the_child_does_not_inherit_keyresponse_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyresponse.secret import REDACTOR

    admin = "sk-" + "admin-" + "FAKE" + "x" * 24
    REDACTOR.add(admin)  # as inventory.credential() does for every credential it reads
    monkeypatch.setenv("OPENAI_ADMIN_KEY", admin)
    monkeypatch.setenv("HARMLESS_SETTING", "kept")
    out = tmp_path / "env.txt"
    secret = new_secret()
    command(tmp_path, [sys.executable, "-c", f"import os; open({str(out)!r}, 'w').write(repr(dict(os.environ)))"],
            secret_via="env", env_name="APP_KEY").write(secret)
    seen = out.read_text()
    check_not_in(admin, seen)
    check_in(secret.reveal(), seen)
    assert "HARMLESS_SETTING" in seen


def test_the_child_gets_no_env_var_the_inventory_names_as_a_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through targets.deploy, as a run does it: the child must not see a credential the
    inventory names, even one no earlier step has read (so the redactor does not know it)."""
    from keyresponse.actions.targets import Deploy, DeployArgs
    from tests.helpers.target_contract import make_ctx

    names = ["KR_T_ADMIN", "KR_T_GITHUB", "KR_T_GITLAB", "KR_T_SLACK", "KR_T_LIVE", "KR_T_OTHER_LIVE"]
    for name in names:
        monkeypatch.setenv(name, "unused-" + name.lower())  # not shaped like anything the redactor knows
    monkeypatch.setenv("HARMLESS_SETTING", "kept")
    dump = tmp_path / "env.json"
    inventory = {
        "providers": {"openai": {"kind": "openai", "admin_key_env": "KR_T_ADMIN"}},
        "platforms": {"github": {"kind": "github", "token_env": "KR_T_GITHUB"},
                      "gitlab": {"kind": "gitlab", "token_env": "KR_T_GITLAB"}},
        "notify": {"slack": {"token_env": "KR_T_SLACK", "channel": "#incidents"}},
        "keys": {
            "k": {"secret_env": "KR_T_LIVE", "targets": [{
                "kind": "command", "name": "dump", "secret_via": "env", "env_name": "APP_KEY",
                "argv": [sys.executable, "-c", f"import json, os; open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))"],
            }]},
            "other": {"secret_env": "KR_T_OTHER_LIVE"},
        },
    }
    ctx, _ = make_ctx(tmp_path, inventory)
    secret = new_secret()
    out = Deploy().apply(Deploy().plan(DeployArgs(secret=secret), ctx), ctx)
    assert out["failed"] == 0, out
    import json

    seen = json.loads(dump.read_text())
    assert [n for n in names if n in seen] == []
    assert seen["HARMLESS_SETTING"] == "kept"
    check_equal(seen["APP_KEY"], secret.reveal())
