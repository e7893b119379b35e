"""What the dashboard tests share: a small world of cohorts to look at, and logging in.

``seed_dashboard`` builds, on the kit's virtual clock and through the use cases (the
mini script of :mod:`tests.support.funnel_kit`, USD):

- two regions, SEA (a weekly target of five cohorts) and LATAM (one);
- three cohorts: ``C1`` in SEA (the one with figures, led by Lina), ``C2`` in LATAM,
  ``C3`` in SEA, paused;
- on ``C1``: the warm-up's first day up to its red envelope, which three members empty
  in 30 s (3 shares of 1.00 USD); ops pause and resume it (an API key, then a
  command-line login); five members in the task group, four of whom finish
  ``invite_fans`` (reward 0.50 each; the budget pays what it can and owes the rest) and
  one who starts it.

``seed_kpis`` adds what the KPI pages show (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from funnels.cohorts.launch import StartCohort
from funnels.kernel.actor import OpsAuthor
from funnels.kernel.records import ApiKeyRecord, CohortRecord, MemberRef
from funnels.kernel.stages import Stage
from funnels.ops.actions import PauseByOps, ResumeByOps
from funnels.ops.keys import CreateApiKey
from funnels.people.regions import AddRegion
from funnels.scripts.loader import LoadedScript, load_script_text
from tests.support.funnel_kit import (
    START,
    TASK_CHAT,
    WARMUP_CHAT,
    Kit,
    script_text,
    task_at,
    warmup_at,
)

DASHBOARD = "/dashboard"


@dataclass(frozen=True, slots=True)
class Seeded:
    main: CohortRecord
    latam: CohortRecord
    paused: CohortRecord
    key: ApiKeyRecord
    secret: str
    """The API key itself, as an operator pastes it."""
    lina: MemberRef
    """``C1``'s leader."""
    admitted: list[MemberRef] = field(default_factory=list)
    """The five members of ``C1``'s task group."""


async def seed_dashboard(kit: Kit) -> Seeded:
    sea = await AddRegion(kit.deps)("SEA", "South-East Asia", "Asia/Singapore", 5)
    latam = await AddRegion(kit.deps)("LATAM", "Latin America", "America/Bogota", 1)
    key, secret = await CreateApiKey(kit.deps)("ops-sea")
    async with kit.store.transaction() as tx:
        lina = await tx.users.ensure_user(4001, "Lina", "en", kit.clock.now())
        await tx.commit()
    main = await kit.start(region_id=sea.id, leader=lina)
    other = await kit.start(chat=None, region_id=latam.id)
    paused = await kit.start(chat=None, region_id=sea.id)
    async with kit.store.transaction() as tx:
        await tx.cohorts.set_status(paused.id, "paused", "ops asked", kit.clock.now())
        await tx.commit()

    refs = await kit.members(3)
    await kit.run_until(warmup_at(1, "11:00"))
    opened = warmup_at(1, "12:00")
    await kit.tick(opened)
    envelope = await kit.envelope_id(main.id)
    for ref, after in zip(refs, (5, 9, 30), strict=True):
        kit.clock.set(opened + timedelta(seconds=after))
        await kit.tap(envelope, ref.user_id, close=False)

    kit.clock.set(warmup_at(1, "13:00"))
    await PauseByOps(kit.deps)(main.id, OpsAuthor(f"api key {key.name}", key.id))
    kit.clock.set(warmup_at(1, "13:05"))
    await ResumeByOps(kit.deps)(main.id, OpsAuthor("ana via the command line"))

    async with kit.store.transaction() as tx:
        await tx.cohorts.bind_task_chat(main.id, TASK_CHAT)
        await tx.commit()
    members = await kit.admitted(main, 5)
    kit.clock.set(task_at(1, "12:00"))
    for n, member in enumerate(members):
        fans = 3 if n < 4 else 1
        at = task_at(1, "10:00")
        events = [kit.event("fan.locked", at + timedelta(minutes=i), member) for i in range(fans)]
        await kit.ingest()("platform", events)
    return Seeded(main, other, paused, key, secret, lina, members)


