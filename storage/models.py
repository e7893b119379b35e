"""SQLAlchemy 2 models: the one schema shared by SQLite (embedded) and PostgreSQL.

Conventions: constraint names come from ``NAMING`` so they are the same on both
databases and in migrations; every ``*_at`` column is timezone-aware UTC; money is an
integer count of minor units beside its currency.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite stores no zone; we put UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC time")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text: store them all naive-UTC, one format.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite's INTEGER PRIMARY KEY is its rowid only as plain INTEGER; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), date: Date()}


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    weekly_target: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    language: Mapped[str | None] = mapped_column(String(8))
    """What Telegram said the user's app speaks (``language_code``)."""
    chosen_locale: Mapped[str | None] = mapped_column(String(8))
    """Set with ``/lang``; wins over ``language``."""
    role: Mapped[int] = mapped_column(SmallInteger, default=1)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    ref_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unreachable_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Cohort(Base):
    __tablename__ = "cohorts"
    __table_args__ = (Index("ix_cohorts_start_date", "start_date"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    parent_cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id"))
    """The cohort a supervisor's own line grew out of (the one they graduated from)."""
    generation: Mapped[int] = mapped_column(SmallInteger, default=1)
    """1 for a leader's own line; a line launched by a graduate of generation n is n + 1."""
    script_id: Mapped[str] = mapped_column(String(64))
    script_version: Mapped[int] = mapped_column(Integer)
    script_hash: Mapped[str] = mapped_column(String(64))
    script_body: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    capacity: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    budget_minor: Mapped[int] = mapped_column(BigInteger)
    spent_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    start_date: Mapped[date]
    ends_at: Mapped[datetime]
    warmup_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    task_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    status_reason: Mapped[str | None] = mapped_column(String(256))
    pitch_opened_at: Mapped[datetime | None]
    pitch_closed_at: Mapped[datetime | None]
    admissions_noted_at: Mapped[datetime | None]
    admission: Mapped[str] = mapped_column(
        String(16), default="requests", server_default="requests"
    )
    """How responders get into the task group: ``requests`` or ``personal``."""
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class CohortMember(Base):
    __tablename__ = "cohort_members"
    __table_args__ = (
        UniqueConstraint("cohort_id", "user_id"),
        Index("ix_cohort_members_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    inviter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    stage: Mapped[int] = mapped_column(SmallInteger, default=1)
    joined_at: Mapped[datetime]
    engaged_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    admitted_at: Mapped[datetime | None]
    tasked_at: Mapped[datetime | None]
    sold_at: Mapped[datetime | None]
    shopkeeper_at: Mapped[datetime | None]
    supervisor_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]


class MemberActivity(Base):
    """Messages a member sent per local day; counts only, never message text."""

    __tablename__ = "member_activity"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class FunnelDay(Base):
    """Rollup: members of a cohort who entered each funnel stage on each local day
    (``funnels.kernel.rollups``), kept current in the transaction that moves them."""

    __tablename__ = "funnel_days"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    stage: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    members: Mapped[int] = mapped_column(Integer, default=0)


class ActivityDay(Base):
    """Rollup of ``member_activity``: a cohort's messages and members who wrote, per
    local day, kept current in the transaction that counts the messages."""

    __tablename__ = "activity_days"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    members: Mapped[int] = mapped_column(Integer, default=0)


class StepRun(Base):
    """The scheduling outbox: one row per planned step, claimed with a lease.

    ``lease_owner`` (``host:pid``) holds the claim while the run is sent, and stays on
    the row once it finished: which process ran it."""

    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("cohort_id", "key"),
        # The tick's claim (``status = 'pending' AND due_at <= now ORDER BY due_at, id``)
        # and its question of when the next run is due read their run off this index.
        Index("ix_step_runs_status_due_at_id", "status", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    key: Mapped[str] = mapped_column(String(96))
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    stage: Mapped[str] = mapped_column(String(8))
    day: Mapped[int] = mapped_column(SmallInteger)
    part: Mapped[int | None] = mapped_column(SmallInteger)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)


class Envelope(Base):
    __tablename__ = "envelopes"
    __table_args__ = (UniqueConstraint("cohort_id", "step_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    step_key: Mapped[str] = mapped_column(String(96))
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    shares: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    claimed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    opened_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class EnvelopeShare(Base):
    __tablename__ = "envelope_shares"
    __table_args__ = (
        UniqueConstraint("envelope_id", "idx"),
        UniqueConstraint("envelope_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    envelope_id: Mapped[int] = mapped_column(ForeignKey("envelopes.id"))
    idx: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime | None]


class TaskProgress(Base):
    __tablename__ = "task_progress"
    __table_args__ = (UniqueConstraint("cohort_id", "user_id", "task_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[str] = mapped_column(String(64))
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    completed_at: Mapped[datetime | None]
    reward_status: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime]


class TaskUniqueKey(Base):
    """Distinct values already counted for a ``unique`` goal (e.g. click visitors)."""

    __tablename__ = "task_unique_keys"

    progress_id: Mapped[int] = mapped_column(ForeignKey("task_progress.id"), primary_key=True)
    leaf: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)


class InboundEvent(Base):
    """An event from the platform (or the bot's own links, proofs and groups), stored as
    it came before it is acknowledged, then applied to the ladder.

    ``state``: ``pending`` until applied; ``handled`` once applied (``outcome`` says what
    it did); ``waiting`` while its member is unknown or not yet in a task group (it is
    applied when they are, or given up with outcome ``expired``).
    """

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index("ix_inbound_events_user_id_type", "user_id", "type"),
        Index("ix_inbound_events_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    handled_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(8), default="pending")
    member_ref: Mapped[str | None] = mapped_column(String(64))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(96))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]
    paid_out: Mapped[bool] = mapped_column(Boolean, default=False)


class InviteLink(Base):
    """An invite link the bot created, so a join by it names who invited the member.

    ``kind``: ``leader`` (the cohort's own link into the warm-up group), ``member`` (a
    member's personal link into it), ``admission`` (the task group's join-request link),
    ``personal`` (a one-time link into the task group for one responder).
    """

    __tablename__ = "invite_links"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    link: Mapped[str] = mapped_column(String(255), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class PersonalLink(Base):
    """A responder's current one-time link into the task group (``admission: personal``),
    one row per member and cohort; every link made is also in ``invite_links``.

    ``attempt`` and ``claimed_at`` are the claim taken before Telegram is asked for a
    link (compare-and-set on ``attempt``); ``link`` is set once the link is stored and
    cleared when it is used."""

    __tablename__ = "personal_links"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    claimed_at: Mapped[datetime | None]
    link: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class MemberGroup(Base):
    """A member's own group, where they added the bot for the group task ("build a group
    of 50 and give a talk"): the bot counts its members and gives the talk there.

    ``state``: ``counting`` until it has enough members, then ``ready`` (``group.created``
    recorded), ``talking`` once the owner asked for the talk, ``given`` after its last
    part (``talk.given`` recorded). ``left_at``: when the bot left or was removed.
    """

    __tablename__ = "member_groups"
    __table_args__ = (Index("ix_member_groups_chat_id", "chat_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    task_id: Mapped[str] = mapped_column(String(64))
    member_count: Mapped[int | None] = mapped_column(Integer)
    checked_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16), default="counting")
    added_at: Mapped[datetime]
    left_at: Mapped[datetime | None]


class MemberReminder(Base):
    """The one private reminder a member gets on a local day of their task stage, claimed
    before it is sent (so it is never sent twice), with the progress segment it was
    chosen by. ``delivered``: False when the member could not be reached."""

    __tablename__ = "member_reminders"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    segment: Mapped[str] = mapped_column(String(16))
    claimed_at: Mapped[datetime]
    delivered: Mapped[bool | None] = mapped_column(Boolean)


class TelegramUpdate(Base):
    """The update inbox: each Telegram update the bot receives (red-envelope taps aside),
    stored as it came before Telegram is told it arrived, then handled from here.

    ``state``: ``pending`` until handled, then ``handled``, or ``failed`` with the reason
    in ``error`` (an update that cannot be handled is kept for ops, never retried for
    ever). Keyed by the bot as well: update ids are counted per bot. A pending update is
    in the hands of ``owner`` until ``lease_until``: several processes share one inbox.
    """

    __tablename__ = "telegram_updates"
    __table_args__ = (
        Index("ix_telegram_updates_state_update_id", "state", "update_id"),
        Index("ix_telegram_updates_finished_at", "finished_at"),
    )

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    """What the update carries (``message``, ``chat_member``…), for reading the table."""
    payload: Mapped[str] = mapped_column(Text)
    """The update as JSON."""
    state: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    owner: Mapped[str] = mapped_column(String(64))
    """The process handling it (host and HTTP port: stable over its restarts)."""
    lease_until: Mapped[datetime]
    """Until when ``owner`` has it in hand; after that another process may take it."""
    received_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Proof(Base):
    """A member's screenshot for a proof task (a post on another network sends no event)
    and the leader's decision. At most one is pending per member and task; after a
    rejection the member may send another."""

    __tablename__ = "proofs"
    __table_args__ = (
        Index(
            "ix_proofs_pending",
            "cohort_id",
            "user_id",
            "task_id",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[str] = mapped_column(String(64))
    file_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(8), default="pending")
    reason: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class Payout(Base):
    """Task rewards on their way out, one per reward (``key``: the ledger entry's
    idempotency key). An owed reward waits here for budget; a credited one is the outbox
    row of its ``reward.granted`` event, written in the credit's transaction and claimed
    for delivery with a lease (``lease_owner`` until ``lease_until``)."""

    __tablename__ = "payouts"
    __table_args__ = (
        Index("ix_payouts_status_next_attempt_at_id", "status", "next_attempt_at", "id"),
        Index("ix_payouts_cohort_id_status", "cohort_id", "status"),
        Index("ix_payouts_member_notice", "member_notice"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime]
    owed_at: Mapped[datetime | None]
    granted_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    parked_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    member_notice: Mapped[str | None] = mapped_column(String(8))
    leader_notice: Mapped[bool] = mapped_column(Boolean, default=False)
    """Only with a ``member_notice``: the leader is told with the member."""


class TrackedLink(Base):
    """A member's tracked link for one task of their cohort (``GET /r/{code}``), made
    the first time it is needed; the code is short and unguessable."""

    __tablename__ = "tracked_links"
    __table_args__ = (UniqueConstraint("cohort_id", "user_id", "task_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class FanLock(Base):
    """Whose fan a visitor is in a cohort: the member whose link the visitor opened
    first. Written once (insert-if-absent) and never moved."""

    __tablename__ = "fan_locks"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"), primary_key=True)
    visitor: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    code: Mapped[str] = mapped_column(String(16))
    """The link that locked the visitor."""
    locked_at: Mapped[datetime]


class InstallationSecret(Base):
    """Secrets generated once per installation and shared by all its processes (the key
    that signs visitor cookies): the first process to need one stores it."""

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class ApiKey(Base):
    """A key for the HTTP API's stats and ops routes (``Authorization: Bearer``). Only
    its SHA-256 is kept: a key is 32 random bytes, so a fast hash is as good as a slow
    one, and the key itself is shown once, when it is made. ``prefix`` (its first
    characters) tells keys apart in lists and logs. A revoked key stays, for the record;
    a name is unique among the keys that are not revoked."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index(
            "ix_api_keys_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class OpsAction(Base):
    """What ops did to a cohort over the HTTP API (pause, resume …), written in the
    action's own transaction: the cohort's timeline shows who did what and when."""

    __tablename__ = "ops_actions"
    __table_args__ = (Index("ix_ops_actions_cohort_id_id", "cohort_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    by: Mapped[str] = mapped_column(String(80))
    """Who, as the timeline names them (``api key dashboard-sea``)."""
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(256))
    at: Mapped[datetime]
