"""Reads shared by the CMDB pages, the API and the other apps; each fixes its number of queries."""

from dataclasses import dataclass
from typing import Literal

from django.db import connection
from django.db.models import QuerySet

from cmdb.choices import WHOLE_RELIES_ON_PART
from cmdb.models import ConfigurationItem, Environment, Relationship, Team

Direction = Literal["dependents", "dependencies"]

# Breadth-first walk done by PostgreSQL. Each level of the recursion is one row holding the whole
# frontier as arrays, and a CI joins the frontier only if it was never visited, so every CI is expanded
# once whatever the number of paths or cycles that reach it (a CTE over (id, depth) rows re-expands a
# CI once per depth and is orders of magnitude slower on a real estate). A second recursion follows the
# parent links from the root outwards to build one shortest path per CI.
# `steps` yields (next_id, via_id) for the frontier `l.ids`: one index-served scan per edge direction.
_WALK_SQL = """
WITH RECURSIVE levels(depth, ids, parents, visited) AS (
    SELECT 0, ARRAY[%(root)s]::bigint[], ARRAY[NULL]::bigint[], ARRAY[%(root)s]::bigint[]
  UNION ALL
    SELECT l.depth + 1, nxt.ids, nxt.parents, l.visited || nxt.ids
    FROM levels l
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(s.next_id ORDER BY s.next_id), '{{}}') AS ids,
               coalesce(array_agg(s.via_id ORDER BY s.next_id), '{{}}') AS parents
        FROM (
            SELECT DISTINCT ON (step.next_id) step.next_id, step.via_id
            FROM (
                SELECT e.{forward_next} AS next_id, e.{forward_via} AS via_id
                FROM cmdb_relationship e
                WHERE e.{forward_via} = ANY(l.ids) AND e.rel_type <> ALL(%(reversed_types)s)
              UNION ALL
                SELECT e.{forward_via}, e.{forward_next}
                FROM cmdb_relationship e
                WHERE e.{forward_next} = ANY(l.ids) AND e.rel_type = ANY(%(reversed_types)s)
            ) step
            WHERE step.next_id NOT IN (SELECT unnest(l.visited))
            ORDER BY step.next_id, step.via_id
        ) s
    ) nxt
    WHERE cardinality(l.ids) > 0 AND l.depth < %(max_depth)s
),
reached AS (
    SELECT lv.depth, r.id, r.parent
    FROM levels lv, unnest(lv.ids, lv.parents) AS r(id, parent)
    WHERE lv.depth > 0
),
paths(id, depth, path) AS (
    SELECT %(root)s::bigint, 0, ARRAY[%(root)s]::bigint[]
  UNION ALL
    SELECT r.id, r.depth, p.path || r.id
    FROM reached r JOIN paths p ON r.parent = p.id AND r.depth = p.depth + 1
)
SELECT p.id, p.depth, p.path
FROM paths p
WHERE p.depth > 0
ORDER BY p.depth, p.id
"""

_DIRECTIONS = {
    # Dependents of X: for a depends_on edge whose target is in the frontier, the source is next.
    "dependents": _WALK_SQL.format(forward_next="source_id", forward_via="target_id"),
    "dependencies": _WALK_SQL.format(forward_next="target_id", forward_via="source_id"),
}


@dataclass(frozen=True)
class ImpactEntry:
    """A CI reached from the root: `depth` hops away, by `path` (CI ids from the root to it)."""

    ci_id: int
    depth: int
    path: list[int]


def impact_walk(ci_id: int, *, direction: Direction, max_depth: int = 1000) -> list[ImpactEntry]:
    """Every CI reachable from `ci_id` in one direction, nearest first; cycles terminate."""
    with connection.cursor() as cursor:
        cursor.execute(
            _DIRECTIONS[direction],
            {"root": ci_id, "max_depth": max_depth, "reversed_types": list(WHOLE_RELIES_ON_PART)},
        )
        return [ImpactEntry(ci_id=row[0], depth=row[1], path=row[2]) for row in cursor.fetchall()]


@dataclass(frozen=True)
class Impact:
    """Both walks of a CI in full, with the CIs of the first `limit` entries of each loaded in `items`."""

    root: ConfigurationItem
    dependents: list[ImpactEntry]
    dependencies: list[ImpactEntry]
    items: dict[int, ConfigurationItem]
    limit: int

    def labelled(self, entries: list[ImpactEntry]) -> list[tuple[ImpactEntry, ConfigurationItem, list[str]]]:
        """The loaded entries, each with its CI and its path as CI names."""
        return [(e, self.items[e.ci_id], [self.items[i].name for i in e.path]) for e in entries[: self.limit]]


def ci_impact(ci: ConfigurationItem, *, limit: int = 1000) -> Impact:
    """Both walks plus one query loading the CIs to show (3 queries whatever the radius)."""
    dependents = impact_walk(ci.pk, direction="dependents")
    dependencies = impact_walk(ci.pk, direction="dependencies")
    wanted = {i for e in dependents[:limit] + dependencies[:limit] for i in e.path} - {ci.pk}
    items = {c.pk: c for c in configuration_items().filter(pk__in=wanted)}
    items[ci.pk] = ci
    return Impact(root=ci, dependents=dependents, dependencies=dependencies, items=items, limit=limit)


def configuration_items() -> QuerySet[ConfigurationItem]:
    return ConfigurationItem.objects.select_related("owner_team", "environment")


def relationships() -> QuerySet[Relationship]:
    return Relationship.objects.select_related("source", "target")


def teams() -> QuerySet[Team]:
    return Team.objects.all()


def environments() -> QuerySet[Environment]:
    return Environment.objects.select_related("owner_team")
