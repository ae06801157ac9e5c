"""envfile target on real files: formatting kept, refusals, atomicity under kill -9."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyresponse.errors import TargetError
from keyresponse.targets.dotenv import edit, parse
from keyresponse.targets.envfile import EnvFile, EnvFileTarget
from tests.helpers.target_contract import check_equal, check_in, check_not_in, new_secret, run_target


def target(root: Path, path: str = ".env", variables: tuple[str, ...] = ("OPENAI_API_KEY",), **kw: object) -> EnvFile:
    return EnvFile(EnvFileTarget(kind="envfile", path=path, variables=list(variables), **kw), root)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "keyresponse-tmp" in p.name)


SAMPLE = (
    "# chatbot settings\n"
    "\n"
    "APP_ENV=production   # inline\n"
    "export OPENAI_API_KEY='sk-old-value-0000000000'  # rotated by keyresponse\n"
    'DATABASE_URL="postgres://u:p@db/app"\n'
    "  INDENTED = bare value\n"
    "EMPTY=\n"
)


def test_edit_keeps_every_other_byte(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(SAMPLE)
    secret = new_secret()
    run = run_target(target(tmp_path), secret)
    assert run.verified is True
    expected = SAMPLE.replace("sk-old-value-0000000000", secret.reveal())
    check_equal(env.read_text(), expected)  # export, single quotes, comment, other lines: unchanged
    check_not_in(secret.reveal(), run.note or "", "the diff note")
    assert "'sk-proj-…" in (run.note or "") and "'sk-old-…0000'" in (run.note or "")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("line, expected", [
    ('OPENAI_API_KEY="old"\n', 'OPENAI_API_KEY="{v}"\n'),
    ("OPENAI_API_KEY=old # c\n", "OPENAI_API_KEY={v} # c\n"),
    ("export OPENAI_API_KEY = 'old'\n", "export OPENAI_API_KEY = '{v}'\n"),
    ("OPENAI_API_KEY\n", "OPENAI_API_KEY={v}\n"),
    ("OPENAI_API_KEY=old", "OPENAI_API_KEY={v}"),  # no final newline: none added
])
def test_quoting_styles(tmp_path: Path, line: str, expected: str) -> None:
    (tmp_path / ".env").write_text(line)
    secret = new_secret()
    target(tmp_path).write(secret)
    check_equal((tmp_path / ".env").read_text(), expected.format(v=secret.reveal()))


def test_crlf_file_keeps_crlf_and_appends_with_crlf(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"A=1\r\nOPENAI_API_KEY=old\r\nB=2\r\n")
    secret = new_secret()
    target(tmp_path, variables=("OPENAI_API_KEY", "NEW_VAR")).write(secret)
    v = secret.reveal().encode()
    check_equal(env.read_bytes(), b"A=1\r\nOPENAI_API_KEY=" + v + b"\r\nB=2\r\nNEW_VAR=" + v + b"\r\n")


def test_missing_variable_is_added_or_refused(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1")  # no final newline
    secret = new_secret()
    note = target(tmp_path).write(secret)
    check_equal(env.read_text(), f"A=1\nOPENAI_API_KEY={secret.reveal()}\n")
    assert note and "(added)" in note
    env.write_text("A=1\n")
    refusing = target(tmp_path, create=False)
    [check] = refusing.preflight()
    assert not check.ok and "not in the file" in check.detail and check.fix
    with pytest.raises(TargetError, match="not in the file"):
        refusing.write(secret)
    assert env.read_text() == "A=1\n"


def test_duplicates_all_updated(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=a\nX=1\nOPENAI_API_KEY=b\n")
    secret = new_secret()
    target(tmp_path).write(secret)
    assert (tmp_path / ".env").read_text().count(secret.reveal()) == 2


def test_read_only_file_refused_and_untouched(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(SAMPLE)
    env.chmod(0o444)
    before = env.stat()
    t = target(tmp_path)
    [check] = t.preflight()
    assert not check.ok and "read-only" in check.detail and "chmod u+w" in (check.fix or "")
    with pytest.raises(TargetError, match="read-only"):
        t.write(new_secret())
    after = env.stat()
    assert env.read_text() == SAMPLE and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert stat.S_IMODE(after.st_mode) == 0o444 and leftovers(tmp_path) == []


def test_mode_and_owner_kept_never_widened(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_KEY=x\n")
    env.chmod(0o640)
    before = env.stat()
    target(tmp_path).write(new_secret())
    after = env.stat()
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced atomically, not rewritten in place


def test_new_file_is_private(tmp_path: Path) -> None:
    target(tmp_path, path="sub/.env.new")
    (tmp_path / "sub").mkdir()
    secret = new_secret()
    run_target(target(tmp_path, path="sub/.env.new"), secret)
    assert stat.S_IMODE((tmp_path / "sub/.env.new").stat().st_mode) == 0o600


def test_symlink_escape_refused_inside_link_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / ".env").write_text("OPENAI_API_KEY=x\n")
    (root / ".env").symlink_to(outside / ".env")
    t = target(root)
    [check] = t.preflight()
    assert not check.ok and "through a symlink" in check.detail and "allow_outside" in (check.fix or "")
    with pytest.raises(TargetError, match="outside"):
        t.write(new_secret())
    assert (outside / ".env").read_text() == "OPENAI_API_KEY=x\n"
    # a link that stays inside the root is followed, and stays a link
    (root / "real.env").write_text("OPENAI_API_KEY=x\n")
    (root / "link.env").symlink_to("real.env")
    secret = new_secret()
    run_target(target(root, path="link.env"), secret)
    assert (root / "link.env").is_symlink()
    check_in(secret.reveal(), (root / "real.env").read_text())


def test_dotdot_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / ".env").write_text("OPENAI_API_KEY=x\n")
    [check] = target(root, path="../.env").preflight()
    assert not check.ok and "'..'" in check.detail
    run_target(target(root, path="../.env", allow_outside=True), new_secret())


def test_unparseable_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=1\nthis is not dotenv\n")
    [check] = target(tmp_path).preflight()
    assert not check.ok and "line 2" in check.detail and check.fix and ".env:2" in check.fix


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    names = [f"VAR_{i}" for i in range(12)]
    env.write_text("".join(f"{n}=old\n" for n in names))
    secret = new_secret()
    threads = [threading.Thread(target=target(tmp_path, variables=(n,)).write, args=(secret,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = {b.name: b.value for b in parse(env.read_text())}
    assert all(values[n] == secret.reveal() for n in names), "a concurrent update was lost"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]  # no lock or temp file left beside it


# --- kill -9 of a writer

WRITER = """
import sys
from pathlib import Path
from keyresponse.secret import Secret
from keyresponse.targets.envfile import EnvFile, EnvFileTarget
values = sys.stdin.read().split()
t = EnvFile(EnvFileTarget(kind="envfile", path=".env", variables=["OPENAI_API_KEY"]), Path(sys.argv[1]))
i = 0
while True:
    t.write(Secret(values[i % len(values)]))
    if i == 0 and len(values) > 1:
        print("wrote", flush=True)  # the kills start from here, whatever the start-up took
    i += 1
    if len(values) == 1:
        break
