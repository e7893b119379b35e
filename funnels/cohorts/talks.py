"""Giving a talk part by part: the one talk runner, for the warm-up's talks and for the
group task's talk in a member's own group. Each part is a step run (``part`` its index)
that the tick claims only once the parts before it are done, so parts go out in order."""

from __future__ import annotations

from funnels.cohorts.ports import CohortsTx
from funnels.deps import Deps
from funnels.kernel.messaging import ScriptPost
from funnels.kernel.records import StepRunRecord
from funnels.scripts.model import Talk
from funnels.scripts.variants import arms, draw, with_arm

Outcome = dict[str, object]


async def post_talk_part(
    deps: Deps, run: StepRunRecord, talk: Talk, chat: int, locale: str, audience: str
) -> Outcome:
    """Post part ``run.part`` of ``talk`` into ``chat``: the first part opens with the
    title and speaker (pinned if the talk says so, with slow mode on); the last lifts
    slow mode and the pin. The first part's run is keyed by the talk's ``source``.
    ``audience`` (a cohort's code, or a member's group within it) draws the part's
    wording when it declares variants."""
    part = run.part or 0
    m = deps.messenger
    if part == 0 and talk.slow_mode:
        await m.set_slow_mode(chat, int(talk.slow_mode.total_seconds()))
    arm = draw(arms(talk.parts[part]), audience, run.key)
    text = arm.text
    if part == 0:
        text = f"{talk.title}\n— {talk.speaker}\n\n{text}"
    message_id = await m.send(
        chat,
        ScriptPost(text, arm.media, locale),
        pin=talk.pin and part == 0,
    )
    if part == len(talk.parts) - 1:
        if talk.slow_mode:
            await m.set_slow_mode(chat, 0)
        if talk.pin:
            first_id = message_id if part == 0 else await _first_part_id(deps, run)
            if first_id:
                await m.unpin(chat, first_id)
    return with_arm({"message_id": message_id}, talk.parts[part], arm)


async def _first_part_id(deps: Deps, run: StepRunRecord) -> int:
    """The message id of a talk's opening part, kept in its run's outcome."""
    async with deps.uow(CohortsTx).transaction() as tx:
        first = await tx.steps.get(run.cohort_id, run.source)
    raw = (first.outcome or {}).get("message_id") if first else None
    return raw if isinstance(raw, int) else 0
