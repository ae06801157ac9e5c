"""Exposure scan benchmark: `exposure.scan`'s history reader vs `git log -S<value> --all`,
on one generated repository, in the same run, with the same findings.

    .venv/bin/python bench/exposure.py                  # 10,000 commits, 300 files
    .venv/bin/python bench/exposure.py --commits 2000

The repository is built with `git fast-import` in a temporary folder: a main line of
`--commits` commits touching `--files` files, a side branch merged back, tags, and a
fake key in four places (an `.env` added then removed, a hardcoded copy still at HEAD,
a copy moved by a rename, a copy only on an unmerged branch). The pickaxe needs the
value in argv, which is fine for a fake value in a bench; the scan never puts it there.
Both are timed best of `--repeat`; the findings compared are, per path, the commit
that first brought the key there.

Two figures, each against the pickaxe timed in the same run: `cold` is a scan with no
history index (the tree diffs are its floor, so it cannot beat the pickaxe by much: see
exposure/gitscan.py), and `warm` one whose history index was built beforehand (by a
drill or an earlier scan, exposure/index.py) and has a few new commits to catch up on.
Wall and CPU (this process and its git children) are both shown; the target is on wall.
"""

from __future__ import annotations

import argparse
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from keyresponse.exposure import gitscan
from keyresponse.exposure.needle import from_secret
from keyresponse.sandbox.seed_git import FastImport
from keyresponse.secret import Secret

T0 = 1_600_000_000
TARGET = 2.0


