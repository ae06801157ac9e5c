"""The counters `/metrics` serves, in Prometheus' text exposition format (version 0.0.4).
https://prometheus.io/docs/instrumenting/exposition_formats/"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_HELP = {
    "keyresponse_alerts_received_total": ("counter", "Webhook requests received, by source"),
    "keyresponse_alerts_refused_total": ("counter", "Requests refused or ignored, by source and reason"),
    "keyresponse_alerts_accepted_total": ("counter", "Alerts accepted, by source and how (new, joined)"),
    "keyresponse_incidents_total": ("counter", "Incidents the receiver ran to an end, by outcome"),
}
REVOKE = "keyresponse_receipt_to_revoke_seconds"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._buckets = [0] * len(BUCKETS)
        self._sum = 0.0
        self._count = 0

    def inc(self, name: str, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0) + 1

    def observe_revoke(self, seconds: float) -> None:
        with self._lock:
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1
            self._sum += seconds
            self._count += 1

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in _HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for labels, value in sorted(self._counters.get(name, {}).items()):
                    lines.append(f"{name}{_labels(labels)} {value:g}")
            lines += [f"# HELP {REVOKE} Seconds from a webhook's receipt to its key's revoke",
                      f"# TYPE {REVOKE} histogram"]
            for bound, n in zip(BUCKETS, self._buckets, strict=True):
                lines.append(f'{REVOKE}_bucket{{le="{bound:g}"}} {n}')
            lines += [f'{REVOKE}_bucket{{le="+Inf"}} {self._count}', f"{REVOKE}_sum {self._sum:.6f}",
                      f"{REVOKE}_count {self._count}"]
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in labels)
    return "{" + inner + "}"
