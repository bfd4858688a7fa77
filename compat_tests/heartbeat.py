"""A process that only sleeps, 5 ms at a time, and reports when the machine kept it waiting: the intervals
in which a sleep overran by more than ``STALL_S``. Used by ``compat_tests/test_event_loop_stalls.py`` to tell
the server's own stalls from the machine's (a 2-core box shared with other busy processes parks every
process now and then, a sleeping one included).

Usage: ``python -m compat_tests.heartbeat``; prints ``started``, then runs until its stdin closes and prints
the stalls as JSON ``[[start, end], ...]`` in ``time.monotonic()`` seconds (one clock for every process).
"""

from __future__ import annotations

import json
import select
import sys
import time

TICK_S = 0.005
STALL_S = 0.02


def main() -> None:
    print("started", flush=True)
    stalls = []
    last = time.monotonic()
    while True:
        closed, _, _ = select.select([sys.stdin], [], [], TICK_S)  # the tick, and the stop signal
        now = time.monotonic()
        if now - last > TICK_S + STALL_S:
            stalls.append((last, now))
        if closed:
            break
        last = now
    print(json.dumps(stalls), flush=True)


if __name__ == "__main__":
    main()
