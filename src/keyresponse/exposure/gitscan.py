"""Every copy of a key in a git repository's history, in one pass over its objects.

1. `git cat-file --batch-all-objects --batch-check` lists the blobs while one `git cat-file
   --batch --buffer` streams them; each run of a few MB is searched here, in memory, at
   once (the value is never in argv: git is only asked for objects by id). The commit
   graph (`git rev-list --all --parents`) is read at the same time.
2. Only when a blob matched: one `git log --all --raw --find-object=<blob>...` (tree diffs,
   no blob content; cut in parts run side by side for a long history) names every commit
   that added or removed a matching blob, at any path. The paths come from the history
   itself: a copy at a path that no ref's tip holds any more is found like any other.
3. The commit graph says which refs still reach each introducing commit; one `git cat-file
   --batch-check` of `<tip>:<path>` says which tips still hold the copy.

`git log -S` does the same tree diffs and reads every changed blob pair besides; see
bench/exposure.py for the two side by side (and why the tree diffs bound the speed-up).
"""

from __future__ import annotations

import bisect
import os
import re
import subprocess
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyresponse.exposure.index import Index
from keyresponse.exposure.needle import Match, Needle, is_binary, line_of

MAX_BLOB = 64 * 1024 * 1024
_ZERO = "0" * 40


class GitError(Exception):
    pass


@dataclass
class _Hit:
    needle: int
    match: Match
    line: int | None  # None in a binary file

    @property
    def key(self) -> tuple[int, str]:
        return self.needle, self.match.fingerprint


@dataclass
class _Commit:
    sha: str
    parents: list[str]
    author: str
    author_email: str
    author_time: int
    committer: str
    committer_email: str
    committer_time: int
    order: int  # position in the log, newest first


@dataclass
class _Event:
    commit: str
    path: str
    blob: str


@dataclass
class Stats:
    blobs: int = 0
    bytes: int = 0
    commits: int = 0
    refs: int = 0


@dataclass
class Scan:
    repo: Path
    findings: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_CONFIG_NOSYSTEM="1", GIT_OPTIONAL_LOCKS="0")
    return env


