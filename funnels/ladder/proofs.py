"""Proof tasks: a member's screenshot, the leader's decision, and the event it makes.

Some tasks are done off the platform (a post on another network sends no event). For
those (``proof: true`` in the script) the member sends a screenshot to the bot in private
chat; it is stored as a pending proof and sent to the cohort's leader, who approves or
rejects it with a reason. An approval records ``proof.approved`` (``data.task``: the
task) through :class:`IngestEvents` under the event id ``proof:<id>``, so goals count it
once however often the decision is repeated. The member is told either way and may send
another screenshot after a rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

from funnels.deps import Deps
from funnels.kernel.actor import Actor
from funnels.kernel.messaging import Photo, ProofDecided, ProofForReview
from funnels.kernel.records import CohortRecord, IncomingEvent, ProofRecord, ProofState
from funnels.kernel.refusals import Refused
from funnels.ladder.events import IngestEvents
from funnels.ladder.ports import ProofsTx
from funnels.ladder.progress import open_tasks, task_group_of
from funnels.scripts.checks import PROOF_EVENT
from funnels.scripts.model import Task

PROOF_SOURCE = "proofs"

REJECT_REASONS = ("unreadable", "wrong_post", "not_public", "other")
"""Why a leader may reject a screenshot (the bot has the words for each)."""


@dataclass(frozen=True, slots=True)
class ProofSent:
    """Stored and sent on to the leader (``reached_leader``: False when the leader
    cannot be reached now; the proof waits, pending)."""

    proof_id: int
    task_title: str
    reached_leader: bool


@dataclass(frozen=True, slots=True)
class ProofChoice:
    """Several proof tasks are open: which one is the screenshot for? (ladder index,
    title) per task, for the member's buttons."""

    cohort_id: int
    options: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class ProofDecision:
    proof: ProofRecord
    task_title: str
    member_told: bool


class SubmitProof:
    """A member's screenshot, for the one open proof task or the one they picked.

    Refuses ``proof_no_task`` (no proof task open: nothing is stored),
    ``proof_pending`` (one is already waiting for the leader) and ``button_stale`` (a
    pick that names no open proof task of the member's current cohort)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def __call__(
        self, member: Actor, file_id: str, pick: tuple[int, int] | None = None
    ) -> ProofSent | ProofChoice:
        now = self.deps.clock.now()
        async with self.deps.uow(ProofsTx).transaction() as tx:
            found = await task_group_of(tx, member)
            if found is None:
                raise Refused("proof_no_task" if pick is None else "button_stale")
            user, cohort = found
            progress = await tx.tasks.for_member(cohort.id, user.user_id)
            candidates = [(i, t) for i, t in open_tasks(self.deps, cohort, progress) if t.proof]
            task = self._choose(cohort, candidates, pick)
            if isinstance(task, ProofChoice):
                return task
            proof_id = await tx.proofs.add(cohort.id, user.user_id, task.id, file_id, now)
            if proof_id is None:
                raise Refused("proof_pending", title=task.title)
            name = await tx.users.name(user.user_id) or member.name
            leader = await tx.users.ref(cohort.leader_id) if cohort.leader_id else None
            await tx.commit()
        reached = False
        if leader is not None:
            review = ProofForReview(
                proof_id,
                name,
                task.title,
                cohort.code,
                Photo(file_id),
                leader.language or cohort.locale,
            )
            reached = await self.deps.messenger.notify(leader, review)
        return ProofSent(proof_id, task.title, reached)

    @staticmethod
    def _choose(
        cohort: CohortRecord, candidates: list[tuple[int, Task]], pick: tuple[int, int] | None
    ) -> Task | ProofChoice:
        if pick is not None:
            picked_cohort, index = pick
            task = next((t for i, t in candidates if i == index), None)
            if picked_cohort != cohort.id or task is None:
                raise Refused("button_stale")
            return task
        if not candidates:
            raise Refused("proof_no_task")
        if len(candidates) == 1:
            return candidates[0][1]
        return ProofChoice(cohort.id, tuple((i, t.title) for i, t in candidates))


class DecideProof:
    """The leader's (or an admin's) Approve, or Reject with a reason.

    Refuses ``proof_unknown``, ``proof_not_yours`` (only the cohort's leader or an admin
    decides), ``button_stale`` (a reason that is not on the list) and ``proof_decided``
    (decided already: the first decision stands and nothing is counted twice)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def check(self, actor: Actor, proof_id: int, *, is_admin: bool) -> ProofRecord:
        """The proof, if ``actor`` may decide it now (before offering reasons)."""
        async with self.deps.uow(ProofsTx).transaction() as tx:
            proof, _decider = await self._decidable(tx, actor, proof_id, is_admin)
        if proof.state != "pending":
            raise Refused("proof_decided", state=proof.state)
        return proof

    async def __call__(
        self, actor: Actor, proof_id: int, *, approve: bool, reason: str | None, is_admin: bool
    ) -> ProofDecision:
        if not approve and reason not in REJECT_REASONS:
            raise Refused("button_stale")
        now = self.deps.clock.now()
        async with self.deps.uow(ProofsTx).transaction() as tx:
            proof, decider = await self._decidable(tx, actor, proof_id, is_admin)
            state: ProofState = "approved" if approve else "rejected"
            decided = await tx.proofs.decide(
                proof.id, state, None if approve else reason, decider, now
            )
            cohort = await tx.cohorts.get(proof.cohort_id)
            member = await tx.users.ref(proof.user_id)
            ref_code = await tx.users.ref_code(proof.user_id)
            stored = await tx.proofs.get(proof.id)
            await tx.commit()
        assert cohort is not None and member is not None and stored is not None
        if stored.state == "approved":
            # Also after a refusal: a crash between the decision and the event is mended
            # by the next press (the event id makes a repeat a duplicate).
            await self._record(stored, ref_code)
        if not decided:
            raise Refused("proof_decided", state=stored.state)
        title = self._title(cohort, stored.task_id)
        told = await self.deps.messenger.notify(
            member, ProofDecided(title, approve, stored.reason, member.language or cohort.locale)
        )
        return ProofDecision(stored, title, told)

    async def _decidable(
        self, tx: ProofsTx, actor: Actor, proof_id: int, is_admin: bool
    ) -> tuple[ProofRecord, int | None]:
        proof = await tx.proofs.get(proof_id)
        if proof is None:
            raise Refused("proof_unknown")
        cohort = await tx.cohorts.get(proof.cohort_id)
        decider = await tx.users.by_telegram(actor.telegram_id)
        leads = cohort is not None and decider is not None and cohort.leader_id == decider.user_id
        if not (leads or is_admin):
            raise Refused("proof_not_yours")
        return proof, decider.user_id if decider else None

    async def _record(self, proof: ProofRecord, ref_code: str) -> None:
        event = IncomingEvent(
            event_id=f"proof:{proof.id}",
            type=PROOF_EVENT,
            occurred_at=proof.decided_at or self.deps.clock.now(),
            member_ref=ref_code,
            data={"task": proof.task_id},
        )
        await IngestEvents(self.deps)(PROOF_SOURCE, [event])

    def _title(self, cohort: CohortRecord, task_id: str) -> str:
        try:
            return self.deps.scripts.get(cohort).task(task_id).title
        except KeyError:
            return task_id
