"""Small scripts shared by the tests (YAML text, as authors write it)."""

from __future__ import annotations

import textwrap

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
