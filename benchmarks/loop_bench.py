"""Loop dispatch on pyperf: reactor.Reactor, asyncio (on the stdlib's selector
and on reactor's) and uvloop, each running the same three benchmarks.

    python -m benchmarks.loop_bench --impl reactor -o reactor.json
    python -m benchmarks.loop_bench --impl uvloop -o uvloop.json
    python -m pyperf compare_to reactor.json uvloop.json --table

* ``chain``: a callback that schedules the next with ``call_soon``; time per
  callback (wall).
* ``timers``: ``call_later`` at random delays below 1 ms, run until the last
  fires; time per timer, scheduling and firing, in the thread's CPU time (so
  sleeping until a timer is due does not count).
* ``wakeups``: another thread calls ``call_soon_threadsafe(cb)`` and waits
  until ``cb`` ran; each call wakes the loop from its poller.  Time per round
  trip (wall), both threads on the same pinned CPU.

``--impl``: ``reactor`` (``reactor.Reactor()``), ``asyncio``
(``asyncio.new_event_loop()``), ``asyncio-reactor`` (``reactor.new_event_loop()``),
``uvloop`` (``uvloop.new_event_loop()``).  Each value is one fresh loop.
"""

import random
import threading
import time

from benchmarks import _harness
from benchmarks._harness import runner

IMPLS = ("reactor", "asyncio", "asyncio-reactor", "uvloop")


def new_loop(impl):
    """(loop, run until stop())."""
    loop = _harness.new_loop(impl)
    return loop, loop.run if impl == "reactor" else loop.run_forever


def chain(loops, impl):
    loop, run = new_loop(impl)
    left = loops

    def step():
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(step)
        else:
            loop.stop()

    try:
        loop.call_soon(step)
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0
    finally:
        loop.close()


def timers(loops, impl):
    loop, run = new_loop(impl)
    rng = random.Random(loops)
    delays = [rng.random() * 1e-3 for _ in range(loops)]
    fired = 0

    def fire():
        nonlocal fired
        fired += 1
        if fired == loops:
            loop.stop()

    try:
        t0 = time.thread_time()
        for delay in delays:
            loop.call_later(delay, fire)
        run()
        return time.thread_time() - t0
    finally:
        loop.close()


def wakeups(loops, impl):
    loop, run = new_loop(impl)
    done = threading.Semaphore(0)
    elapsed = []

    def pinger():
        time.sleep(0.005)  # let the loop block in its poller first
        t0 = time.perf_counter()
        for _ in range(loops):
            loop.call_soon_threadsafe(done.release)
            done.acquire()
        elapsed.append(time.perf_counter() - t0)
        loop.call_soon_threadsafe(loop.stop)

    try:
        thread = threading.Thread(target=pinger)
        thread.start()
        run()
        thread.join()
        return elapsed[0]
    finally:
        loop.close()


def main():
    run = runner("loop_bench", IMPLS, processes=5)
    args = run.parse_args()
    for bench in (chain, timers, wakeups):
        run.bench_time_func(bench.__name__, bench, args.impl)


if __name__ == "__main__":
    main()