CHILD_CHAT, GRANDCHILD_CHAT = -100_333, -100_444
AB_CHATS = (-100_501, -100_502, -100_503)
PITCH_LINE = '        text: "Reply 1 to join the task group."\n'
STORY = '        variants: [{id: story, weight: 1, text: "Reply 1 and start tomorrow."}]\n'


@dataclass(frozen=True, slots=True)
class SeededKpis:
    base: Seeded
    child: CohortRecord
    """``C4``: the line a graduate of ``C1`` launched (generation 2)."""
    grandchild: CohortRecord
    """``C5``: the line a graduate of ``C4`` launched (generation 3)."""
    ab: list[CohortRecord]
    """``AB1`` to ``AB3``: the mini script with a pitch in two wordings."""
    ab_script: LoadedScript


def ab_script() -> LoadedScript:
    """The mini script whose pitch has a second wording, ``story``."""
    return load_script_text(script_text().replace(PITCH_LINE, PITCH_LINE + STORY), "ab.yaml")


async def _line(
    kit: Kit, parent: CohortRecord, leader: MemberRef, code: str, chat: int, generation: int
) -> CohortRecord:
    return await StartCohort(kit.deps)(
        kit.loaded,
        start=START,
        code=code,
        warmup_chat_id=chat,
        region_id=parent.region_id,
        leader_id=leader.user_id,
        parent_cohort_id=parent.id,
        generation=generation,
    )


async def seed_kpis(kit: Kit) -> SeededKpis:
    """``seed_dashboard``, then what the KPI pages show, all launched in ISO week
    2026-W10 (the clock stays on task day 1, Wednesday 2026-03-04):

    - on ``C1``: two of the five in the task group sell, the first becomes a
      shopkeeper; six messages from two members in the group that day; 0.10 USD more
      spent (1.60 of 1.70: the budget is nearly spent, a red flag);
    - ``C4`` in SEA, generation 2, led by that shopkeeper: four join, two sell, one of
      them a shopkeeper; ``C5`` in SEA, generation 3, led by a ``C4`` member: two join,
      one sells. SEA has launched four of its five (a red flag); LATAM one of one;
    - ``AB1``..``AB3`` (no region, no leader) on :func:`ab_script`: ten join each; four,
      two and none reply; ``AB3``'s pitch has opened (0 of 10 replied: a red flag).
    """
    base = await seed_dashboard(kit)
    main, admitted = base.main, base.admitted
    await kit.force_stage(main.id, admitted[0].user_id, Stage.SHOPKEEPER)
    await kit.force_stage(main.id, admitted[1].user_id, Stage.SOLD)
    assert admitted[0].telegram_id is not None and admitted[1].telegram_id is not None
    await kit.chatter()(WARMUP_CHAT, {admitted[0].telegram_id: 4, admitted[1].telegram_id: 2})
    async with kit.store.transaction() as tx:
        assert await tx.cohorts.reserve(main.id, 10)
        await tx.commit()

    child = await _line(kit, main, admitted[0], "C4", CHILD_CHAT, 2)
    theirs = await kit.members(4, chat=CHILD_CHAT)
    await kit.force_stage(child.id, theirs[0].user_id, Stage.SHOPKEEPER)
    await kit.force_stage(child.id, theirs[1].user_id, Stage.SOLD)
    grandchild = await _line(kit, child, theirs[2], "C5", GRANDCHILD_CHAT, 3)
    (sold, _) = await kit.members(2, chat=GRANDCHILD_CHAT)
    await kit.force_stage(grandchild.id, sold.user_id, Stage.SOLD)

    loaded = ab_script()
    ab = []
    for n, (chat, replied) in enumerate(zip(AB_CHATS, (4, 2, 0), strict=True)):
        cohort = await kit.start(chat=chat, code=f"AB{n + 1}", loaded=loaded)
        refs = await kit.members(10, chat=chat)
        for ref in refs[:replied]:
            await kit.force_stage(cohort.id, ref.user_id, Stage.REPLIED)
        ab.append(cohort)
    async with kit.store.transaction() as tx:
        await tx.cohorts.open_pitch(ab[-1].id, kit.clock.now())
        await tx.commit()
    return SeededKpis(base, child, grandchild, ab, loaded)
