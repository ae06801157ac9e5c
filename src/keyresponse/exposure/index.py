"""A repository's history index, kept between runs: the tree diffs done once.

Commits are immutable, so what each commit adds and removes (the blob ids at which paths,
`git log --raw`) never changes. The index keeps, per repository, that record for every
commit it has seen, with the people and dates of each commit; a scan then runs the tree
diffs only for the commits it has not seen (the new ones since the last run), and finds
where a matching blob came and went by reading the index, not the history.

It never holds a secret value, nor anything read from a blob: blob ids (hashes of the
content), paths, commit ids, parents, names, e-mails and dates. Not the commit messages.

One file per repository, `<state dir>/cache/exposure/<repo id>/index` (folder 0700, file
0600, written whole and atomically), checked on every read: a file that is not whole
(truncated, edited, of another version) is thrown away and rebuilt, never trusted.
Layout: a magic line, the SHA-256 of the rest, the three section lengths, then the
sections: the indexed commit ids, the blob ids the scan reads (one a line, of at most
MAX_BLOB bytes), and the raw log records (gitscan's `_FORMAT`, `-z --raw`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"keyresponse exposure index 1\n"
NAME = "index"
_NEW_BLOB = re.compile(rb":[0-7]{6} [0-7]{6} [0-9a-f]{40,64} ([0-9a-f]{40,64}) ")


@dataclass
class Index:
    path: Path | None
    commits: set[str] = field(default_factory=set)
    blobs: bytes = b""  # "<id>\n" per blob: fed to `git cat-file --batch` as it is
    log: bytes = b""
    fresh: bool = True  # nothing was read (no file, or one thrown away)
    rebuilt: str | None = None  # why a file there was thrown away

    def add(self, commits: list[str], log: bytes, blobs: list[str]) -> None:
        self.commits.update(commits)
        self.log += log
        self.blobs += "".join(f"{b}\n" for b in blobs).encode()

    def chunks_with(self, blobs: list[str]) -> list[bytes]:
        """The log records (one per commit) that name any of `blobs`, each once."""
        starts: set[int] = set()
        log = self.log
        for blob in blobs:
            needle = b" " + blob.encode()
            at = log.find(needle)
            while at >= 0:
                starts.add(log.rfind(b"\x01", 0, at))
                at = log.find(needle, at + 1)
        out = []
        for start in sorted(starts):
            if start < 0:
                continue
            end = log.find(b"\x01", start + 1)
            out.append(log[start + 1:end if end >= 0 else len(log)])
        return out

    def encode(self) -> bytes:
        commits = "".join(f"{c}\n" for c in sorted(self.commits)).encode()
        body = b"%d %d %d\n" % (len(commits), len(self.blobs), len(self.log)) + commits + self.blobs + self.log
        return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def folder(state: Path, git_common_dir: Path) -> Path:
    ident = hashlib.sha256(os.fsencode(git_common_dir.resolve())).hexdigest()[:24]
    return state / ident


def load(where: Path) -> Index:
    """The index in folder `where`; an empty one when there is none or it is not whole."""
    path = where / NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Index(path)
    except OSError as exc:
        return Index(path, rebuilt=f"unreadable: {type(exc).__name__}")
    try:
        return _decode(path, data)
    except (ValueError, IndexError) as exc:
        return Index(path, rebuilt=str(exc))


def _decode(path: Path, data: bytes) -> Index:
    if not data.startswith(MAGIC):
        raise ValueError("not an index of this version")
    rest = data[len(MAGIC):]
    digest, _, body = rest.partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError("checksum mismatch (truncated or altered)")
    head, _, sections = body.partition(b"\n")
    n_commits, n_blobs, n_log = (int(x) for x in head.split())
    if n_commits + n_blobs + n_log != len(sections):
        raise ValueError("section lengths do not add up")
    commits = sections[:n_commits].decode("ascii").split()
    if any(not re.fullmatch(r"[0-9a-f]{40,64}", c) for c in commits[:1]):
        raise ValueError("bad commit id")
    blobs = sections[n_commits:n_commits + n_blobs]
    log = sections[n_commits + n_blobs:]
    if (blobs and not blobs.endswith(b"\n")) or (log and not log.startswith(b"\x01")):
        raise ValueError("bad section")
    return Index(path, set(commits), blobs, log, fresh=False)


def save(index: Index) -> None:
    """Write the index whole (atomically, 0600) in its own 0700 folder."""
    from keyresponse.atomicfile import write_atomic

    if index.path is None:
        return
    made = []
    for p in [index.path.parent, *index.path.parent.parents]:
        if p.exists():
            break
        made.append(p)
    index.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in [index.path.parent, *made]:
        try:
            os.chmod(p, 0o700)
        except OSError:
            pass
    write_atomic(index.path, index.encode())


def new_blob_ids(log: bytes) -> list[str]:
    """The ids a log's records add (each once, in order), before their type and size are checked."""
    seen: dict[bytes, None] = dict.fromkeys(_NEW_BLOB.findall(log))
    zero = b"0" * 40
    return [b.decode() for b in seen if b.strip(b"0") and b != zero]
