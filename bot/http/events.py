"""``POST /api/v1/events``: the platform's events, signed with the Standard Webhooks
scheme, stored before they are acknowledged (202) and applied to the ladder after.

What a sender gets, in this order: 503 when inbound events are not configured; 413 past
the size limit (before the body is read whole); 401 for a missing, bad or stale
signature (nothing stored); 400 for a body that is not JSON; 422 naming the field of an
event that is not one; 202 with how many events were new and how many repeats (a
repeat is acknowledged and never applied twice); 503 with ``Retry-After`` when the
database could not store them (send again: nothing was acknowledged). Errors are RFC 9457
problem details.

The intake stores concurrent requests together (group commit: one transaction for what
arrives during the previous one); :class:`EventApplier` applies what is stored in the
background, woken by each store; the tick catches up with anything a stop or a crash
left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import to_json
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot import metrics
from bot.http.bodies import TooLarge, read_body
from bot.http.front import FastRoute
from bot.http.problems import problem
from bot.telegram.batching import GroupCommit
from funnels.deps import Deps
from funnels.kernel.messaging import RewardNotice
from funnels.kernel.records import IncomingEvent, MemberRef
from funnels.ladder.events import ApplyEvents, IngestResult, Stored, StoreEvents
from funnels.ladder.ports import LadderTx

log = logging.getLogger("funnelbot.events")

SOURCE = "platform"
"""What events posted here are stored as (ids are unique per source)."""
MAX_EVENTS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A full batch of 1,000 events at up to 4 KiB each."""
MAX_EVENT_BYTES = 4096
"""One event's ``data`` as JSON: what goals read is a few fields."""
FUTURE_SKEW = timedelta(minutes=5)
"""How far in the future ``occurred_at`` may be: the Standard Webhooks tolerance."""
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
API = "/api/v1"
PATH = f"{API}/events"


def apply_batch(dialect: str) -> int:
    """Events applied in one transaction while stores keep coming. On SQLite a store
    waits while one runs (they take turns, and the loop with them), so they stay near
    10 ms; on PostgreSQL they run side by side, and fuller ones cost less per event."""
    return 50 if dialect == "sqlite" else 200


QUIET_BATCHES = 4
"""How much fuller a transaction is once the stores pause (nobody waits behind it), or
once the applier is :data:`CATCH_UP_AFTER` behind."""
APPLY_QUIET = 0.05
"""Seconds with no store in progress or finished after which the applier starts."""
APPLY_LAG = 2.0
"""Seconds after a store by which the applier starts, pause in the stores or not: a
burst is acknowledged at full speed and applied right after it; under a steady flow the
applier takes its turn every few seconds."""


TELL_BEHIND = 5000
"""Reward notices that may wait for the teller before the applier waits for it."""
SETTLE_POLL = 0.05
"""Seconds between two looks at the queue while :meth:`EventApplier.settled` waits for
the other processes' appliers."""


DEFERRED_PAUSE = 0.01
"""Seconds before claiming again when a whole batch was left for another process's
applier (it had those members in hand): they are free once its transaction ends."""


CATCH_UP_AFTER = 1.5 * APPLY_LAG
"""Seconds behind the oldest store after which the applier catches up: transactions as
full as in a pause, and the requests' turn after each half as long (they get a third of
the time at worst, instead of half)."""


class ByRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    """The member's personal ref code (in their links and their /start payload)."""


class ByTelegram(BaseModel):
    model_config = ConfigDict(extra="forbid")
    telegram_user_id: StrictInt = Field(ge=1, le=2**53 - 1)


