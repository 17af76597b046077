"""Reads shared by the CMDB pages, the API and the other apps; each fixes its number of queries."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Lower

from cmdb.choices import WHOLE_RELIES_ON_PART
from cmdb.models import ConfigurationItem, Environment, Relationship, Team

Direction = Literal["dependents", "dependencies"]

# Breadth-first walk done by PostgreSQL. Each level of the recursion is one row holding the whole
# frontier as arrays, and a CI joins the frontier only if it was never visited, so every CI is expanded
# once whatever the number of paths or cycles that reach it (a CTE over (id, depth) rows re-expands a
# CI once per depth and is orders of magnitude slower on a real estate).
# Per level: one index-served scan per edge direction yields (next_id, via_id) for the frontier `l.ids`,
# and each CI reached keeps the smallest via_id as its parent, so the shortest path is deterministic.
# The visited CIs are `old`, sorted and searched by binary search (width_bucket returns the position of
# the greatest element <= the value), plus `recent`, unsorted and hashed once per level; `recent` is
# merged into `old` when it reaches half its size, so each CI is sorted a few times in all instead of
# every visited CI being re-hashed at every level (a 40,000-CI radius can be 20 levels deep).
# The query returns one row per level, `ids` sorted and `parents` aligned with them; `impact_walk`
# rebuilds the paths from the parent links. Building them in SQL, by a second recursion joining each
# level back to the paths, was planned as a nested loop over every (path, level entry) pair: quadratic,
# 17 s for a 42,000-CI radius where this whole walk now takes about 0.2 s.
_WALK_SQL = """
WITH RECURSIVE levels(depth, ids, parents, old, recent) AS (
    SELECT 0, ARRAY[%(root)s]::bigint[], ARRAY[NULL]::bigint[], ARRAY[%(root)s]::bigint[], '{{}}'::bigint[]
  UNION ALL
    SELECT l.depth + 1, nxt.ids, nxt.parents,
           CASE WHEN (cardinality(l.recent) + cardinality(nxt.ids)) * 2 > cardinality(l.old)
                THEN ARRAY(SELECT v FROM unnest(l.old || l.recent || nxt.ids) AS v ORDER BY v)
                ELSE l.old END,
           CASE WHEN (cardinality(l.recent) + cardinality(nxt.ids)) * 2 > cardinality(l.old)
                THEN '{{}}' ELSE l.recent || nxt.ids END
    FROM levels l
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(s.next_id ORDER BY s.next_id), '{{}}') AS ids,
               coalesce(array_agg(s.via_id ORDER BY s.next_id), '{{}}') AS parents
        FROM (
            SELECT step.next_id, min(step.via_id) AS via_id
            FROM (
                SELECT e.{forward_next} AS next_id, e.{forward_via} AS via_id
                FROM cmdb_relationship e
                WHERE e.{forward_via} = ANY(l.ids) AND e.rel_type <> ALL(%(reversed_types)s)
              UNION ALL
                SELECT e.{forward_via}, e.{forward_next}
                FROM cmdb_relationship e
                WHERE e.{forward_next} = ANY(l.ids) AND e.rel_type = ANY(%(reversed_types)s)
            ) step
            GROUP BY step.next_id
        ) s
        WHERE l.old[width_bucket(s.next_id, l.old)] IS DISTINCT FROM s.next_id
          AND s.next_id NOT IN (SELECT unnest(l.recent))
    ) nxt
    WHERE cardinality(l.ids) > 0 AND l.depth < %(max_depth)s
)
SELECT lv.depth, lv.ids, lv.parents
FROM levels lv
WHERE lv.depth > 0 AND cardinality(lv.ids) > 0
ORDER BY lv.depth
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
        levels = cursor.fetchall()
    paths = {ci_id: [ci_id]}
    entries = []
    with _cyclic_gc_paused():
        for depth, ids, parents in levels:
            for reached, parent in zip(ids, parents, strict=True):
                path = paths[parent] + [reached]
                paths[reached] = path
                entries.append(ImpactEntry(ci_id=reached, depth=depth, path=path))
    return entries


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cycle collector while a walk's entries are built. They hold no cycles, but a large
    radius allocates tracked objects (each entry and its path) by the tens of thousands, enough to
    trigger full collections of the process: more than half the Python time of a 40,000-CI walk."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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


def cis_named(names: list[str]) -> tuple[list[ConfigurationItem], list[str]]:
    """The CIs of these names, whatever the case, in one query; and the names no CI has."""
    found = {ci.lname: ci for ci in ConfigurationItem.objects.annotate(lname=Lower("name"))
             .filter(lname__in={name.lower() for name in names})}
    return ([found[name.lower()] for name in names if name.lower() in found],
            [name for name in names if name.lower() not in found])


def relationships() -> QuerySet[Relationship]:
    return Relationship.objects.select_related("source", "target")


def teams() -> QuerySet[Team]:
    return Team.objects.all()


def environments() -> QuerySet[Environment]:
    return Environment.objects.select_related("owner_team")
