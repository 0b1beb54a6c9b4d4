"""A phase-fair readers-writer lock: many searches at once, graph changes alone, neither starved."""

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
        self._readers = 0
        self._readers_waiting = 0
        self._reader_passes = 0  # readers admitted ahead of waiting writers after a write turn
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._condition:
            self._readers_waiting += 1
            while self._writing or (self._writers_waiting and not self._reader_passes):
                self._condition.wait()
            self._readers_waiting -= 1
            if self._reader_passes:
                self._reader_passes -= 1
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if self._readers == 0:
                    self._condition.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers or self._reader_passes:
                    self._condition.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._reader_passes = self._readers_waiting
                self._condition.notify_all()
