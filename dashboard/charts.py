"""Bar charts as SVG, drawn on the server: a few rectangles need no chart library and no script."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 180, 24


def bars(title: str, labels: list[str], values: list[int], every: int = 1) -> Markup:
    """A bar chart; every `every`-th label is written under its bar."""
    top = max(values, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(values), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT + 2 * PAD}" '
        f'width="{WIDTH}" height="{HEIGHT + 2 * PAD}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{PAD}" y="14" class="chart-title">{escape(title)} (max {top})</text>',
    ]
    if not any(values):
        parts.append(
            f'<text class="axis" x="{WIDTH / 2}" y="{PAD + HEIGHT / 2}" text-anchor="middle">nothing yet</text>'
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = HEIGHT * value / top
        x = PAD + i * step
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{PAD + HEIGHT - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}"><title>{escape(label)}: {value}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{x + step / 2:.1f}" y="{PAD + HEIGHT + 14}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
