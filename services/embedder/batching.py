"""Dynamic batching: items from concurrent requests share one forward pass.

Requests put single items (a preprocessed image or a text) on a queue and wait on a future. One
dedicated inference thread takes the first waiting item, keeps collecting until it has ``max_batch``
items or ``max_wait_s`` has passed (whatever is already queued is always taken, up to ``max_batch``; a
batch that starts with a text does not wait), then runs one forward pass per kind and resolves the futures. The event loop never runs the model.
Each forward pass is reported to ``observe(kind, items, seconds)`` (the embedder's metrics).

The inference thread also builds the model: every torch call of the process happens on that one thread.
OpenMP keeps a team of threads per calling thread; a model built on one thread and run on another ran a
one-text pass in 16 ms instead of 8.5 ms here (two teams on two cores), images slower too.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from services.embedder.model import ClipEmbedder

log = logging.getLogger("mediasearch.embedder")

Kind = Literal["image", "text"]
# Images go through the model this many at a time, texts queued meanwhile between two chunks: a search
# during an ingest waits for one chunk, not a batch of 32. On this CPU batch 8 runs at the images/s of 32.
IMAGE_CHUNK = 8


@dataclass
class _Item:
    kind: Kind
    payload: np.ndarray | str
    future: Future = field(default_factory=Future)


Observer = Callable[[Kind, int, float], None]  # kind, items in the forward pass, its seconds


class DynamicBatcher:
    def __init__(self, load_model: Callable[[], ClipEmbedder], max_batch: int, max_wait_s: float,
                 observe: Observer | None = None):
        """Starts the inference thread, which builds the model with ``load_model``; returns once it is
        built, raising what building it raised."""
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.observe = observe
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        loaded: Future[ClipEmbedder] = Future()
        self._thread = threading.Thread(target=self._run, args=(load_model, loaded), name="embedder-inference",
                                        daemon=True)
        self._thread.start()
        self.model = loaded.result()

    def submit(self, kind: Kind, payload: np.ndarray | str) -> Future:
        item = _Item(kind, payload)
        self._queue.put(item)
        return item.future

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        """The batch that starts with ``first``; the flag says the queue asked us to stop."""
        batch = [first]
        # A text is someone waiting on a search: it takes what is queued now and never waits for company.
        deadline = time.monotonic() + (0.0 if first.kind == "text" else self.max_wait_s)
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self, load_model: Callable[[], ClipEmbedder], loaded: Future) -> None:
        try:
            self.model = load_model()
        except BaseException as exc:  # noqa: BLE001 (handed to the constructor, which raises it)
            loaded.set_exception(exc)
            return
        loaded.set_result(self.model)
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._collect(first)
            # Texts first: they are interactive queries, cheap next to a batch of images.
            texts = [item for item in batch if item.kind == "text"]
            if texts:
                self._forward("text", texts)
            images = [item for item in batch if item.kind == "image"]
            while images:
                chunk, images = images[:IMAGE_CHUNK], images[IMAGE_CHUNK:]
                self._forward("image", chunk)
                if images:
                    self._serve_waiting_texts()

    def _serve_waiting_texts(self) -> None:
        """Between two chunks of images: the texts queued meanwhile go through now (a search waits for one
        chunk at most, not a whole batch); whatever else was queued is put back in its order."""
        waiting: list[_Item | None] = []
        while True:
            try:
                waiting.append(self._queue.get_nowait())
            except queue.Empty:
                break
        texts = [item for item in waiting if item is not None and item.kind == "text"]
        if texts:
            self._forward("text", texts)
        for item in waiting:
            if item is None or item.kind == "image":
                self._queue.put(item)

    def _forward(self, kind: Kind, items: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            if kind == "text":
                vectors = self.model.embed_texts([item.payload for item in items])
            else:
                vectors = self.model.embed_pixels(np.stack([item.payload for item in items]))
        except Exception as exc:  # a failed forward fails its requests, never the inference thread
            log.exception("forward pass of %d %s items failed", len(items), kind)
            for item in items:
                item.future.set_exception(exc)
            return
        if self.observe is not None:
            self.observe(kind, len(items), time.perf_counter() - started)
        for item, vector in zip(items, vectors):
            item.future.set_result(vector)
