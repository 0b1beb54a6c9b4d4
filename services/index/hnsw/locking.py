"""A phase-fair readers-writer lock: many searches at once, graph changes alone, neither starved.

Readers take a fast path while no writer waits or writes: one append to a list on the way in and one
pop on the way out, no condition variable (a search of a small graph takes a few microseconds, and the
condition-variable path alone took two). A writer first closes the fast path, then waits for the
readers inside to leave. The two sides meet Dekker-style: a reader announces itself (append) before it
reads ``_closed``, a writer sets ``_closed`` before it counts the announced readers, so at least one
of them sees the other. This relies on the GIL: each of those steps is one atomic bytecode-level
operation on a list or an attribute, seen by every thread in the order it was made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Not re-entrant. A waiting writer holds back newly arriving readers, so a stream of searches
    cannot starve inserts; when a writer releases, every reader that queued during its turn goes
    before the next writer, so a long insert (many short write turns) cannot starve searches."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._fast: list[None] = []  # one entry per reader admitted on the fast path
        self._closed = False  # a writer waits or writes: readers take the slow path
        self._readers = 0  # readers admitted on the slow path
        self._readers_waiting = 0
        self._reader_passes = 0  # readers admitted ahead of waiting writers after a write turn
        self._writing = False
        self._writers_waiting = 0

    def acquire_read(self) -> bool:
        """Enter as a reader; returns the token to give back to ``release_read``."""
        fast = self._fast
        fast.append(None)
        if not self._closed:
            return True
        fast.pop()  # a writer is coming: queue behind it (and let it know one reader fewer is inside)
        with self._condition:
            self._condition.notify_all()
            self._readers_waiting += 1
            while self._writing or (self._writers_waiting and not self._reader_passes):
                self._condition.wait()
            self._readers_waiting -= 1
            if self._reader_passes:
                self._reader_passes -= 1
            self._readers += 1
        return False

    def release_read(self, fast: bool) -> None:
        if fast:
            self._fast.pop()
            if not self._closed:
                return
            with self._condition:  # a writer may be waiting for this reader
                self._condition.notify_all()
            return
        with self._condition:
            self._readers -= 1
            if self._readers == 0:
                self._condition.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        fast = self.acquire_read()
        try:
            yield
        finally:
            self.release_read(fast)

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            self._closed = True  # stays so until the last writer leaves: never reopened in between
            try:
                while self._writing or self._readers or self._reader_passes or self._fast:
                    self._condition.wait()
            except BaseException:  # interrupted while waiting: reopen if no other writer is about
                self._writers_waiting -= 1
                if not self._writers_waiting and not self._writing:
                    self._closed = False
                self._condition.notify_all()
                raise
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._reader_passes = self._readers_waiting
                self._closed = bool(self._writers_waiting)
                self._condition.notify_all()
