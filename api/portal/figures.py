"""Small figures drawn on the server as inline SVG: no script, no style attribute (the portal's
CSP allows neither), colours from presentation attributes and the portal's stylesheet."""

from __future__ import annotations

import html
from typing import Any

from markupsafe import Markup

W, H, PAD = 320, 200, 36  # figure size and margin, in px


def _x(v: float) -> float:
    return PAD + v * (W - 2 * PAD)


def _y(v: float) -> float:
    return H - PAD - v * (H - 2 * PAD)


def _frame(title: str, xlabel: str, ylabel: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}" class="figure">',
        f"<title>{html.escape(title)}</title>",
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" '
        'fill="none" stroke="#999"/>',
        f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" font-size="11">'
        f"{html.escape(xlabel)}</text>",
        f'<text x="10" y="{PAD - 10}" font-size="11">{html.escape(ylabel)}</text>',
        f'<text x="{PAD - 4}" y="{_y(0) + 4}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{PAD - 4}" y="{_y(1) + 4}" text-anchor="end" font-size="10">1</text>',
    ]


def coverage_svg(coverage: dict[str, Any]) -> Markup:
    """Realised interval coverage per level (bars, Wilson 95 % whiskers) against nominal
    (a dashed tick): a bar well under its tick is a broken promise."""
    levels = sorted(coverage, key=int)
    parts = _frame("interval coverage: realised against nominal", "interval level", "coverage")
    slot = (W - 2 * PAD) / max(1, len(levels))
    for i, lv in enumerate(levels):
        c = coverage[lv]
        x0 = PAD + i * slot + slot * 0.25
        bw = slot * 0.5
        lo, hi = c["wilson95"]
        parts += [
            f'<rect x="{x0:.1f}" y="{_y(c["rate"]):.1f}" width="{bw:.1f}" '
            f'height="{_y(0) - _y(c["rate"]):.1f}" fill="#5b8def" class="realised">'
            f"<title>{lv}%: {c['covered']}/{c['n']} covered, p {c['p_value']:.2g}</title></rect>",
            f'<line x1="{x0 + bw / 2:.1f}" x2="{x0 + bw / 2:.1f}" y1="{_y(lo):.1f}" '
            f'y2="{_y(hi):.1f}" stroke="#222"/>',
            f'<line x1="{x0 - 6:.1f}" x2="{x0 + bw + 6:.1f}" y1="{_y(c["nominal"]):.1f}" '
            f'y2="{_y(c["nominal"]):.1f}" stroke="#d33" stroke-dasharray="4 3" class="nominal"/>',
            f'<text x="{x0 + bw / 2:.1f}" y="{_y(0) + 14:.1f}" text-anchor="middle" '
            f'font-size="11">{html.escape(lv)}%</text>',
        ]
    parts.append("</svg>")
    return Markup("\n".join(parts))


def reliability_svg(bins: list[dict[str, Any]]) -> Markup:
    """A reliability diagram: accuracy against mean confidence per bin (dots sized by count);
    a calibrated model sits on the diagonal."""
    parts = _frame("reliability: accuracy against confidence", "confidence", "accuracy")
    parts.append(
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#999" '
        'stroke-dasharray="4 3"/>'
    )
    most = max((b["n"] for b in bins), default=1)
    for b in bins:
        r = 3 + 5 * (b["n"] / most)
        parts.append(
            f'<circle cx="{_x(b["confidence"]):.1f}" cy="{_y(b["accuracy"]):.1f}" r="{r:.1f}" '
            f'fill="#5b8def" class="bin"><title>{b["n"]} inspections: confidence '
            f"{b['confidence']:.2f}, accuracy {b['accuracy']:.2f}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))
