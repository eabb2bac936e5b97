"""A ``MultiThreadedExecutor`` that hands each ready callback to its thread pool once.

rclpy 9.1 (Kilted) yields a callback task again on every pass of its wait loop until a pool
thread has started it, and submits it again each time (ros2/rclpy#1452, fixed upstream after
this release). While the pool threads wait for the interpreter lock -- a rehearsal, a
calibration -- the spinning thread keeps the lock busy and queues thousands of copies of the same
tasks (measured: up to 6,000 in the ``world_irp`` node), and a newly arrived perception message
waits behind all of them: ``~/object_states`` was delivered up to 0.95 s late and frames beyond
the queue depth were lost, so observed tracks had holes and rehearsals answered STALE_STATE.

Here the pool skips a task that is already queued and sleeps briefly instead, which hands the
interpreter lock to the pool thread that is about to start it.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from rclpy.executors import MultiThreadedExecutor

# Seconds the spinning thread sleeps when it finds a task still queued (lets a pool thread take
# the interpreter lock; Python would otherwise switch only every 5 ms).
REQUEUE_SLEEP_S = 2e-4


class OncePool(ThreadPoolExecutor):
    """A thread pool in which a callable waits in the queue at most once at a time."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self._queued: set[int] = set()
        self._queued_lock = threading.Lock()
        self.skipped = 0        # submissions of an already queued callable (for tests)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)`` unless ``fn`` is queued already (then a done future)."""
        key = id(fn)
        with self._queued_lock:
            queued = key in self._queued
            if queued:
                self.skipped += 1
            else:
                self._queued.add(key)
        if queued:
            time.sleep(REQUEUE_SLEEP_S)
            skipped: Future = Future()
            skipped.set_result(None)
            return skipped

        def run() -> Any:
            with self._queued_lock:
                self._queued.discard(key)
            return fn(*args, **kwargs)

        return super().submit(run)


class Executor(MultiThreadedExecutor):
    """``MultiThreadedExecutor`` over a ``OncePool`` (see the module docstring)."""

    def __init__(self, num_threads: int, **kwargs: Any) -> None:
        super().__init__(num_threads=num_threads, **kwargs)
        self._executor.shutdown(wait=False)
        self._executor = OncePool(num_threads)
