"""Prometheus metrics (``GET /metrics``), in a registry of the service's own.

What each part of the service counts as it works: steps run by outcome and how late,
sends by outcome, Telegram's 429s and the throttle's waits, taps answered and how long
that took, envelope claims, platform events accepted, repeated, rejected and left
waiting for their member, rewards paid and owed, payouts delivered and parked; and,
read when scraped, the members at each funnel stage per region from the figures board.
Labels name outcomes, stages and regions only: never a member, a chat or a text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from funnels.cohorts.tick import TickReport
from funnels.kernel.stages import Stage
from funnels.ops.board import FiguresBoard
from funnels.ops.ports import CohortFilter

REGISTRY = CollectorRegistry(auto_describe=True)

STEPS = Counter("funnelbot_steps", "Script steps run, by outcome.", ["outcome"], registry=REGISTRY)
STEP_LATENESS = Histogram(
    "funnelbot_step_lateness_seconds",
    "How late each step started after its due time.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
SENDS = Counter(
    "funnelbot_sends",
    "Calls to the Bot API that send or change something, by outcome (ok; refused: "
    "Telegram said no; unknown: no answer, it may have arrived; unreached: no connection "
    "to the Bot API, nothing left; unavailable: the chat is gone or the bot lost its "
    "rights).",
    ["outcome"],
    registry=REGISTRY,
)
TOO_MANY_REQUESTS = Counter(
    "funnelbot_telegram_429",
    "429 answers from the Bot API (the throttle should keep this at zero).",
    registry=REGISTRY,
)
TAP_ANSWER = Histogram(
    "funnelbot_tap_answer_seconds",
    "From a tap's arrival to its answer (the claim stored, the answer sent or handed to "
    "the webhook's reply).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
ENVELOPE_CLAIMS = Counter(
    "funnelbot_envelope_claims",
    "Taps on red envelopes, by what they got (claimed, already, empty, expired, ...).",
    ["outcome"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "funnelbot_events",
    "Platform events: accepted (stored), duplicate (an id seen before), rejected "
    "(refused request), unmatched (applied later, once their member is known).",
    ["outcome"],
    registry=REGISTRY,
)
REWARDS = Counter(
    "funnelbot_rewards",
    "Task rewards as tasks complete: paid, or owed past the budget.",
    ["status"],
    registry=REGISTRY,
)
PAYOUTS = Counter(
    "funnelbot_payouts",
    "Reward payouts to the platform: delivered, or parked after failed deliveries.",
    ["outcome"],
    registry=REGISTRY,
)


def record_tick(report: TickReport) -> None:
    """A tick's steps: each by outcome, and how late each started."""
    for outcome in ("done", "skipped", "failed", "unknown"):
        count = getattr(report, outcome)
        if count:
            STEPS.labels(outcome).inc(count)
    for late in report.lateness:
        STEP_LATENESS.observe(late)


class FunnelCollector(Collector):
    """``funnelbot_funnel_members{region, stage}``: members at each stage or beyond,
    summed over the region's cohorts, from the figures board when it is ready (nothing
    until then: a scrape never waits for the database)."""

    def __init__(self) -> None:
        self.board: FiguresBoard | None = None

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "funnelbot_funnel_members",
            "Members at each funnel stage or beyond, per region (all cohorts).",
            labels=["region", "stage"],
        )
        board = self.board
        if board is not None and board.ready:
            for (region, stage), members in sorted(_totals(board).items()):
                family.add_metric([region, stage], members)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "funnelbot_funnel_members",
            "Members at each funnel stage or beyond, per region (all cohorts).",
            labels=["region", "stage"],
        )


def _totals(board: FiguresBoard) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for cohort in board.chosen(CohortFilter()):
        for stage in Stage:
            totals[(cohort.region or "", stage.label)] += cohort.stages.get(stage, 0)
    return totals


FUNNEL = FunnelCollector()
REGISTRY.register(FUNNEL)


class ThrottleWaits(Collector):
    """``funnelbot_throttle_wait_seconds_total``: seconds sends waited for a slot under
    Telegram's limits, summed (the shared throttle's waits and its fallback's)."""

    def __init__(self) -> None:
        self.throttles: list[object] = []

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "funnelbot_throttle_wait_seconds",
            "Seconds sends waited for a slot under Telegram's limits, summed.",
        )
        family.add_metric([], sum(_waited(t) for t in self.throttles))
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "funnelbot_throttle_wait_seconds",
            "Seconds sends waited for a slot under Telegram's limits, summed.",
        )


def _waited(throttle: object) -> float:
    own = float(getattr(throttle, "waited", 0.0))
    fallback = getattr(throttle, "fallback", None)
    return own + (_waited(fallback) if fallback is not None else 0.0)


THROTTLE_WAITS = ThrottleWaits()
REGISTRY.register(THROTTLE_WAITS)