def build(repo: Path, value: str, commits: int, files: int) -> None:
    rng = random.Random(7)
    v = value.encode()
    fi = FastImport()
    prev = fi.commit("refs/heads/main", T0, "initial", {f"src/m{i}.py": f"# module {i}\n".encode() for i in range(files)})
    plan = {commits // 8: ("add", ".env", b"DEBUG=0\nOPENAI_API_KEY=" + v + b"\n"),
            commits // 2: ("del", ".env", None),
            commits * 5 // 8: ("add", "config/keys.py", b"# keys\nKEY = '" + v + b"'\n"),
            commits * 3 // 4: ("mv", "config/keys.py", b"app/keys.py")}
    side = None
    for i in range(1, commits):
        t = T0 + i * 300
        if i in plan:
            op, path, data = plan[i]
            if op == "mv":
                prev = fi.commit("refs/heads/main", t, f"move {path}", renames={path: data.decode()}, parent=prev)
            else:
                prev = fi.commit("refs/heads/main", t, f"{op} {path}", {path: data}, parent=prev)
            continue
        if i == commits * 7 // 8:
            b = fi.commit("refs/heads/spike", t, "spike", {"notes/spike.md": b"key: " + v + b"\n"}, parent=prev)
            fi.commit("refs/heads/spike", t + 1, "spike 2", {"notes/more.md": b"more\n"}, parent=b)
        if i % 1000 == 0:
            fi.tag(f"v{i // 1000}", prev, t)
        if i % 500 == 250:
            side = fi.commit("refs/heads/side", t, "side work", {"side.txt": f"{i}\n".encode()}, parent=prev)
            continue
        if i % 500 == 260 and side is not None:
            prev = fi.commit("refs/heads/main", t, "merge side", parent=prev, merge=[side])
            continue
        changed = {f"src/m{rng.randrange(files)}.py": f"x = {i}  # {rng.random()}\n".encode() * rng.randrange(1, 40)
                   for _ in range(rng.randrange(1, 3))}
        prev = fi.commit("refs/heads/main", t, f"change {i}", changed, parent=prev)
    fi.run(repo)
    subprocess.run(["git", "-C", str(repo), "gc", "-q"], check=True)


def pickaxe(repo: Path, value: str) -> dict[str, str]:
    """path -> earliest commit that changed the number of copies there (an introduction, for the
    first one) per `git log -S`."""
    raw = subprocess.run(["git", "-C", str(repo), "log", "-S" + value, "--all", "--no-renames",
                          "--format=%x01%H %ct", "--name-status"], capture_output=True, text=True, check=True).stdout
    first: dict[str, tuple[int, str]] = {}
    for chunk in raw.split("\x01")[1:]:
        head, *rest = chunk.strip().splitlines()
        sha, ct = head.split()
        for line in (r for r in rest if "\t" in r):
            status, path = line.split("\t", 1)
            if status in ("A", "M") and (path not in first or int(ct) < first[path][0]):
                first[path] = (int(ct), sha)
    return {p: sha for p, (_, sha) in first.items()}


def best(fn, repeat: int, setup=None) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Best wall time of `repeat` runs, and the CPU time (this process and its git children) of that run."""
    import resource

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    runs, out = [], None
    for _ in range(repeat):
        if setup is not None:
            setup()  # not timed
        start, used = time.perf_counter(), cpu()
        out = fn()
        runs.append((time.perf_counter() - start, cpu() - used))
    wall, spent = min(runs)
    return wall, spent, out


FIGURES: list[dict[str, object]] = []


def main() -> int:
    as_json = json_mode()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--new", type=int, default=20, help="commits made after the index was built (warm figure)")
    args = ap.parse_args()
    value = "sk-" + "proj-" + "BENCH" + secrets.token_urlsafe(36).replace("-", "x")
    with tempfile.TemporaryDirectory(prefix="kr-exposure-bench-") as tmp:
        repo = Path(tmp) / "repo"
        start = time.perf_counter()
        build(repo, value, args.commits, args.files)
        built = time.perf_counter() - start
        count = subprocess.run(["git", "-C", str(repo), "rev-list", "--all", "--count"], capture_output=True,
                               text=True, check=True).stdout.strip()
        needle = from_secret(Secret(value))
        print(f"repository: {count} commits, {args.files} files, built in {built:.1f}s (fast-import + gc)")
        t_scan, c_scan, scan = best(lambda: gitscan.scan_repo(repo, [needle]), args.repeat)
        t_pick, c_pick, picked = best(lambda: pickaxe(repo, value), args.repeat)
        ok = report("cold", t_scan, c_scan, scan, t_pick, c_pick, picked)  # type: ignore[arg-type]
        # warm: the index built once (as a drill does), then a few commits pushed since
        cache = Path(tmp) / "cache"
        start = time.perf_counter()
        gitscan.index_repo(repo, cache)
        indexed = time.perf_counter() - start
        size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        print(f"index:      built in {indexed:.2f}s ({size / 1e6:.1f} MB), then {args.new} new commit(s)")
        more(repo, value, args.new)
        fresh = Path(tmp) / "warm"

        def reset() -> None:
            # each run starts from the index as the drill left it: the new commits are new every time
            import shutil

            shutil.rmtree(fresh, ignore_errors=True)
            shutil.copytree(cache, fresh)

        t_warm, c_warm, warmed = best(lambda: gitscan.scan_repo(repo, [needle], cache=fresh), args.repeat, reset)
        t_pick, c_pick, picked = best(lambda: pickaxe(repo, value), args.repeat)
        cold_now = gitscan.scan_repo(repo, [needle]).findings
        same = cold_now == warmed.findings  # type: ignore[attr-defined]
        print(f"warm == cold findings: {same}")
        ok = report("warm", t_warm, c_warm, warmed, t_pick, c_pick, picked) and ok and same  # type: ignore[arg-type]
    if as_json:
        emit("exposure", FIGURES)
    return 0 if ok else 1


def more(repo: Path, value: str, n: int) -> None:
    """`n` commits on main since the index was built, one of them a new copy of the key."""
    fi = FastImport()
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "refs/heads/main"], capture_output=True, text=True,
                          check=True).stdout.strip()
    fi.parts.append(b"reset refs/heads/main\nfrom %s\n\n" % head.encode())
    prev = fi.commit("refs/heads/main", T0 + 10**8, "after the drill", {"late/new.py": b"K = '" + value.encode() + b"'\n"})
    for i in range(1, n):
        prev = fi.commit("refs/heads/main", T0 + 10**8 + i, f"later {i}", {f"src/late{i % 7}.py": f"{i}\n".encode()},
                         parent=prev)
    fi.run(repo)


def report(label: str, t_scan: float, c_scan: float, scan: gitscan.Scan, t_pick: float, c_pick: float,
           picked: dict[str, str]) -> bool:
    ours = {f["path"]: f["introduced_in"][0] for f in scan.findings}
    same = ours == picked
    ratio = t_pick / t_scan
    print(f"[{label}]")
    print(f"  ours:      {t_scan:.3f}s wall, {c_scan:.3f}s cpu  ({len(ours)} copies: {', '.join(sorted(ours))})")
    print(f"  baseline:  {t_pick:.3f}s wall, {c_pick:.3f}s cpu  (git log -S<value> --all; {len(picked)} copies)")
    print(f"  ratio:     {ratio:.2f}x wall, {c_pick / c_scan:.2f}x cpu   same findings: {same}")
    print(f"  target:    {TARGET:.1f}x wall")
    print(f"  met:       {ratio >= TARGET and same}")
    if not same:
        print(f"  scan only: {sorted(set(ours.items()) - set(picked.items()))}")
        print(f"  pickaxe only: {sorted(set(picked.items()) - set(ours.items()))}")
    FIGURES.append(figure(f"exposure scan, {label} (wall) vs `git log -S --all`, same findings", "s", t_scan, t_pick,
                          f"{TARGET:.0f}x faster, same findings", ratio >= TARGET and same))
    return same


if __name__ == "__main__":
    raise SystemExit(main())
