"""The machine-readable side of the benchmarks: with `--json` on its command line a
bench prints, as its last line, `{"bench": NAME, "figures": [...]}`, each figure
{figure, unit, ours, baseline, ratio, target, met}, measured in that same run.
`bench/run` runs them all and reads that line."""

from __future__ import annotations

import json
import sys
from typing import Any


def json_mode() -> bool:
    """True (and `--json` taken off sys.argv, so each bench's own parsing never sees it)."""
    if "--json" in sys.argv[1:]:
        sys.argv.remove("--json")
        return True
    return False


def figure(figure: str, unit: str, ours: float, baseline: float | None, target: str, met: bool) -> dict[str, Any]:
    ratio = ours / baseline if baseline else None
    return {"figure": figure, "unit": unit, "ours": ours, "baseline": baseline,
            "ratio": ratio, "target": target, "met": bool(met)}


def emit(bench: str, figures: list[dict[str, Any]]) -> None:
    print(json.dumps({"bench": bench, "figures": figures}))
