#!/usr/bin/env python3
"""Benchmark: whole 7+21 cohorts through the real engine and storage on a virtual clock.

Default shape (issue target): 24 cohorts x 500 members x 28 days on SQLite; target
<= 60 s wall and <= 500 MB peak RSS on a 2-core machine. Prints wall time, steps and
events per second, peak RSS and the command that reproduces the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time

from bot.simulation import Simulation, SimulationOptions
from funnels.scripts.library import DEFAULT_SCRIPT, script_path
from funnels.scripts.loader import load_script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=24)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--reply-rate", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    loaded = load_script(script_path(DEFAULT_SCRIPT))
    options = SimulationOptions(
        cohorts=args.cohorts,
        members=args.members,
        reply_rate=args.reply_rate,
        seed=args.seed,
        database_url=args.database_url,
    )
    started = time.perf_counter()
    result = asyncio.run(Simulation(loaded, options).run())
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = result.as_dict()
    stages = {row["stage"]: row["members"] for row in data["funnel"]}
    print(f"cohorts x members      {args.cohorts} x {args.members} (28 days each)")
    print(f"database               {args.database_url or 'sqlite (temporary file)'}")
    print(f"wall                   {wall:.1f} s   (target <= 60 s)")
    print(f"peak RSS               {peak_mb:.0f} MB   (target <= 500 MB)")
    print(f"steps run              {result.steps_run}  ({result.steps_run / wall:.0f}/s)")
    print(
        f"events ingested        {result.events}  ({result.events / wall:.0f}/s)"
        f" + {result.duplicates} duplicates acknowledged"
    )
    print(f"member actions         {result.member_actions}  ({result.member_actions / wall:.0f}/s)")
    print(f"funnel                 {stages}")
    print(
        "reproduce:             .venv/bin/python scripts/bench/simulate.py "
        + " ".join(sys.argv[1:])
    )


if __name__ == "__main__":
    main()