"""


def _writer(root: Path, values: list[str], crash_at: str | None = None, *,
            ready: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KEYRESPONSE_CRASH_AT": crash_at or ""}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE if ready else None, env=env)
    assert proc.stdin is not None
    proc.stdin.write(" ".join(values).encode())  # values on stdin, never in argv
    proc.stdin.close()
    return proc


@pytest.mark.parametrize("point", ["envfile:mid-write", "envfile:before-replace"])
def test_kill_mid_write_leaves_old_file_then_cleans_up(tmp_path: Path, point: str) -> None:
    env = tmp_path / ".env"
    env.write_text(SAMPLE)
    secret = new_secret()
    proc = _writer(tmp_path, [secret.reveal()], crash_at=point)
    assert proc.wait(30) == -signal.SIGKILL
    assert env.read_text() == SAMPLE  # never truncated, never half-written
    stale = leftovers(tmp_path)
    assert stale  # the killed writer's temp file, holding part of the secret...
    [check] = target(tmp_path).preflight()  # a preflight only reads: it reports the leftover
    assert not check.ok and "may hold a secret" in check.detail and check.fix and "rm " in check.fix
    assert leftovers(tmp_path) == stale
    target(tmp_path).write(secret)  # ...and the next write removes it first
    check_in(secret.reveal(), env.read_text())
    assert leftovers(tmp_path) == []


def test_random_kills_never_truncate(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(SAMPLE)
    values = [new_secret().reveal() for _ in range(2)]
    allowed = {"sk-old-value-0000000000", *values}
    seen = set()
    for delay in (0.0, 0.01, 0.05, 0.2):
        proc = _writer(tmp_path, values, ready=True)
        assert proc.stdout is not None and proc.stdout.readline() == b"wrote\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        text = env.read_text()
        found = {b.name: b.value for b in parse(text)}
        assert found["OPENAI_API_KEY"] in allowed, "a torn value"
        check_equal(text, SAMPLE.replace("sk-old-value-0000000000", found["OPENAI_API_KEY"]))
        seen.add(found["OPENAI_API_KEY"])
    assert seen & set(values), "the writer never got to write: the kills proved nothing"
    target(tmp_path).write(new_secret())  # the next write clears whatever a killed writer left
    assert leftovers(tmp_path) == []


# --- the property: an edit changes only the target variable

NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True)
BARE = st.from_regex(r"[A-Za-z0-9_./:@-]{0,12}", fullmatch=True)
SQ = st.from_regex(r"[A-Za-z0-9 _#=./:@-]{0,12}", fullmatch=True)
VALUE = st.from_regex(r"[A-Za-z0-9_-]{20,60}", fullmatch=True)


@st.composite
def lines(draw: st.DrawFn, name: st.SearchStrategy[str]) -> str:
    kind = draw(st.sampled_from(["comment", "blank", "bare", "single", "double"]))
    if kind == "comment":
        return "#" + draw(SQ)
    if kind == "blank":
        return draw(st.sampled_from(["", "  ", "\t"]))
    lead = draw(st.sampled_from(["", "export ", "  "]))
    sep = draw(st.sampled_from(["=", " = ", "= "]))
    tail = draw(st.sampled_from(["", "  # note", " #x"]))
    if kind == "bare":
        value = draw(BARE)
        tail = tail if value else ""
    elif kind == "single":
        value = f"'{draw(SQ)}'"
    else:
        value = '"' + draw(SQ).replace("#", "\\\"") + '"'
    return f"{lead}{draw(name)}{sep}{value}{tail}"


@st.composite
def env_files(draw: st.DrawFn) -> str:
    body = draw(st.lists(lines(st.one_of(NAMES, st.just("OPENAI_API_KEY"))), max_size=12))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(body)
    final_eol: bool = draw(st.booleans())
    return text + (eol if body and final_eol else "")


def _others(text: str) -> str:
    """The text with every OPENAI_API_KEY binding's value span cut out."""
    out, last = [], 0
    for b in parse(text):
        if b.name == "OPENAI_API_KEY":
            out.append(text[last:b.vstart])
            last = b.vend
    return "".join(out) + text[last:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=env_files(), value=VALUE)
