"""The tree of self-cycled lines: a cohort whose graduate launched a line of their own
is its parent (``parent_cohort_id``), and that line's graduates grow the next
generation. Read from the same per-cohort figures as the other KPIs (``Kpis``), so a
node's joined, sold and shopkeepers are the rollups' (members at the stage or beyond).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from funnels.deps import Deps
from funnels.kernel.stages import Stage
from funnels.ops.kpis import Generation
from funnels.ops.ports import CohortFigures, CohortFilter, KpisTx


@dataclass(frozen=True, slots=True)
class LineNode:
    """A cohort in the tree, with the lines its graduates launched below it."""

    cohort: CohortFigures
    children: list[LineNode]

    @property
    def joined(self) -> int:
        return self.cohort.stages.get(Stage.JOINED, 0)

    @property
    def sold(self) -> int:
        return self.cohort.stages.get(Stage.SOLD, 0)

    @property
    def shopkeepers(self) -> int:
        return self.cohort.stages.get(Stage.SHOPKEEPER, 0)

    def walk(self) -> list[LineNode]:
        """This node and every node below it, depth first."""
        found, todo = [], [self]
        while todo:
            node = todo.pop()
            found.append(node)
            todo.extend(reversed(node.children))
        return found

    def line(self) -> Generation:
        """The whole line from this cohort down, summed (``generation`` is this
        cohort's)."""
        return _summed(self.cohort.generation, [n.cohort for n in self.walk()])


@dataclass(frozen=True, slots=True)
class LinesTree:
    roots: list[LineNode]
    """Cohorts no other cohort (of the choice) grew, oldest first; each with its lines."""
    generations: list[Generation]
    """Every cohort of the choice summed per generation, the first generation first."""

    @property
    def grown(self) -> int:
        """Cohorts launched by graduates (every node that is not a root)."""
        return sum(len(root.walk()) - 1 for root in self.roots)


def _summed(generation: int, cohorts: Sequence[CohortFigures]) -> Generation:
    def total(stage: Stage) -> int:
        return sum(c.stages.get(stage, 0) for c in cohorts)

    return Generation(
        generation,
        len(cohorts),
        total(Stage.JOINED),
        total(Stage.SOLD),
        total(Stage.SHOPKEEPER),
    )


def line_tree(cohorts: Sequence[CohortFigures]) -> LinesTree:
    """The cohorts as a forest by ``parent_cohort_id``: a cohort whose parent is not
    among them is a root. Children keep the order of ``cohorts`` (oldest first). A
    cohort is placed once, even if the links were to loop."""
    by_id = {c.id: c for c in cohorts}
    children: dict[int, list[CohortFigures]] = defaultdict(list)
    roots: list[CohortFigures] = []
    for c in cohorts:
        parent = c.parent_cohort_id
        if parent is not None and parent in by_id and parent != c.id:
            children[parent].append(c)
        else:
            roots.append(c)
    placed: set[int] = set()

    def grow(cohort: CohortFigures) -> LineNode:
        placed.add(cohort.id)
        below = [grow(child) for child in children.get(cohort.id, []) if child.id not in placed]
        return LineNode(cohort, below)

    forest = [grow(root) for root in roots]
    # Links that loop have no root: each loop is shown from its oldest cohort.
    for c in cohorts:
        if c.id not in placed:
            forest.append(grow(c))
    per_generation: dict[int, list[CohortFigures]] = defaultdict(list)
    for c in cohorts:
        per_generation[c.generation].append(c)
    generations = [_summed(g, cs) for g, cs in sorted(per_generation.items())]
    return LinesTree(forest, generations)


class LineTree:
    """The tree of lines over every cohort (or a region's)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(self, region: str | None = None) -> LinesTree:
        async with self.deps.uow(KpisTx).transaction() as tx:
            cohorts = await tx.kpis.cohort_figures(CohortFilter(region=region))
        return line_tree(cohorts)
