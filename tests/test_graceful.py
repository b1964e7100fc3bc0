"""A crashed worker ends, even when faust's stop does not (monitor.runners.graceful.crash)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from monitor.runners.graceful import EXIT_UNFINISHED


def test_a_crash_whose_stop_hangs_still_ends_the_process():
    program = textwrap.dedent("""
        import asyncio, logging
        from monitor.runners.graceful import crash

        class StuckApp:  # as faust's stop waiting on a consumer thread caught in a rebalance
            async def crash(self, reason):
                await asyncio.sleep(3600)

        logging.basicConfig()
        asyncio.run(crash(StuckApp(), RuntimeError("fenced"), exit_within=0.5))
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_UNFINISHED
    assert time.monotonic() - started < 30
    assert "still stopping 0.5 s after the crash (fenced): exiting" in done.stderr


def test_a_crash_that_stops_leaves_the_exit_to_the_process():
    program = textwrap.dedent("""
        import asyncio
        from monitor.runners.graceful import crash

        class App:
            async def crash(self, reason):
                pass

        asyncio.run(crash(App(), RuntimeError("fenced"), exit_within=30))
        print("ended on its own")
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ended on its own")
    assert time.monotonic() - started < 25  # the timer does not hold the process