class EventIn(BaseModel):
    """One event about one member."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "ord_8812",
                    "type": "order.paid",
                    "occurred_at": "2026-03-20T11:02:00Z",
                    "member": {"ref": "K7P2QX"},
                    "data": {"order": "8812", "amount_minor": 1990},
                }
            ]
        },
    )

    id: str = Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    """Unique per event: a repeat of an id is acknowledged and not counted again."""
    type: str = Field(min_length=3, max_length=64)
    occurred_at: AwareDatetime
    member: ByRef | ByTelegram
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not EVENT_TYPE.match(value):
            raise ValueError("an event type is lowercase words joined by dots, like order.paid")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _when(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if value.year < 2000:
            raise ValueError("occurred_at is before 2000")
        return value

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        dumped = to_json(value)
        if len(dumped) > MAX_EVENT_BYTES:
            raise ValueError(f"data is larger than {MAX_EVENT_BYTES} bytes as JSON")
        # NaN and Infinity are not JSON (PostgreSQL would refuse to store them): written
        # as bare words here, where the same words inside strings stay quoted.
        if (b"NaN" in dumped or b"Infinity" in dumped) and dumped != to_json(
            value, inf_nan_mode="strings"
        ):
            raise ValueError("data holds NaN or Infinity, which are not JSON numbers")
        return value

    def incoming(self) -> IncomingEvent:
        member = self.member
        return IncomingEvent(
            self.id,
            self.type,
            self.occurred_at,
            member.ref if isinstance(member, ByRef) else None,
            member.telegram_user_id if isinstance(member, ByTelegram) else None,
            self.data,
        )


_ONE = TypeAdapter(EventIn)
_MANY: TypeAdapter[list[EventIn]] = TypeAdapter(
    Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS)]
)


class Accepted(BaseModel):
    accepted: int
    """Events stored now; they are applied to the ladder right after."""
    duplicates: int
    """Events whose id was stored before: acknowledged, not counted again."""


class _Storing:
    """:meth:`EventApplier.storing` (a plain class: it is on every request's path, where
    a generator-based context manager costs several times more)."""

    __slots__ = ("_applier",)

    def __init__(self, applier: EventApplier) -> None:
        self._applier = applier

    def __enter__(self) -> None:
        self._applier._store_began()

    def __exit__(self, *exc: object) -> None:
        self._applier._store_ended()


class EventApplier:
    """Applies stored events in the background, woken by each store (platform events,
    clicks); the tick catches up with whatever it leaves (a stop, a failure).

    Acknowledging comes first: it is what a sender waits for (and retries if it waits
    too long). The applier works in the pauses between stores (:data:`APPLY_QUIET`)
    and steps aside when they resume; only once a store waited :data:`APPLY_LAG` does
    it go on while they keep coming, taking turns with them."""

    def __init__(self, deps: Deps, batch: int = 100) -> None:
        self._deps = deps
        # The members are told beside the next batches (:class:`RewardTeller`): a
        # burst's hundreds of private messages, at Telegram's pace, never hold up the
        # applying.
        self._apply = ApplyEvents(deps, notify=False)
        self.teller = RewardTeller(deps)
        self._batch = batch
        self._least = max(batch // 2, 1)
        """The smallest batch where the end of a backlog is shared (``Events.claim``)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._storing = 0
        self._last_store = 0.0
        self._first_store: float | None = None
        self._storing_cm = _Storing(self)
        self._settled = asyncio.Event()
        """Set while nothing stored waits for this applier (see :meth:`settled`)."""
        self._settled.set()

    def storing(self) -> _Storing:
        """Around a store: the stores are not pausing while one is in progress (a large
        one may take longer than :data:`APPLY_QUIET`)."""
        return self._storing_cm

    def _store_began(self) -> None:
        self._storing += 1

    def _store_ended(self) -> None:
        self._storing -= 1
        self._last_store = asyncio.get_running_loop().time()

    def wake(self) -> None:
        """Something was stored: apply it soon."""
        now = asyncio.get_running_loop().time()
        self._last_store = now
        if self._first_store is None:
            self._first_store = now
        self._settled.clear()
        self._wake.set()

    def _busy(self, now: float) -> bool:
        return self._storing > 0 or now - self._last_store < APPLY_QUIET

    def start(self) -> None:
        """Apply in the background from now on (what is pending first)."""
        self._first_store = asyncio.get_running_loop().time()
        self._settled.clear()
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name="event-applier")

    async def settled(self, at_most: float) -> None:
        """Until what was stored is applied, or ``at_most`` seconds: for work that can
        wait out a burst, such as payout deliveries, rather than take the CPU and the
        connections the burst needs. First this process's applier, then the other
        processes' (while any event is pending, looked at every :data:`SETTLE_POLL`
        seconds: one indexed row read). Once this applier stops, at once: nothing waits
        out the other processes' bursts through a shutdown."""
        if at_most <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        if not self._settled.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), at_most)
        # (The other processes' bursts are known from the database only: no event to
        # wait on.)
        while not self._stopping and (left := deadline - loop.time()) > 0:
            if not await self._pending():
                return
            await asyncio.sleep(min(SETTLE_POLL, left))

    async def _pending(self) -> bool:
        """Whether any stored event waits to be applied, by any process."""
        async with self._deps.uow(LadderTx).one_statement() as tx:
            return await tx.events.oldest_pending() is not None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._wake.wait()
            while not self._stopping:
                now = loop.time()
                lag = APPLY_LAG - (now - (self._first_store or now))
                if not self._busy(now) or lag <= 0:
                    break
                quiet = APPLY_QUIET - (now - self._last_store)
                await asyncio.sleep(min(max(quiet, 0.01), lag))
            self._wake.clear()
            oldest, self._first_store = self._first_store, None
            if not await self._apply_while_quiet(oldest):
                # The stores came back before anything was overdue: wait again, the lag
                # still counted from the oldest store not applied.
                if oldest is not None:
                    self._first_store = min(oldest, self._first_store or oldest)
                self._wake.set()
            elif not self._wake.is_set():  # (a store meanwhile: another round)
                self._settled.set()
        self._settled.set()

    async def _apply_while_quiet(self, oldest: float | None) -> bool:
        """Apply what is pending; True once nothing is, False when the stores came back
        and nothing is overdue (they go first then). Overdue (stored :data:`APPLY_LAG`
        ago), it goes on while they keep coming: in short transactions, each followed
        by as long for the requests (they wait at most one transaction, and get half
        the time at worst); :data:`CATCH_UP_AFTER` behind, in fuller ones followed by
        half as long."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                now = loop.time()
                busy = self._busy(now)
                if busy and (oldest is None or now - oldest < APPLY_LAG):
                    return False
                # Behind by twice the lag (the flow outruns turns of one batch): fuller
                # transactions and shorter turns for the requests, until caught up.
                behind = busy and oldest is not None and now - oldest >= CATCH_UP_AFTER
                result = await self._apply(
                    limit=self._batch if busy and not behind else QUIET_BATCHES * self._batch,
                    least=self._least,
                )
                if not result.applied:
                    if result.deferred:  # all another process's: free once it commits
                        await asyncio.sleep(DEFERRED_PAUSE)
                        continue
                    return True
                self._counted(result)
                self._unmatched(result.unmatched)
                await self.teller.tell(result.notices)
                # (On SQLite a transaction never suspends the loop: its statements run
                # inline. This is where the requests that arrived meanwhile go.)
                took = loop.time() - now
                await asyncio.sleep((took / 2 if behind else took) if busy else 0)
        except Exception:
            log.exception("applying stored events failed; the tick tries again")
        return True

    async def apply_pending(self) -> int:
        """Apply until nothing is pending (or the applier stops between two batches), at
        once, and tell the members; a failure is logged and left to the tick."""
        applied = 0
        try:
            while not self._stopping:
                result = await self._apply(limit=QUIET_BATCHES * self._batch)
                if not result.applied:
                    if result.deferred:
                        await asyncio.sleep(DEFERRED_PAUSE)
                        continue
                    break
                applied += result.applied
                self._counted(result)
                self._unmatched(result.unmatched)
                await self.teller.tell(result.notices)
            await self.teller.told()
        except Exception:
            log.exception("applying stored events failed; the tick tries again")
        return applied

    @staticmethod
    def _counted(result: IngestResult) -> None:
        """What a batch applied shows in the metrics: events left for their member, and
        the rewards of the tasks it completed."""
        if result.unmatched:
            metrics.EVENTS.labels("unmatched").inc(result.unmatched)
        for done in result.completions:
            if done.reward_status == "paid":
                metrics.REWARDS.labels("paid").inc()
            elif done.reward_status == "over_budget":
                metrics.REWARDS.labels("owed").inc()

    @staticmethod
    def _unmatched(count: int) -> None:
        if count:
            log.info(
                "%d events name a member not known yet: kept until they arrive "
                "(funnelbot event status)",
                count,
            )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop once the batch in hand is applied (what is stored and not applied stays
        pending for the next start or tick); cancelled past ``grace`` seconds."""
        self._stopping = True
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + grace
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._settled.set()
        await self.teller.stop(max(deadline - asyncio.get_running_loop().time(), 0.0))


