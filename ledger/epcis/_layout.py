"""Layered drawing of a genealogy: columns by hops, rows ordered to keep edges short.

Upstream nodes go left of the root, downstream nodes right. A node's column is the longest
path between it and the root, so every edge points right even where paths of different length
meet; within a column, nodes are ordered by the mean row of their neighbours (a few barycenter
sweeps, as in Sugiyama-style layouts), which untangles most crossings of a plant's DAG.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NODE_W = 232
NODE_H = 38
COL_GAP = 64
ROW_GAP = 18
MARGIN = 24


@dataclass(frozen=True, slots=True)
class Placed:
    x: float
    y: float
    column: int


def _longest(
    node: str, root: str, step: Mapping[str, list[str]], memo: dict[str, int], active: set[str]
) -> int:
    if node == root:
        return 0
    if node in memo:
        return memo[node]
    if node in active:  # a cycle in the data: cut it here
        return 0
    active.add(node)
    nexts = [_longest(n, root, step, memo, active) for n in step.get(node, [])]
    active.discard(node)
    memo[node] = 1 + max(nexts, default=0)
    return memo[node]


def columns(root: str, hops: Mapping[str, int], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Column per node: <0 upstream, 0 root, >0 downstream; edges always point right."""
    toward_root: dict[str, list[str]] = defaultdict(list)  # upstream: source -> targets
    from_root: dict[str, list[str]] = defaultdict(list)  # downstream: target -> sources
    for s, t in edges:
        if s in hops and t in hops:
            if hops[s] < 0 and hops[t] <= 0:
                toward_root[s].append(t)
            if hops[t] > 0 and hops[s] >= 0:
                from_root[t].append(s)
    up: dict[str, int] = {}
    down: dict[str, int] = {}
    out = {}
    for n, h in hops.items():
        if h < 0:
            out[n] = -_longest(n, root, toward_root, up, set())
        elif h > 0:
            out[n] = _longest(n, root, from_root, down, set())
        else:
            out[n] = 0
    return out


def layout(
    root: str, hops: Mapping[str, int], edges: list[tuple[str, str]], *, sweeps: int = 6
) -> tuple[dict[str, Placed], float, float]:
    """Positions (top-left corners) of every node, and the drawing's width and height."""
    col = columns(root, hops, edges)
    layers: dict[int, list[str]] = defaultdict(list)
    for n in sorted(col, key=lambda n: (col[n], n)):
        layers[col[n]].append(n)
    neighbours: dict[str, list[str]] = defaultdict(list)
    for s, t in edges:
        if s in col and t in col:
            neighbours[s].append(t)
            neighbours[t].append(s)
    order = sorted(layers)
    rank = {n: i for c in order for i, n in enumerate(layers[c])}
    for sweep in range(sweeps):
        for c in order if sweep % 2 == 0 else reversed(order):
            side = -1 if sweep % 2 == 0 else 1  # left neighbours on forward sweeps

            def centre(n: str, side: int = side, c: int = c) -> float:
                near = [rank[m] for m in neighbours[n] if col[m] == c + side]
                return sum(near) / len(near) if near else rank[n]

            layers[c].sort(key=lambda n: (centre(n), rank[n]))
            rank.update({n: i for i, n in enumerate(layers[c])})
    tallest = max((len(v) for v in layers.values()), default=1)
    height = 2 * MARGIN + tallest * (NODE_H + ROW_GAP) - ROW_GAP
    placed = {}
    for i, c in enumerate(order):
        column = layers[c]
        offset = (tallest - len(column)) * (NODE_H + ROW_GAP) / 2
        for r, n in enumerate(column):
            placed[n] = Placed(
                MARGIN + i * (NODE_W + COL_GAP), MARGIN + offset + r * (NODE_H + ROW_GAP), c
            )
    width = 2 * MARGIN + len(order) * (NODE_W + COL_GAP) - COL_GAP
    return placed, width, height


EDGE_COLOURS = {"transformation": "#1f4e79", "aggregation": "#7f7f7f", "association": "#7030a0"}


def edges_svg(edges: Iterable[Mapping[str, Any]], placed: Mapping[str, Placed]) -> list[str]:
    """The arrow markers and one curved path per edge (`source` → `target`, its `relation` and
    the leaves of the `events` that drew it, as a tooltip), for an SVG of laid-out nodes.
    Transformations are solid, aggregations and associations dashed."""
    parts = ["<defs>"]
    for rel, colour in EDGE_COLOURS.items():
        parts.append(
            f'<marker id="arrow-{rel}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    parts.append("</defs>")
    for e in edges:
        a, b = placed.get(e["source"]), placed.get(e["target"])
        if a is None or b is None:
            continue
        x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
        mid = (x1 + x2) / 2
        rel = e["relation"]
        dash = ' stroke-dasharray="5,4"' if rel != "transformation" else ""
        leaves = ", ".join(map(str, e["events"]))
        title = f"{rel}: {e['source']} → {e['target']} (leaf {leaves})"
        parts.append(
            f'<path class="edge {html.escape(rel)}" d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} '
            f'{mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" fill="none" '
            f'stroke="{EDGE_COLOURS.get(rel, "#444")}" stroke-width="1.6"{dash} '
            f'marker-end="url(#arrow-{html.escape(rel)})"><title>{html.escape(title)}</title></path>'
        )
    return parts
