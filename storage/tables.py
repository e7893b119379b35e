"""The models' Core tables, typed as ``Table`` for the statements in repositories and
reports (an ORM class's ``__table__`` is typed as the wider ``FromClause``)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from storage.models import (
    ActivityDay,
    ApiKey,
    Cohort,
    CohortMember,
    Envelope,
    EnvelopeShare,
    FanLock,
    FunnelDay,
    InboundEvent,
    InstallationSecret,
    InviteLink,
    LedgerEntry,
    MemberActivity,
    MemberGroup,
    MemberReminder,
    OpsAction,
    Payout,
    PersonalLink,
    Proof,
    Region,
    StepRun,
    TaskProgress,
    TaskUniqueKey,
    TelegramUpdate,
    TrackedLink,
    User,
)

cohorts = cast(Table, Cohort.__table__)
cohort_members = cast(Table, CohortMember.__table__)
users = cast(Table, User.__table__)
step_runs = cast(Table, StepRun.__table__)
envelopes = cast(Table, Envelope.__table__)
envelope_shares = cast(Table, EnvelopeShare.__table__)
task_progress = cast(Table, TaskProgress.__table__)
task_unique_keys = cast(Table, TaskUniqueKey.__table__)
inbound_events = cast(Table, InboundEvent.__table__)
ledger_entries = cast(Table, LedgerEntry.__table__)
member_activity = cast(Table, MemberActivity.__table__)
funnel_days = cast(Table, FunnelDay.__table__)
activity_days = cast(Table, ActivityDay.__table__)
invite_links = cast(Table, InviteLink.__table__)
personal_links = cast(Table, PersonalLink.__table__)
regions = cast(Table, Region.__table__)
telegram_updates = cast(Table, TelegramUpdate.__table__)
proofs = cast(Table, Proof.__table__)
payouts = cast(Table, Payout.__table__)
tracked_links = cast(Table, TrackedLink.__table__)
fan_locks = cast(Table, FanLock.__table__)
installation_secrets = cast(Table, InstallationSecret.__table__)
member_groups = cast(Table, MemberGroup.__table__)
member_reminders = cast(Table, MemberReminder.__table__)
api_keys = cast(Table, ApiKey.__table__)
ops_actions = cast(Table, OpsAction.__table__)
