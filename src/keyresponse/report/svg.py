"""The usage chart as inline SVG: requests per hour as bars, tokens as a line,
anomalous hours in red and the leak time as a dashed line.

Plain string building, no plotting library: the report must be one file that
opens anywhere (and prints), and every text in it is escaped here because the
templates insert this markup as is.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from keyresponse.report import times

W, H = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 64, 28, 40
HOUR = dt.timedelta(hours=1)


def usage_chart(hourly: list[dict[str, Any]], *, leak_time: Any = None, title: str = "Usage per hour") -> str:
    rows = []
    for h in hourly or []:
        when = times.parse(h.get("hour")) if isinstance(h, dict) else None
        if when is not None:
            rows.append((when, _num(h.get("requests")), _num(h.get("input_tokens")) + _num(h.get("output_tokens")),
                         bool(h.get("anomalous"))))
    rows.sort(key=lambda r: r[0])
    label = escape(title)
    if not rows:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} 60" role="img" '
                f'aria-label="{label}"><title>{label}</title><text x="{W / 2}" y="34" text-anchor="middle" '
                f'font-size="14" fill="#555">no hourly usage data</text></svg>')
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    t0, t1 = rows[0][0], rows[-1][0]
    span = max((t1 - t0).total_seconds() + 3600, 3600)
    max_req = max(max(r[1] for r in rows), 1)
    max_tok = max(max(r[2] for r in rows), 1)
    bar_w = max(plot_w * 3600 / span - 0.5, 0.6)

    def x(when: dt.datetime) -> float:
        return float(LEFT + plot_w * (when - t0).total_seconds() / span)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{label}" font-family="sans-serif" font-size="11">',
        f"<title>{label}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for frac in (0.0, 0.5, 1.0):  # y gridlines with both scales
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#1f5fa8">{_short(max_req * frac)}</text>')
        parts.append(f'<text x="{LEFT + plot_w + 6}" y="{y + 4:.1f}" fill="#7a4ca0">{_short(max_tok * frac)}</text>')
    parts.append(f'<text x="{LEFT - 6}" y="{TOP - 10}" text-anchor="end" fill="#1f5fa8">requests</text>')
    parts.append(f'<text x="{LEFT + plot_w + 6}" y="{TOP - 10}" fill="#7a4ca0">tokens</text>')
    for when, req, tok, anomalous in rows:
        bh = plot_h * req / max_req
        cls = "bar anomalous" if anomalous else "bar"
        fill = "#d33" if anomalous else "#4a86c5"
        tip = escape(f"{times.human(when)}: {req:,.0f} requests, {tok:,.0f} tokens" + (" (anomalous)" if anomalous else ""))
        parts.append(f'<rect class="{cls}" x="{x(when):.2f}" y="{TOP + plot_h - bh:.2f}" width="{bar_w:.2f}" '
                     f'height="{bh:.2f}" fill="{fill}"><title>{tip}</title></rect>')
    points = " ".join(f"{x(w) + bar_w / 2:.2f},{TOP + plot_h * (1 - tok / max_tok):.2f}" for w, _, tok, _ in rows)
    parts.append(f'<polyline class="tokens" points="{points}" fill="none" stroke="#7a4ca0" stroke-width="1.2" opacity="0.8"/>')
    parts.extend(_day_ticks(t0, span, plot_w, x))
    leak = times.parse(leak_time)
    if leak is not None and t0 <= leak <= t1 + HOUR:
        lx = x(leak)
        parts.append(f'<line class="leak" x1="{lx:.2f}" x2="{lx:.2f}" y1="{TOP - 4}" y2="{TOP + plot_h}" '
                     f'stroke="#b00" stroke-width="1.5" stroke-dasharray="5 3"/>')
        # label on the side with room, so a leak near the end of the window stays readable
        anchor, tx = ("end", lx - 4) if lx > LEFT + plot_w * 0.6 else ("start", lx + 4)
        parts.append(f'<text class="leak-label" x="{tx:.2f}" y="{TOP + 12}" text-anchor="{anchor}" fill="#b00">'
                     f'leak {escape(times.human(leak))}</text>')
    parts.append(_legend())
    parts.append("</svg>")
    return "".join(parts)


def _day_ticks(t0: dt.datetime, span: float, plot_w: float, x: Any) -> list[str]:
    days = span / 86400
    step_days = 1 if days <= 16 else (7 if days <= 70 else 30)
    start = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    out, tick, end = [], start, t0 + dt.timedelta(seconds=span)
    if days < 1.5:  # under two days: hourly ticks every 6h read better than dates
        tick, delta, fmt = t0.replace(minute=0, second=0, microsecond=0), HOUR * 6, "%H:%M"
    else:
        delta, fmt = HOUR * 24 * step_days, "%m-%d"
    while tick <= end:
        if tick >= t0:
            tx = x(tick)
            out.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{H - BOTTOM}" y2="{H - BOTTOM + 4}" stroke="#999"/>')
            out.append(f'<text x="{tx:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" fill="#555">{tick.strftime(fmt)}</text>')
        tick += delta
    return out


def _legend() -> str:
    y = H - 8
    return (f'<g class="legend"><rect x="{LEFT}" y="{y - 9}" width="10" height="10" fill="#4a86c5"/>'
            f'<text x="{LEFT + 14}" y="{y}">requests</text>'
            f'<rect x="{LEFT + 80}" y="{y - 9}" width="10" height="10" fill="#d33"/>'
            f'<text x="{LEFT + 94}" y="{y}">anomalous hour</text>'
            f'<line x1="{LEFT + 196}" x2="{LEFT + 214}" y1="{y - 4}" y2="{y - 4}" stroke="#7a4ca0"/>'
            f'<text x="{LEFT + 218}" y="{y}">tokens</text>'
            f'<line x1="{LEFT + 270}" x2="{LEFT + 288}" y1="{y - 4}" y2="{y - 4}" stroke="#b00" stroke-dasharray="5 3"/>'
            f'<text x="{LEFT + 292}" y="{y}">leak time (UTC)</text></g>')


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _short(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}".replace(".0", "")
    return f"{n:.0f}"