class RewardTeller:
    """Tells members of their rewards and promotions, in order, in a task of its own:
    what the applier committed is handed over and the applier goes on with its next
    batch. Handing over waits only when :data:`TELL_BEHIND` notices are already waiting
    (the applier then keeps the pace of the messages rather than fill memory).

    As when the applier told them itself, a notice is sent after its reward committed,
    at most once: a crash or a stop past the grace loses the ones not sent yet (logged
    with their number; the rewards themselves are recorded and paid)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._queue: asyncio.Queue[tuple[MemberRef, RewardNotice]] = asyncio.Queue(TELL_BEHIND)
        self._task: asyncio.Task[None] | None = None

    async def tell(self, notices: Sequence[tuple[MemberRef, RewardNotice]]) -> None:
        for notice in notices:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name="reward-teller")
            await self._queue.put(notice)

    async def told(self) -> None:
        """Until every notice handed over so far is sent (or failed)."""
        await self._queue.join()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        messenger = self._deps.messenger
        while True:
            member, notice = await self._queue.get()
            try:
                await messenger.notify(member, notice)
            except Exception:
                log.exception("telling member %s of a reward failed", member.user_id)
            finally:
                self._queue.task_done()

    async def stop(self, grace: float) -> None:
        """Send what is waiting within ``grace`` seconds; drop the rest, saying how many."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        dropped = self._queue.qsize()
        if dropped:
            log.warning(
                "stopping: %d reward notices not sent (the rewards are recorded and paid)",
                dropped,
            )


