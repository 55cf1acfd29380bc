"""The page of `evo compare --html FILE`: best score against evaluations for every run, as
an inline SVG, above the comparison's table. Self-contained: no script, no network."""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from evo.errors import UserError

PALETTE = ("#1f5fa8", "#d9622b", "#2e8b57", "#b8323f", "#7a52a6", "#8c6239", "#c2469b", "#5f6b73",
           "#9a9a1f", "#1b9aaa")
DASHES = ("", "7 4", "2 3", "10 3 2 3", "4 4 1 4")


def write_page(path: Path, comparison: dict[str, Any], curves: dict[str, tuple[tuple[int, float], ...]],
               header: list[str], rows: list[list[str]]) -> None:
    """The page for ``comparison`` (``compare``'s output), the runs' curves by run folder
    and the table's header and rows."""
    series = []
    for gi, g in enumerate(comparison["groups"]):
        for si, run_dir in enumerate(g["runs"]):
            label = next(r["name"] for r in comparison["runs"] if r["run_dir"] == run_dir)
            series.append((label, PALETTE[gi % len(PALETTE)], DASHES[si % len(DASHES)], curves[run_dir]))
    score = comparison["score_name"] or "score"
    lefts = len(comparison["columns"]) + 2  # config, seeds and state read as text

    def cells(tag: str, values: list[str]) -> str:
        return "".join(f'<{tag}{" class=l" if i < lefts else ""}>{html.escape(v)}</{tag}>' for i, v in enumerate(values))

    table = ("<table><tr>" + cells("th", header) + "</tr>"
             + "".join("<tr>" + cells("td", row) + "</tr>" for row in rows) + "</table>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>evo compare</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-top: 16px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; white-space: nowrap; }}
th {{ background: #f3f3f3; }}
.l {{ text-align: left; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #333; }}
</style></head><body>
<h1>evo compare</h1>
<p>{len(comparison["runs"])} runs; best {html.escape(score)} (lower is better) after each evaluation.
Runs of one group share a colour; seeds differ by dash.</p>
{plot_svg(series, score)}
{table}
</body></html>
"""
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None


def plot_svg(series: list[tuple[str, str, str, tuple[tuple[int, float], ...]]], y_label: str) -> str:
    """Step lines of best score against evaluations, one per run, as an inline SVG."""
    width, left, right, top, bottom, plot_h = 960, 70, 330, 20, 50, 350
    # The legend lists every run, so a long one makes the picture taller.
    height = max(top + plot_h + bottom, top + 18 * len(series) + 10)
    points = [p for *_, curve in series for p in curve]
    if not points:
        return "<p>No run has a valid candidate yet: nothing to plot.</p>"
    x_max = max(x for x, _ in points)
    y_lo, y_hi = min(y for _, y in points), max(y for _, y in points)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w = width - left - right

    def sx(x: float) -> float:
        return left + plot_w * x / max(x_max, 1)

    def sy(y: float) -> float:
        return top + plot_h * (y_hi - y) / (y_hi - y_lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="best score against evaluations">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for x in _ticks(0, x_max):
        parts.append(f'<line x1="{sx(x):.1f}" y1="{top + plot_h}" x2="{sx(x):.1f}" y2="{top + plot_h + 5}" '
                     f'stroke="#999"/><text x="{sx(x):.1f}" y="{top + plot_h + 18}" '
                     f'text-anchor="middle">{x:g}</text>')
    for y in _ticks(y_lo, y_hi):
        parts.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + plot_w}" y2="{sy(y):.1f}" '
                     f'stroke="#eee"/><text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">evaluations</text>')
    parts.append(f'<text transform="translate(16 {top + plot_h / 2}) rotate(-90)" '
                 f'text-anchor="middle">best {html.escape(y_label)}</text>')
    for i, (label, colour, dash, curve) in enumerate(series):
        if not curve:
            continue
        steps = [curve[0]]
        for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
            steps += [(x1, y0), (x1, y1)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in steps)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash_attr} points="{coords}">'
                     f'<title>{html.escape(label)}: {curve[-1][1]:.4f}</title></polyline>')
        ly = top + 8 + 18 * i
        parts.append(f'<line x1="{width - right + 16}" y1="{ly}" x2="{width - right + 44}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
                     f'<text x="{width - right + 50}" y="{ly + 4}">{html.escape(_shorten(label, 48))}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values from lo to hi: steps of 1, 2 or 5 times a power of ten."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(count)]
