"""Regions: where cohorts run, with their time zone and weekly target."""

from __future__ import annotations

from funnels.deps import Deps
from funnels.kernel.records import RegionRecord
from funnels.kernel.refusals import AlreadyExists, Refused
from funnels.kernel.text import cut
from funnels.kernel.zones import find_zone
from funnels.people.ports import PeopleTx


class AddRegion:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, code: str, name: str, timezone: str, weekly_target: int = 1
    ) -> RegionRecord:
        if find_zone(timezone) is None:
            raise Refused("bad_timezone", timezone=timezone)
        code, name = code.strip(), name.strip()
        bare = code.replace("-", "").replace("_", "")
        if not (code.isascii() and bare.isalnum() and len(code) <= 32):
            raise Refused("bad_region", code=cut(code, 40))
        if not name or len(name) > 128 or not name.isprintable():
            raise Refused("bad_region_name", name=cut(name, 40))
        if weekly_target < 0:
            raise Refused("bad_region", code=code)
        async with self.deps.uow(PeopleTx).transaction() as tx:
            try:
                region = await tx.regions.add(
                    code.strip().upper(), name, timezone, weekly_target, self.deps.clock.now()
                )
            except AlreadyExists:
                raise Refused("region_exists", code=code.upper()) from None
            await tx.commit()
        return region