class EventIntake:
    """The platform's events: signatures checked with the secret, stored in group
    commits (what arrives during one write shares the next), then the applier woken."""

    def __init__(self, deps: Deps, secret: str, applier: EventApplier) -> None:
        self.webhook = Webhook(secret)
        self.applier = applier
        self.clock = deps.clock
        self._store = StoreEvents(deps)
        self._commit: GroupCommit[Sequence[IncomingEvent], Stored] = GroupCommit(self._write)

    async def _write(self, requests: list[Sequence[IncomingEvent]]) -> list[Stored]:
        return await self._store(SOURCE, requests)

    async def submit(self, events: Sequence[IncomingEvent]) -> Stored:
        with self.applier.storing():
            stored = await self._commit.submit(events)
        if stored.rows:
            self.applier.wake()
        return stored


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    """The first 20 problems, each naming its field (``3.member.ref`` in a batch)."""
    return [
        {
            "field": ".".join(_named(e["loc"])) or "(body)",
            "message": e["msg"].removeprefix("Value error, "),
        }
        for e in exc.errors(include_url=False, include_input=False)[:20]
    ]


def _named(loc: tuple[int | str, ...]) -> list[str]:
    """A field's path without the names of the union's shapes (``member.ByRef.ref``
    reads ``member.ref``): fields are lowercase, shapes capitalised."""
    return [str(p) for p in loc if not (isinstance(p, str) and p[:1].isupper())]


_BLANK = re.compile(rb"[ \t\r\n]*")


class NotJson(ValueError):
    pass


def _parse(body: bytes) -> tuple[list[EventIn], bool]:
    """The events in a body, and whether it was a list of them. Validated from the JSON
    text itself (pydantic's parser, no intermediate objects). Raises :class:`NotJson`,
    ``TypeError`` for JSON that is neither an object nor a list, or ``ValidationError``."""
    at = _BLANK.match(body).end()  # type: ignore[union-attr]  # (it matches "")
    start = body[at : at + 1]
    try:
        if start == b"[":
            return _MANY.validate_json(body), True
        if start == b"{":
            return [_ONE.validate_json(body)], False
    except ValidationError as exc:
        bad = next((e for e in exc.errors() if e["type"] == "json_invalid"), None)
        if bad is not None:
            raise NotJson(bad["ctx"].get("error", "") if bad.get("ctx") else "") from exc
        raise
    try:
        json.loads(body)
    except RecursionError as exc:
        raise NotJson("recursion limit exceeded") from exc
    except ValueError as exc:
        raise NotJson(str(exc)) from exc
    raise TypeError


def request_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The body's JSON schema for OpenAPI, and the component schemas it refers to."""
    schema = TypeAdapter(
        EventIn | Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS)]
    ).json_schema(ref_template="#/components/schemas/{model}")
    return schema, schema.pop("$defs", {})


