"""Bar charts as inline SVG, drawn on the server: no JavaScript library, no CDN (the console
must work on a machine without internet), and the numbers in the chart are the ones in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
_MARGIN_LEFT, _MARGIN_BOTTOM, _MARGIN_TOP = 48, 34, 22


def bar_chart(title: str, points: Sequence[tuple[str, float | None]],
              fmt: Callable[[float], str] = lambda v: f"{v:g}") -> Markup:
    """An SVG bar chart of ``(label, value)`` points; None values leave a gap.

    Labels and the title are escaped; ``fmt`` writes the value above each bar and in its
    tooltip, so the chart reads without hovering.
    """
    values = [v for _, v in points if v is not None]
    top = max(values, default=0.0) or 1.0
    plot_w = WIDTH - _MARGIN_LEFT - 8
    plot_h = HEIGHT - _MARGIN_BOTTOM - _MARGIN_TOP
    step = plot_w / max(len(points), 1)
    bar_w = max(step * 0.7, 1.0)
    every = max(1, len(points) // 12)  # at most ~12 axis labels
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
             f'<title>{escape(title)}</title>',
             f'<text x="{_MARGIN_LEFT}" y="14" class="chart-title">{escape(title)}</text>',
             f'<line x1="{_MARGIN_LEFT}" y1="{HEIGHT - _MARGIN_BOTTOM}" x2="{WIDTH - 8}" '
             f'y2="{HEIGHT - _MARGIN_BOTTOM}" class="axis"/>',
             f'<text x="{_MARGIN_LEFT - 4}" y="{_MARGIN_TOP + 4}" class="tick" '
             f'text-anchor="end">{escape(fmt(top))}</text>']
    for i, (label, value) in enumerate(points):
        x = _MARGIN_LEFT + i * step + (step - bar_w) / 2
        if value is not None:
            h = plot_h * value / top
            y = HEIGHT - _MARGIN_BOTTOM - h
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>')
            if len(points) <= 16:
                parts.append(f'<text class="value" x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" '
                             f'text-anchor="middle">{escape(fmt(value))}</text>')
        if i % every == 0:
            parts.append(f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{HEIGHT - _MARGIN_BOTTOM + 14}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
