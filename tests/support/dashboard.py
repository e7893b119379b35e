"""What the dashboard tests share: a small world of cohorts to look at, and logging in.

``seed_dashboard`` builds, on the kit's virtual clock and through the use cases (the
mini script of :mod:`tests.support.funnel_kit`, USD):

- three cohorts: ``C1`` in SEA (the one with figures), ``C2`` in LATAM, ``C3`` in SEA,
  paused;
- on ``C1``: the warm-up's first day up to its red envelope, which three members empty
  in 30 s (3 shares of 1.00 USD); ops pause and resume it (an API key, then a
  command-line login); five members in the task group, four of whom finish
  ``invite_fans`` (reward 0.50 each; the budget pays what it can and owes the rest) and
  one who starts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from funnels.kernel.actor import OpsAuthor
from funnels.kernel.records import ApiKeyRecord, CohortRecord
from funnels.ops.actions import PauseByOps, ResumeByOps
from funnels.ops.keys import CreateApiKey
from funnels.people.regions import AddRegion
from tests.support.funnel_kit import TASK_CHAT, Kit, task_at, warmup_at

DASHBOARD = "/dashboard"


@dataclass(frozen=True, slots=True)
class Seeded:
    main: CohortRecord
    latam: CohortRecord
    paused: CohortRecord
    key: ApiKeyRecord
    secret: str
    """The API key itself, as an operator pastes it."""


async def seed_dashboard(kit: Kit) -> Seeded:
    sea = await AddRegion(kit.deps)("SEA", "South-East Asia", "Asia/Singapore")
    latam = await AddRegion(kit.deps)("LATAM", "Latin America", "America/Bogota")
    key, secret = await CreateApiKey(kit.deps)("ops-sea")
    main = await kit.start(region_id=sea.id)
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
    return Seeded(main, other, paused, key, secret)