def _git(repo: Path, *args: str, stdin: bytes | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "core.quotePath=false", *args], input=stdin,
                          capture_output=True, env=_env(), check=False)
    if proc.returncode not in ok:
        raise GitError(f"git {args[0]} in {repo} failed ({proc.returncode}): "
                       f"{proc.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return proc.stdout


def _refs(repo: Path) -> dict[str, str]:
    """refname -> commit it points to (tags peeled); every stash entry, not only the last."""
    out: dict[str, str] = {}
    raw = _git(repo, "for-each-ref", "--format=%(objectname) %(*objectname) %(objecttype) %(*objecttype) %(refname)")
    for line in raw.decode("utf-8", "replace").splitlines():
        sha, peeled, kind, peeled_kind, name = (line.split(" ", 4) + [""] * 5)[:5]
        if kind == "commit":
            out[name] = sha
        elif kind == "tag" and peeled_kind == "commit":
            out[name] = peeled
    if "refs/stash" in out:
        stashes = _git(repo, "log", "-g", "--format=%H", "refs/stash", "--", ok=(0, 128)).decode().split()
        for i, sha in enumerate(stashes):
            out[f"stash@{{{i}}}"] = sha
        out.pop("refs/stash", None)
        out.setdefault("stash@{0}", stashes[0] if stashes else "")
    return {k: v for k, v in out.items() if v}


_BLOB_LINE = re.compile(rb"^blob ([0-9a-f]+) ([0-9]+)$", re.M)


CHUNK = 4 * 1024 * 1024


def _read(repo: Path, stats: Stats, ids: bytes | None = None) -> Iterator[tuple[bytes, list[tuple[str, int, int]]]]:
    """Stream every blob through one `git cat-file --batch`, in runs of whole objects read a
    few MB at a time: each run is one buffer and the (id, start, end) of every blob's content
    in it, so a search runs over the whole buffer at once instead of once per blob. The ids
    come from `--batch-all-objects --batch-check`, copied over by a thread as they are
    listed: the listing and the reading run side by side, and neither pipe fills while the
    other waits. Given `ids` (the history index's blob ids, one a line), those are read
    instead, and nothing is listed."""
    if ids is not None:
        yield from _read_ids(repo, stats, ids)
        return
    lister = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch-all-objects",
                               "--batch-check=%(objecttype) %(objectname) %(objectsize)"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch", "--buffer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    assert proc.stdin is not None and proc.stdout is not None and lister.stdout is not None

    def feed() -> None:
        try:
            rest = b""
            while block := lister.stdout.read1(1 << 16):  # type: ignore[union-attr]
                block = rest + block
                cut = block.rfind(b"\n") + 1
                block, rest = block[:cut], block[cut:]
                shas = [sha for sha, size in _BLOB_LINE.findall(block) if int(size) <= MAX_BLOB]
                stats.blobs += len(shas)
                if shas:
                    proc.stdin.write(b"\n".join(shas) + b"\n")  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()  # type: ignore[union-attr]
            lister.stdout.close()  # type: ignore[union-attr]
            lister.wait()

    yield from _runs(proc, feed)


def _read_ids(repo: Path, stats: Stats, ids: bytes) -> Iterator[tuple[bytes, list[tuple[str, int, int]]]]:
    if not ids:
        return
    proc = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch", "--buffer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    assert proc.stdin is not None
    stats.blobs += ids.count(b"\n")

    def feed() -> None:
        try:
            proc.stdin.write(ids)  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()  # type: ignore[union-attr]

    yield from _runs(proc, feed)


def _runs(proc: subprocess.Popen[bytes], feed: Any) -> Iterator[tuple[bytes, list[tuple[str, int, int]]]]:
    assert proc.stdout is not None
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        read = proc.stdout.read
        buf = b""
        eof = False
        while not eof:
            more = read(CHUNK)
            eof = not more
            buf += more
            pos, spans, n = 0, [], len(buf)
            while True:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    break
                header = buf[pos:nl].split()
                if len(header) < 3:  # "<id> missing": no content follows
                    pos = nl + 1
                    continue
                end = nl + 1 + int(header[2])
                if end + 1 > n:
                    break
                spans.append((header[0].decode(), nl + 1, end))
                pos = end + 1
            if spans:
                yield buf, spans
            buf = buf[pos:]
    finally:
        proc.stdout.close()
        writer.join()
        proc.wait()


def _search(repo: Path, needles: list[Needle], stats: Stats, ids: bytes | None = None
            ) -> tuple[dict[str, list[_Hit]], dict[str, bool]]:
    hits: dict[str, list[_Hit]] = {}
    binary: dict[str, bool] = {}
    for buf, spans in _read(repo, stats, ids):
        stats.bytes += sum(e - s for _, s, e in spans)
        for i in _candidates(buf, spans, needles):
            sha, start, end = spans[i]
            data = buf[start:end]
            found = [k for k, n in enumerate(needles) if n.quick(data)]
            if not found:
                continue
            is_bin = is_binary(data)
            binary[sha] = is_bin
            hits[sha] = [_Hit(k, m, None if is_bin else line_of(data, m.offset)) for k in found
                         for m in needles[k].matches(data)]
    return hits, binary


SEARCH_PART = 2000  # blob ids per `git cat-file` reading the index's blobs, at least


def _search_ids(repo: Path, needles: list[Needle], stats: Stats, ids: bytes
                ) -> tuple[dict[str, list[_Hit]], dict[str, bool]]:
    """`_search` of the blobs `ids` names, cut in parts each read by its own `git cat-file`
    on its own core (the reading is the cost; each part is searched as it comes)."""
    from concurrent.futures import ThreadPoolExecutor

    lines = ids.splitlines(keepends=True)
    k = max(1, min(os.cpu_count() or 1, 4, len(lines) // SEARCH_PART))
    if k == 1:
        return _search(repo, needles, stats, ids)
    parts = [b"".join(lines[len(lines) * i // k:len(lines) * (i + 1) // k]) for i in range(k)]
    own = [Stats() for _ in parts]
    with ThreadPoolExecutor(max_workers=k) as pool:
        found = list(pool.map(lambda i: _search(repo, needles, own[i], parts[i]), range(k)))
    hits: dict[str, list[_Hit]] = {}
    binary: dict[str, bool] = {}
    for (h, b), st in zip(found, own, strict=True):
        hits.update(h)
        binary.update(b)
        stats.blobs += st.blobs
        stats.bytes += st.bytes
    return hits, binary


def _candidates(buf: bytes, spans: list[tuple[str, int, int]], needles: list[Needle]) -> list[int]:
    """Which blobs of a run may hold a needle: an exact value is looked for once in the whole
    buffer (an occurrence counts when it lies inside one blob's content); a shape is tried
    on each blob. Each candidate is then searched on its own, as before."""
    out: set[int] = set()
    starts = [s for _, s, _ in spans]
    for n in needles:
        exact = n.exact_bytes()
        if exact is None:
            out.update(i for i, (_, s, e) in enumerate(spans) if n.quick(buf[s:e]))
            continue
        at = buf.find(exact)
        while at >= 0:
            i = bisect.bisect_right(starts, at) - 1
            if i >= 0 and at + len(exact) <= spans[i][2]:
                out.add(i)
            at = buf.find(exact, at + 1)
    return sorted(out)


_FORMAT = "%x01%H%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x02"


def _graph(repo: Path, revs: bytes) -> dict[str, _Commit]:
    """Every commit reachable from every ref (and `revs`), with its parents, in log order;
    one `git rev-list` (the commit-graph file answers it without opening commits)."""
    raw = _git(repo, "rev-list", "--all", "--stdin", "--parents", stdin=revs, ok=(0, 128))
    commits: dict[str, _Commit] = {}
    for order, line in enumerate(raw.decode("ascii", "replace").splitlines()):
        sha, *parents = line.split()
        commits[sha] = _Commit(sha, parents, "", "", 0, "", "", 0, order)
    return commits


def _events(repo: Path, revs: bytes, hits: dict[str, list[_Hit]], commits: dict[str, _Commit]
            ) -> tuple[list[_Event], list[_Event]]:
    """Where a matching blob came and went: `git log --raw` over every commit of every ref
    (tree diffs, no blob content), told the matching blobs' ids with `--find-object`, so git
    prints only the commits that add or remove one of them, at any path, under any name. It
    fills in those commits' people and dates. The ids are hashes of the content, not the
    value; past MAX_OBJECTS of them the log prints every commit and the filter is here.

    The tree diffs are the cost, one commit at a time, so a long history is cut in parts at
    commits of the graph (part i: what M_i reaches and no earlier M_j does; the last: what
    no M_j reaches), each its own `git log` on its own core: every commit is in one part."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = sorted(hits)
    limit = [f"--find-object={b}" for b in wanted] if len(wanted) <= MAX_OBJECTS else []
    cuts = _cuts(commits)
    ranges = [([m, *(f"^{x}" for x in cuts[:i])], b"") for i, m in enumerate(cuts)]
    ranges.append((["--all", "--stdin", *(f"^{x}" for x in cuts)], revs))

    def log(part: tuple[list[str], bytes]) -> bytes:
        return _git(repo, "log", *part[0], "--root", "--no-renames", "--diff-merges=first-parent", "--raw", "--no-abbrev",
                    "-z", "--no-color", "--no-ext-diff", f"--format={_FORMAT}", *limit, "--",
                    stdin=part[1], ok=(0, 128))

    if len(ranges) == 1:
        raw = log(ranges[0])
    else:
        with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
            raw = b"".join(pool.map(log, ranges))
    added: list[_Event] = []
    removed: list[_Event] = []
    _parse(raw.split(b"\x01")[1:], hits, commits, added, removed)
    return added, removed


def _parse(chunks: Iterable[bytes], hits: dict[str, list[_Hit]], commits: dict[str, _Commit],
           added: list[_Event], removed: list[_Event], *, known_only: bool = False) -> None:
    """The events of the matching blobs in log records (one per commit, `_FORMAT`, `--raw -z`);
    `known_only`: only the commits of `commits` (the history index has every commit it ever
    saw, some no ref reaches any more)."""
    for chunk in chunks:
        head, _, body = chunk.partition(b"\x02")
        f = head.decode("utf-8", "replace").split("\0")
        sha = f[0]
        c = commits.get(sha)
        if c is None and known_only:
            continue
        if c is None:
            c = commits[sha] = _Commit(sha, f[1].split(), "", "", 0, "", "", 0, len(commits))
        c.author, c.author_email, c.author_time = f[2], f[3], int(f[4] or 0)
        c.committer, c.committer_email, c.committer_time = f[5], f[6], int(f[7] or 0)
        tokens = body.lstrip(b"\0\n").split(b"\0")
        i = 0
        while i < len(tokens) - 1:
            meta = tokens[i]
            if not meta.startswith(b":"):
                i += 1
                continue
            parts = meta[1:].split(b" ")
            old, new = parts[2].decode(), parts[3].decode()
            path = tokens[i + 1].decode("utf-8", "surrogateescape")
            i += 2
            if new in hits:
                added.append(_Event(sha, path, new))
            if old in hits and old != _ZERO:
                removed.append(_Event(sha, path, old))


def _index_new(repo: Path, idx: Index, commits: dict[str, _Commit]) -> bytes:
    """Run the tree diffs of the commits `idx` has not seen (all of them, the first time), each
    commit on its own (`--no-walk`), in parts side by side for many; add them to the index.
    Returns the blob ids they bring that the index did not have (one a line), to be read."""
    from concurrent.futures import ThreadPoolExecutor

    from keyresponse.exposure import index

    new = [sha for sha in commits if sha not in idx.commits]
    if not new:
        return b""
    k = max(1, min(os.cpu_count() or 1, 4, len(new) // SPLIT_AT))
    parts = [new[len(new) * i // k:len(new) * (i + 1) // k] for i in range(k)]

    def log(part: list[str]) -> bytes:
        return _git(repo, "log", "--no-walk=unsorted", "--stdin", "--root", "--no-renames",
                    "--diff-merges=first-parent", "--raw", "--no-abbrev", "-z", "--no-color", "--no-ext-diff",
                    f"--format={_FORMAT}", "--", stdin="".join(f"{c}\n" for c in part).encode())

    if k == 1:
        raw = log(parts[0])
    else:
        with ThreadPoolExecutor(max_workers=k) as pool:
            raw = b"".join(pool.map(log, parts))
    known = set(idx.blobs.split())
    ids = [b for b in index.new_blob_ids(raw) if b.encode() not in known]
    blobs: list[str] = []
    if ids:
        check = _git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                     stdin="".join(f"{b}\n" for b in ids).encode())
        for line in check.decode("ascii", "replace").splitlines():
            parts_ = line.split()
            if len(parts_) == 3 and parts_[1] == "blob" and int(parts_[2]) <= MAX_BLOB:
                blobs.append(parts_[0])
    idx.add(new, raw, blobs)
    return "".join(f"{b}\n" for b in blobs).encode()


def _index_events(idx: Index, hits: dict[str, list[_Hit]], commits: dict[str, _Commit]
                  ) -> tuple[list[_Event], list[_Event]]:
    """`_events`, answered by the history index: the records of the commits that name a
    matching blob, of the commits the refs reach now."""
    added: list[_Event] = []
    removed: list[_Event] = []
    chunks = idx.chunks_with(sorted(hits))
    chunks.sort(key=lambda ch: commits[sha].order if (sha := ch[:ch.find(b"\0")].decode("ascii", "replace"))
                in commits else -1)
    _parse(chunks, hits, commits, added, removed, known_only=True)
    return added, removed


MAX_OBJECTS = 2000
SPLIT_AT = 4000  # commits per part, at least


def _cuts(commits: dict[str, _Commit]) -> list[str]:
    """Commits to cut the history log at: evenly spaced in the graph's (date) order, one part
    per core, none for a short history."""
    n = len(commits)
    k = min(os.cpu_count() or 1, 4, n // SPLIT_AT)
    if k < 2:
        return []
    order = sorted(commits.values(), key=lambda c: c.order)
    return [order[n * i // k].sha for i in range(k - 1, 0, -1)]


def _children(commits: dict[str, _Commit]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = defaultdict(list)
    for c in commits.values():
        for p in c.parents:
            children[p].append(c.sha)
    return children


def _descendants(children: dict[str, list[str]], roots: Iterable[str]) -> set[str]:
    seen = set(roots)
    todo = list(seen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _dangling_commits(repo: Path) -> list[str]:
    raw = _git(repo, "fsck", "--unreachable", "--no-reflogs", "--no-progress", ok=(0, 1, 2))
    return [line.split()[2] for line in raw.decode("utf-8", "replace").splitlines()
            if line.startswith("unreachable commit ")]


def _at_tips(repo: Path, tips: dict[str, str], paths: set[str], wanted: set[str]) -> dict[str, set[tuple[str, str]]]:
    """commit -> {(path, blob)} of the matching blobs each tip holds at the paths the history
    names: one `git cat-file --batch-check` asked `<tip>:<path>` for every pair."""
    shas = sorted(set(tips.values()))
    plain = sorted(p for p in paths if "\n" not in p)
    out: dict[str, set[tuple[str, str]]] = {sha: set() for sha in shas}
    pairs = [(sha, p) for sha in shas for p in plain]
    if pairs:
        raw = _git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)", "-z",
                   stdin=b"".join(f"{sha}:".encode() + p.encode("utf-8", "surrogateescape") + b"\0"
                                  for sha, p in pairs))
        for (sha, p), line in zip(pairs, raw.split(b"\n")[:-1], strict=True):
            blob, _, kind = line.decode("utf-8", "replace").partition(" ")
            if kind == "blob" and blob in wanted:
                out[sha].add((p, blob))
    odd = [p for p in paths if "\n" in p]  # cat-file's answer for these would span lines
    for sha in shas if odd else ():
        for entry in _git(repo, "ls-tree", "-r", "-z", "--full-tree", sha, ok=(0, 128)).split(b"\0"):
            meta, _, name = entry.partition(b"\t")
            parts, path = meta.split(b" "), name.decode("utf-8", "surrogateescape")
            if len(parts) == 3 and parts[2].decode() in wanted and path in odd:
                out[sha].add((path, parts[2].decode()))
    return out


def _in_file(path: Path, needle: Needle) -> bool | None:
    try:
        return path.is_file() and not path.is_symlink() and needle.quick(path.read_bytes())
    except OSError:
        return None


def _iso(ts: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _open(repo: Path, cache: Path | None) -> tuple[str, bool, Index | None]:
    """The git dir, whether the repository is bare, and its history index (None: no cache, or
    a shallow clone, whose boundary commits' diffs change when it is deepened)."""
    from keyresponse.exposure import index

    lines = _git(repo, "rev-parse", "--git-dir", "--is-bare-repository", "--is-shallow-repository",
                 "--git-common-dir").decode("utf-8", "surrogateescape").splitlines()
    git_dir, bare, shallow, common = lines[0], lines[1] == "true", lines[2] == "true", lines[3]
    if cache is None or shallow:
        return git_dir, bare, None
    common_dir = Path(common) if Path(common).is_absolute() else repo / common
    return git_dir, bare, index.load(index.folder(cache, common_dir))


def _revs(repo: Path, refs: dict[str, str], unreachable: bool) -> bytes:
    stash_and_dangling = [sha for name, sha in refs.items() if name.startswith("stash@")]
    if unreachable:
        stash_and_dangling += _dangling_commits(repo)
    return "".join(f"{r}\n" for r in stash_and_dangling).encode()


def _head(repo: Path) -> str:
    return _git(repo, "rev-parse", "--verify", "-q", "HEAD", ok=(0, 1)).decode().strip()


def _tracked(repo: Path, bare: bool) -> set[str]:
    return set() if bare else {p.decode("utf-8", "surrogateescape")
                               for p in _git(repo, "ls-files", "-z").split(b"\0") if p}


def index_repo(repo: Path, cache: Path, *, unreachable: bool = False) -> int:
    """Bring `repo`'s history index in `cache` up to date (the tree diffs of the commits it has
    not seen), reading no blob: what a drill does so that an incident's scan is fast.
    Returns how many commits were added."""
    from keyresponse.exposure import index

    repo = Path(repo)
    _, _, idx = _open(repo, cache)
    if idx is None:
        return 0
    before = len(idx.commits)
    _index_new(repo, idx, _graph(repo, _revs(repo, _refs(repo), unreachable)))
    if len(idx.commits) != before or idx.rebuilt:
        index.save(idx)
    return len(idx.commits) - before


def scan_repo(repo: Path, needles: list[Needle], *, unreachable: bool = False, label: str | None = None,
              cache: Path | None = None) -> Scan:
    """Every copy of each needle in `repo`'s history: one finding per (copy, path).

    With `cache` (a folder of the state dir), the repository's history index there is read
    and brought up to date (see exposure/index.py): only new commits' tree diffs are run, and
    the blobs read are the ones the index names; the findings are the same as without it."""
    from keyresponse.exposure import index

    repo = Path(repo)
    git_dir, bare, idx = _open(repo, cache)
    scan = Scan(repo)
    refs = _refs(repo)
    scan.stats.refs = len(refs)
    revs = _revs(repo, refs, unreachable)
    graph: list[dict[str, _Commit]] = []
    # with a warm index, the blobs it names are read from the start; unreachable objects and
    # a first run need the object database's own list
    listed = idx is None or idx.fresh or unreachable
    known = None if listed or idx is None else idx.blobs
    fresh: list[bytes] = []

    facts: dict[str, Any] = {}

    def walk() -> None:
        commits = _graph(repo, revs)
        graph.append(commits)
        if idx is not None:  # what the findings need besides, read while the blobs stream
            facts["head"] = _head(repo)
            facts["tracked"] = _tracked(repo, bare)
        if idx is not None:
            before = len(idx.commits)
            fresh.append(_index_new(repo, idx, commits))
            if len(idx.commits) != before or idx.rebuilt:
                index.save(idx)

    # the commit graph (and the index's new tree diffs) do not depend on what the blobs hold:
    # they run while the blobs stream
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            walk()
        except BaseException as exc:  # noqa: BLE001 - raised again below, in the caller's thread
            errors.append(exc)

    walker = threading.Thread(target=guarded, daemon=True)
    walker.start()
    try:
        hits, binary = _search(repo, needles, scan.stats) if known is None else \
            _search_ids(repo, needles, scan.stats, known)
    finally:
        walker.join()
    if errors:
        raise errors[0]
    if not listed and fresh and fresh[0]:
        more, more_binary = _search(repo, needles, scan.stats, fresh[0])
        hits.update(more)
        binary.update(more_binary)
    if not hits:
        return scan
    if not graph:
        raise GitError(f"git rev-list in {repo} failed")
    head = facts["head"] if "head" in facts else _head(repo)
    tips = dict(refs) | ({"HEAD": head} if head else {})
    commits = graph[0]
    added, removed = _index_events(idx, hits, commits) if idx is not None else _events(repo, revs, hits, commits)
    at_tip = _at_tips(repo, tips, {e.path for e in added}, set(hits))
    scan.stats.commits = len(commits)
    children = _children(commits)
    tracked = facts["tracked"] if "tracked" in facts else _tracked(repo, bare)

    def keys_of(blob: str) -> set[tuple[int, str]]:
        return {h.key for h in hits.get(blob, [])}

    # per (needle, fingerprint, path): the commits that brought it there and took it away
    intro: dict[tuple[int, str, str], list[_Event]] = defaultdict(list)
    gone: dict[tuple[int, str, str], list[_Event]] = defaultdict(list)
    by_commit_path: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    for e in added:
        by_commit_path[(e.commit, e.path)] = (by_commit_path.get((e.commit, e.path), (None, None))[0], e.blob)
    for e in removed:
        by_commit_path[(e.commit, e.path)] = (e.blob, by_commit_path.get((e.commit, e.path), (None, None))[1])
    for (sha, path), (old, new) in by_commit_path.items():
        before, after = keys_of(old) if old else set(), keys_of(new) if new else set()
        for k in after - before:
            intro[(k[0], k[1], path)].append(_Event(sha, path, new or ""))
        for k in before - after:
            gone[(k[0], k[1], path)].append(_Event(sha, path, old or ""))

    def when(e: _Event) -> tuple[int, int]:
        c = commits[e.commit]
        return c.committer_time, -c.order

    mapped: set[str] = set()
    for (ni, fp, path), events in intro.items():
        events.sort(key=when)
        first = events[0]
        c = commits[first.commit]
        hit = next(h for h in hits[first.blob] if h.key == (ni, fp))
        mapped.update(e.blob for e in events)
        reach = _descendants(children, [e.commit for e in events])
        in_refs = sorted(name for name, sha in tips.items() if sha in reach and name != "HEAD")
        still = sorted(name for name, sha in tips.items()
                       if any(p == path and (ni, fp) in keys_of(b) for p, b in at_tip.get(sha, ())))
        removals = sorted(gone.get((ni, fp, path), []), key=when)
        moved_from = sorted({r.path for e in events for r in removed
                             if r.commit == e.commit and r.path != path and (ni, fp) in keys_of(r.blob)})
        worktree = None if bare else _in_file(repo / path, needles[ni])
        removal = removals[0] if removals else None
        if removal is not None and head:
            # the removal that HEAD's history has, when there is one: that is the fix people see
            on_head = [r for r in removals if head in _descendants(children, [r.commit])]
            removal = on_head[0] if on_head else removal
        scan.findings.append({
            "source": "git history", "repo": label or str(repo), "kind": needles[ni].kind,
            "masked": hit.match.masked, "fingerprint": fp,
            "commit": c.sha, "short": c.sha[:10],
            "author": f"{c.author} <{c.author_email}>", "committer": f"{c.committer} <{c.committer_email}>",
            "authored_at": _iso(c.author_time), "committed_at": _iso(c.committer_time),
            "path": path, "line": hit.line, "binary": binary.get(first.blob, False),
            "introduced_in": sorted({e.commit for e in events}, key=lambda s: (commits[s].committer_time, -commits[s].order)),
            "moved_from": moved_from, "refs": in_refs, "refs_at_tip": [r for r in still if r != "HEAD"],
            "in_head": "HEAD" in still, "tracked": (path in tracked) if not bare else None,
            "in_worktree": worktree,
            "removed_in": removal.commit if removal else None,
            "removed_at": _iso(commits[removal.commit].committer_time) if removal else None,
            "reachable": True, "location": f"{label or repo}:{path}" + (f":{hit.line}" if hit.line else ""),
        })
    if unreachable:
        for blob in sorted(set(hits) - mapped):
            for hit in hits[blob]:
                scan.findings.append({
                    "source": "git objects", "repo": label or str(repo), "kind": needles[hit.needle].kind,
                    "masked": hit.match.masked, "fingerprint": hit.match.fingerprint, "commit": None,
                    "blob": blob, "path": None, "line": hit.line, "refs": [], "refs_at_tip": [],
                    "in_head": False, "reachable": False, "binary": binary.get(blob, False),
                    "location": f"{label or repo}: unreachable blob {blob[:10]} in {git_dir}",
                })
    scan.findings.sort(key=lambda f: (f.get("committed_at") or "9", f.get("path") or ""))
    return scan


def ignored(repo: Path, paths: list[str]) -> dict[str, bool]:
    """Whether `.gitignore` (and the repo's other exclude files) ignores each path now,
    tracked or not: the check a committed `.env`'s fix needs."""
    if not paths:
        return {}
    try:
        raw = _git(repo, "check-ignore", "--no-index", "-z", "--stdin",
                   stdin=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths), ok=(0, 1))
    except GitError:
        return {}
    hits = {p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0") if p}
    return {p: p in hits for p in paths}
