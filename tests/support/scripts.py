"""Small scripts shared by the tests (YAML text, as authors write it)."""

from __future__ import annotations

import textwrap

import pytest

from funnels.scripts.loader import Problem, ScriptError, load_script_text

_SPRING_LINE = textwrap.dedent("""\
    id: spring_line
    version: 1
    locale: en
    title: Spring line
    timezone: {timezone}
    capacity: 100
    budget: {currency: EUR, total: "600.00"}
    warmup:
      days: 7
      steps:
        - id: d1_welcome
          at: {day: 1, time: "09:00"}
          post: {text: "Welcome, everyone. This week we meet every evening."}
        - id: d1_envelope_noon
          at: {day: 1, time: "12:00"}
          red_envelope: {total: "20.00", shares: 30, expires_in: 10m}
        - id: d2_talk
          at: {day: 2, time: "20:00"}
          talk:
            speaker: Ana
            title: How a corner shop sells online
            parts:
              - text: "Good evening, I am Ana."
              - after: 2m
                text: "First, know your ten best customers."
        - id: d7_pitch
          at: {day: 7, time: "20:00"}
          pitch: {text: "Want to open your own shop? Reply 1.", reply: {window: 24h}}
    tasks:
      days: 21
      ladder:
        - id: invite_fans
          title: Invite ten fans
          how: Share your link with ten friends.
          unlock: {day: 1}
          goal: {event: fan.locked, count: 10}
          reward: {amount: "5.00"}
        - id: first_order
          title: First sale
          how: Sell one thing.
          unlock: {day: 18}
          goal: {event: order.paid, count: 1}
          promote: shopkeeper
    """)


def spring_line(timezone: str = "Europe/Madrid") -> str:
    """A valid two-stage script: a post, an envelope, a talk, the pitch, two tasks."""
    return _SPRING_LINE.replace("{timezone}", timezone)


SPRING = spring_line("Europe/Madrid")


def edit(old: str, new: str, text: str = SPRING) -> str:
    """``text`` with ``old`` (which must occur exactly once) replaced by ``new``."""
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def problems_of(text: str) -> list[Problem]:
    """Every problem the loader finds in ``text`` (which must not load)."""
    with pytest.raises(ScriptError) as caught:
        load_script_text(text)
    return caught.value.problems


def only_error(text: str) -> Problem:
    """The one error the loader finds in ``text``."""
    errors = [p for p in problems_of(text) if p.severity == "error"]
    assert len(errors) == 1, errors
    return errors[0]