def test_property_edit_changes_only_the_target(text: str, value: str) -> None:
    new, diff = edit(text, {"OPENAI_API_KEY": value})
    before = {b.name: b.value for b in parse(text) if b.name != "OPENAI_API_KEY"}
    after = {b.name: b.value for b in parse(new) if b.name != "OPENAI_API_KEY"}
    assert after == before
    assert [b.value for b in parse(new) if b.name == "OPENAI_API_KEY"] != []
    assert all(b.value == value for b in parse(new) if b.name == "OPENAI_API_KEY")
    had = any(b.name == "OPENAI_API_KEY" for b in parse(text))
    if had:  # every byte outside the edited values is the same
        assert _others(new) == _others(text)
    else:
        assert new.startswith(text)
    assert value not in "".join(diff)
    dotenv = pytest.importorskip("dotenv")  # the reader most apps use agrees
    import io

    parsed = dotenv.dotenv_values(stream=io.StringIO(new), interpolate=False)
    assert parsed["OPENAI_API_KEY"] == value


@pytest.mark.parametrize("path, words", [("x\0.env", "NUL"), ("x\n.env", "newline"), ("sub", "a folder"),
                                         ("loop.env", "symlink loop")])
def test_a_path_that_went_bad_after_the_load_fails_the_write_cleanly(tmp_path: Path, path: str, words: str) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "loop.env").symlink_to("loop.env")
    t = target(tmp_path, path=path)
    [check] = t.preflight()
    assert not check.ok and words in check.detail
    with pytest.raises(TargetError, match=words):
        t.write(new_secret())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.env", "sub"]


def test_a_hard_link_made_after_the_load_fails_the_write_and_changes_nothing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_KEY=old\n")
    t = target(tmp_path)
    assert t.preflight()[0].ok
    os.link(env, tmp_path / "copy.env")
    [check] = t.preflight()
    assert not check.ok and "hard link" in check.detail and "-samefile" in (check.fix or "")
    with pytest.raises(TargetError, match="hard link"):
        t.write(new_secret())
    assert env.read_text() == (tmp_path / "copy.env").read_text() == "OPENAI_API_KEY=old\n"
    assert env.stat().st_nlink == 2


def test_a_byte_order_mark_is_kept_and_named_where_it_cannot_be(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfOPENAI_API_KEY=old\nB=2\n")
    secret = new_secret()
    run_target(target(tmp_path), secret)
    assert env.read_bytes() == b"\xef\xbb\xbfOPENAI_API_KEY=" + secret.reveal().encode() + b"\nB=2\n"
    with pytest.raises(ValueError, match="byte-order mark"):
        parse("\ufeffA=1\n")
    env.write_bytes("OPENAI_API_KEY=old\n".encode("utf-16"))
    [check] = target(tmp_path).preflight()
    assert not check.ok and "UTF-16" in check.detail and "byte-order mark" in check.detail
