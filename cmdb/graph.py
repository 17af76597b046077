"""Lay out a CI's impact as columns for a server-rendered SVG: dependencies left, dependents right."""

from dataclasses import dataclass

from cmdb.models import ConfigurationItem
from cmdb.selectors import Impact, ImpactEntry

COLUMN_GAP = 210
ROW_GAP = 34
NODE_WIDTH = 170
NODE_HEIGHT = 24
MARGIN = 20


@dataclass(frozen=True)
class Node:
    x: int
    y: int
    depth: int  # negative for dependencies, positive for dependents, 0 for the CI itself
    ci: ConfigurationItem | None = None
    hidden: int = 0  # for the "+ N more" placeholder of a crowded column


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    nodes: list[Node]
    edges: list[Edge]


def impact_picture(impact: Impact, *, max_depth: int = 4, per_column: int = 10) -> Picture:
    columns: dict[int, list[ImpactEntry]] = {0: []}
    for sign, entries in ((1, impact.dependents), (-1, impact.dependencies)):
        for entry in entries:
            if entry.depth <= max_depth:
                columns.setdefault(sign * entry.depth, []).append(entry)
    depths = sorted(columns)
    tallest = min(per_column + 1, max(len(v) for v in columns.values()) or 1)
    height = 2 * MARGIN + tallest * ROW_GAP
    position: dict[tuple[int, int], tuple[int, int]] = {}
    nodes: list[Node] = []
    for col, depth in enumerate(depths):
        x = MARGIN + col * COLUMN_GAP
        if depth == 0:
            y = height // 2 - ROW_GAP // 2
            nodes.append(Node(x, y, 0, impact.root))
            position[(0, impact.root.pk)] = (x, y)
            continue
        loaded = [e for e in columns[depth] if e.ci_id in impact.items]
        loaded.sort(key=lambda e: (impact.items[e.ci_id].criticality, impact.items[e.ci_id].name))
        shown = loaded[:per_column]
        hidden = len(columns[depth]) - len(shown)
        top = height // 2 - (len(shown) + (hidden > 0)) * ROW_GAP // 2
        for row, entry in enumerate(shown):
            y = top + row * ROW_GAP
            nodes.append(Node(x, y, depth, impact.items[entry.ci_id]))
            position[(depth, entry.ci_id)] = (x, y)
        if hidden > 0:
            nodes.append(Node(x, top + len(shown) * ROW_GAP, depth, None, hidden))
    edges = []
    for sign, entries in ((1, impact.dependents), (-1, impact.dependencies)):
        for entry in entries:
            here = position.get((sign * entry.depth, entry.ci_id))
            parent = position.get((sign * (entry.depth - 1), entry.path[-2])) if here else None
            if here and parent:
                near, far = (parent, here) if sign > 0 else (here, parent)
                edges.append(Edge(near[0] + NODE_WIDTH, near[1] + NODE_HEIGHT // 2, far[0], far[1] + NODE_HEIGHT // 2))
    width = 2 * MARGIN + (len(depths) - 1) * COLUMN_GAP + NODE_WIDTH
    return Picture(width=width, height=height, nodes=nodes, edges=edges)