def routes(intake: EventIntake | None) -> APIRouter:
    """The route as OpenAPI documents it. Requests are answered by the front door's
    route (:func:`fast_route`: the same handler, without FastAPI's per-request layers)."""
    router = APIRouter(prefix=API)
    schema, _ = request_schema()

    @router.post(
        "/events",
        status_code=202,
        response_model=Accepted,
        tags=["events"],
        summary="Post platform events (Standard Webhooks signed)",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "parameters": [
                {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
            ],
        },
        responses={
            400: {"description": "the body is not JSON"},
            401: {"description": "missing, bad or stale signature: nothing stored"},
            413: {"description": f"the body is larger than {MAX_BODY_BYTES} bytes"},
            422: {"description": "not an event, or a list of 1 to 1,000 events"},
            503: {"description": "not configured, or not stored: send again"},
        },
    )
    async def documented(request: Request) -> Response:
        """One event or a list of up to 1,000, each about one member (by ref code or
        Telegram id). Stored before the answer; a repeated id is counted once."""
        return await post_events(request, intake)

    return router


def fast_route(intake: EventIntake | None) -> FastRoute:
    """``POST /api/v1/events`` for the front door (:mod:`bot.http.front`): it reads its
    body raw (the signature covers the bytes) and needs nothing FastAPI adds per
    request. The FastAPI route of the same path (:func:`routes`) documents it."""

    async def events(request: Request) -> Response:
        return await post_events(request, intake)

    return FastRoute(PATH, frozenset({"POST"}), events)


async def post_events(request: Request, intake: EventIntake | None) -> Response:
    """One event or a list of up to 1,000, each about one member (by ref code or
    Telegram id). Stored before the answer; a repeated id is counted once."""
    response = await _post_events(request, intake)
    if 400 <= response.status_code < 500:  # a request refused: nothing of it stored
        metrics.EVENTS.labels("rejected").inc()
    return response


async def _post_events(request: Request, intake: EventIntake | None) -> Response:
    if intake is None:
        return problem(
            503, "Inbound events are off", "set FUNNELBOT_EVENTS_SECRET to receive events"
        )
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except TooLarge:
        return problem(413, "Body too large", f"the limit is {MAX_BODY_BYTES} bytes")
    try:
        intake.webhook.verify(body, dict(request.headers), json_parse=False)
    except WebhookVerificationError as exc:
        return problem(401, "Bad signature", f"{exc}; nothing was stored")
    except ValueError:  # not UTF-8, or a signature header that is not one
        return problem(401, "Bad signature", "unreadable signature headers or body")
    try:
        parsed, is_list = _parse(body)
    except NotJson as exc:
        if "recursion" in str(exc):
            return problem(400, "Not JSON", "the body is JSON nested too deeply")
        return problem(400, "Not JSON", "the body is not JSON")
    except TypeError:
        return problem(422, "Not an event", "send an event object or a list of them")
    except ValidationError as exc:
        errors = _errors(exc)
        first = errors[0] if errors else {"field": "(body)", "message": "invalid"}
        return problem(422, "Not an event", f"{first['field']}: {first['message']}", errors=errors)
    latest = intake.clock.now() + FUTURE_SKEW
    late = [i for i, e in enumerate(parsed) if e.occurred_at > latest]
    if late:
        field = f"{late[0]}.occurred_at" if is_list else "occurred_at"
        return problem(
            422,
            "Not an event",
            f"{field}: more than {FUTURE_SKEW.seconds // 60} minutes in the future",
            errors=[{"field": field, "message": "in the future"}],
        )
    try:
        stored = await intake.submit([e.incoming() for e in parsed])
    except Exception as exc:  # not stored: nothing acknowledged, the sender retries
        log.error("could not store %d events: %s", len(parsed), exc)
        return problem(
            503,
            "Not stored",
            "the events could not be stored; send them again",
            headers={"Retry-After": "5"},
        )
    metrics.EVENTS.labels("accepted").inc(stored.accepted)
    metrics.EVENTS.labels("duplicate").inc(stored.duplicates)
    return Response(
        b'{"accepted":%d,"duplicates":%d}' % (stored.accepted, stored.duplicates),
        202,
        media_type="application/json",
    )
