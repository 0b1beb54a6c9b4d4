"""Which ingest workers are alive (heartbeats in Redis), and the reaper that sends again the tasks of the
items held by workers that are gone, so that they are picked up in seconds rather than after the broker's
visibility timeout.

Heartbeat: each worker process has an id (its Celery nodename, pid and a random part: a restarted worker
is a new one) and refreshes ``mediasearch:worker:<id>`` every worker_heartbeat_s, expiring after
worker_heartbeat_ttl_s. A worker whose key is gone is dead; claims (catalog.claim_item) ask the same keys.

An item is held by a worker from the moment its task reaches that worker (catalog.hold_item, as the task
is received: it may wait for a free thread or a retry countdown) and while it runs (catalog.claim_item).

Reaper, in every worker, on a thread of its own:

- at start: a worker that starts under a nodename knows every earlier process of that nodename is gone
  (Celery nodenames are unique; stack.py and compose give each worker its own), however fresh their
  heartbeats: it deletes their keys and sends again the tasks of every item they held. This is the
  restart after a worker or whole-stack crash: seconds, not a TTL.
- then every reaper_interval_s, one worker at a time (a Redis lock): the items held by a worker whose
  heartbeat expired (a worker that died and was not restarted, on this machine or another). It judges
  only once its own heartbeat has been steady for two intervals and Redis has been up for a TTL, so that
  a Redis outage or restart, which let every key lapse, does not make live workers look dead.
- and, at start and every round, tasks lost on the way: an item queued for more than two heartbeat
  intervals, held by no worker, whose task is neither in the broker's queue nor taken in the last two
  intervals (kombu keeps each message taken and not yet acknowledged in its ``unacked`` hash, stamped
  with when it was taken). That is a worker killed after taking a message but before recording the hold,
  or before even reading it: kombu takes messages with BRPOP, so one popped but not yet read dies with
  the worker (the visibility timeout never brings that one back).

Sending a task again is always safe: a delivery for an item a live worker runs is dropped by its claim,
one for a finished item does nothing, and the original message (still unacknowledged in Redis) comes
back after the visibility timeout to the same effect. Each (item, dead holder) is sent once.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping

import redis

from services.ingest_worker.pipeline import TransientFault
from shared import catalog
from shared.queue import INGEST_ITEM_TASK
from shared.settings import Settings

log = logging.getLogger("mediasearch.ingest")

KEY_PREFIX = "mediasearch:worker:"
REAPER_LOCK = "mediasearch:reaper"
RESENT_PREFIX = "mediasearch:resent:"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


class Heartbeat:
    """This worker's heartbeat key, and the liveness of the others."""

    def __init__(self, client: redis.Redis, nodename: str, settings: Settings):
        self.client = client
        self.nodename = nodename
        self.worker_id = f"{nodename}/{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.interval = settings.worker_heartbeat_s
        self.ttl = max(settings.worker_heartbeat_ttl_s, 2 * self.interval)
        self._steady_since: float | None = None  # first beat after the last failed one (monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediasearch-heartbeat", daemon=True)

    def beat(self) -> bool:
        try:
            self.client.set(KEY_PREFIX + self.worker_id, time.time(), px=int(self.ttl * 1000))
        except redis.RedisError as exc:
            if self._steady_since is not None:
                log.warning("worker heartbeat failed (Redis unreachable?): %s", exc)
            self._steady_since = None
            return False
        if self._steady_since is None:
            self._steady_since = time.monotonic()
        return True

    def steady_for(self) -> float:
        """Seconds since this worker's heartbeats last started to succeed (0 while they fail)."""
        return 0.0 if self._steady_since is None else time.monotonic() - self._steady_since

    def alive(self, worker_id: str) -> bool:
        """Whether ``worker_id`` has a heartbeat; TransientFault when Redis cannot say."""
        if worker_id == self.worker_id:
            return True
        try:
            return bool(self.client.exists(KEY_PREFIX + worker_id))
        except redis.RedisError as exc:
            raise TransientFault(f"the task queue (Redis) is unavailable: {exc}") from exc

    def is_predecessor(self, worker_id: str) -> bool:
        """An earlier process under this worker's nodename: gone, since nodenames are unique."""
        return worker_id != self.worker_id and worker_id.rpartition("/")[0] == self.nodename

    def forget_predecessors(self) -> list[str]:
        """Delete the heartbeat keys of the earlier processes of this nodename; returns their ids."""
        pattern = _glob_escape(f"{KEY_PREFIX}{self.nodename}/") + "*"
        gone = [key.decode()[len(KEY_PREFIX):] for key in self.client.scan_iter(match=pattern, count=1000)]
        gone = [worker for worker in gone if self.is_predecessor(worker)]
        if gone:
            self.client.delete(*(KEY_PREFIX + worker for worker in gone))
        return gone

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        """A worker that stops cleanly says so at once (its items were finished or given back)."""
        self._stop.set()
        try:
            self.client.delete(KEY_PREFIX + self.worker_id)
        except redis.RedisError:
            pass  # the key expires by itself


def items_to_resend(held: dict[str, list[int]], gone: Callable[[str], bool]) -> dict[str, list[int]]:
    """The held items whose holder is gone: ``{holder: [item ids]}``."""
    return {worker: items for worker, items in held.items() if gone(worker)}


