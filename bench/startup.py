"""Start-up time of `keyresponse --help` against a bare three-command Typer app.

Both are run as fresh processes, interleaved, in the same run; the medians are
printed. Usage: python bench/startup.py [runs]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import emit, figure, json_mode  # bench/figures.py: a script's own folder is on sys.path

BARE = '''
import typer
app = typer.Typer()
@app.command()
def a() -> None: pass
@app.command()
def b() -> None: pass
@app.command()
def c() -> None: pass
app()
'''


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    as_json = json_mode()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    exe = shutil.which("keyresponse")
    ours = [exe, "--help"] if exe else [sys.executable, "-m", "keyresponse", "--help"]
    with tempfile.TemporaryDirectory() as tmp:
        bare_file = Path(tmp) / "bare.py"
        bare_file.write_text(BARE)
        bare = [sys.executable, str(bare_file), "--help"]
        for cmd in (ours, bare):  # warm the page cache
            timed(cmd)
        a, b = [], []
        for _ in range(runs):
            a.append(timed(ours))
            b.append(timed(bare))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"keyresponse --help: median {ma * 1000:.0f} ms over {runs} runs")
    print(f"bare Typer app:     median {mb * 1000:.0f} ms")
    print(f"ratio: {ma / mb:.2f}x (target: under 300 ms and within 1.5x)")
    if as_json:
        emit("startup", [figure("start-up: `keyresponse --help` vs a bare Typer app", "ms", ma * 1000, mb * 1000,
                                "< 300 ms and within 1.5x", ma < 0.3 and ma / mb <= 1.5)])


if __name__ == "__main__":
    main()