def ingest_item_of(raw: bytes | str) -> int | None:
    """The item id of an ingest task in a kombu Redis ``unacked`` entry (``[message, exchange, routing
    key]``, the message as published: Celery's protocol 2, a JSON body, base64 encoded); None otherwise."""
    try:
        message = json.loads(raw)[0]
        if message.get("headers", {}).get("task") != INGEST_ITEM_TASK:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def lost_items(waiting: list[int], queued: list[int], taken_recently: list[int], queue_length: int) -> list[int]:
    """Of the items ``waiting`` for a task held by no worker, those whose task is nowhere: not ``queued`` in
    the broker, not taken by a worker recently. Empty without looking when the queue is at least as long
    as the waiting list (each may be there; the queue is read only once that cannot be)."""
    if len(waiting) <= queue_length:
        return []
    present = set(queued) | set(taken_recently)
    return [item_id for item_id in waiting if item_id not in present]


class Reaper:
    """Sends again the tasks of items held by workers that are gone (see the module's docstring)."""

    def __init__(self, heartbeat: Heartbeat, settings: Settings, send: Callable[[int], None],
                 transport_options: Mapping | None = None, queue: str = "celery"):
        self.heartbeat = heartbeat
        self.client = heartbeat.client
        self.settings = settings
        self.send = send
        self.interval = settings.reaper_interval_s
        options = transport_options or {}  # kombu's Redis transport: where it keeps unacknowledged messages
        prefix = options.get("global_keyprefix", "")
        self.queue_key = prefix + queue
        self.unacked_key = prefix + options.get("unacked_key", "unacked")
        self.unacked_index_key = prefix + options.get("unacked_index_key", "unacked_index")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mediasearch-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        conn = catalog.connect(self.settings.catalog_path)
        try:
            self._guarded(lambda: self.reap_predecessors(conn))
            while not self._stop.wait(self.interval):
                self._guarded(lambda: self.reap(conn))
        finally:
            conn.close()

    @staticmethod
    def _guarded(work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 (Redis or the catalog unavailable: tried again next round)
            log.exception("reaper: could not re-queue the items of dead workers; trying again later")

    def reap_predecessors(self, conn) -> list[int]:
        """At start: the items held by earlier processes of this worker's nodename."""
        forgotten = self.heartbeat.forget_predecessors()
        sent = self._resend(items_to_resend(catalog.held_items(conn), self.heartbeat.is_predecessor))
        if forgotten or sent:
            log.info("worker restarted: forgot %d earlier processes of %s; re-queued %d items they held",
                     len(forgotten), self.heartbeat.nodename, len(sent))
        return sent + self.reap_lost(conn)

    def reap(self, conn) -> list[int]:
        """Lost tasks, and the items held by workers without a heartbeat (one reaper at a time; the latter
        not while Redis or this worker's heartbeat has not been steady long enough to tell)."""
        if not self.client.set(REAPER_LOCK, self.heartbeat.worker_id, nx=True, px=int(self.interval * 800)):
            return []  # another worker's reaper has this round
        sent = self.reap_lost(conn)
        if not self.can_judge():
            return sent
        dead = items_to_resend(catalog.held_items(conn), lambda worker: not self.heartbeat.alive(worker))
        held = self._resend(dead)
        if held:
            log.info("reaper: re-queued %d items held by %d workers without a heartbeat (%s)", len(held),
                     len(dead), ", ".join(sorted(dead))[:500])
        return sent + held

    def reap_lost(self, conn) -> list[int]:
        """Items waiting for a task that is nowhere (see ``lost_items``)."""
        grace = 2 * self.heartbeat.interval
        waiting = catalog.waiting_items(conn, time.time() - grace)
        queue_length = self.client.llen(self.queue_key)
        if len(waiting) <= queue_length:
            return []
        # The queue first, then the taken ones: a message taken in between is seen in the second. (One seen
        # in neither, taken and put back meanwhile, is only sent twice: the claim makes that harmless.)
        queued = [ingest_item_of(raw) for raw in self.client.lrange(self.queue_key, 0, -1)]
        recent = self.client.zrangebyscore(self.unacked_index_key, time.time() - grace, "+inf")
        taken = [ingest_item_of(raw or b"null") for raw in (self.client.hmget(self.unacked_key, recent) if recent else [])]
        candidates = lost_items(waiting, [i for i in queued if i is not None], [i for i in taken if i is not None],
                                queue_length)
        lost = [item_id for item_id in candidates if _still_waiting(catalog.get_item(conn, item_id))]
        sent = self._resend({"lost": lost}, marker_ttl=round(2 * self.interval))
        if sent:
            log.info("reaper: re-queued %d items whose tasks were nowhere (in neither the queue nor a worker's "
                     "hands: taken by a worker that died before starting them)", len(sent))
        return sent

    def can_judge(self) -> bool:
        """Every live worker has refreshed its key since Redis and this worker last could talk."""
        if self.heartbeat.steady_for() < 2 * self.heartbeat.interval:
            return False
        return self.client.info("server").get("uptime_in_seconds", 0) >= self.heartbeat.ttl

    def _resend(self, dead: dict[str, list[int]], marker_ttl: int | None = None) -> list[int]:
        sent = []
        marker_ttl = max(1, marker_ttl or int(self.settings.task_visibility_timeout))
        for holder, items in dead.items():
            for item_id in items:
                marker = f"{RESENT_PREFIX}{item_id}:{holder}"
                if self.client.exists(marker):
                    continue  # sent already for this holder; the new delivery's claim replaces it
                self.send(item_id)
                self.client.set(marker, 1, ex=marker_ttl)
                sent.append(item_id)
        return sent


def _still_waiting(item: Mapping | None) -> bool:
    return item is not None and item["status"] == catalog.ItemStatus.QUEUED and item["claimed_by"] is None
