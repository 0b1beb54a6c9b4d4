"""``python -m services.watcher``: the one watcher of the libraries' folders (a second one waits as a
standby). Started by `make run` (tools/stack.py) and by compose; it stops on SIGTERM or Ctrl-C."""

import signal
import threading

import redis

from services.watcher.watcher import Watcher
from shared.logs import configure_logging
from shared.queue import SCAN_LIBRARY_TASK, make_celery
from shared.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    configure_logging("watcher", settings)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    celery = make_celery(settings)
    client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=10, socket_connect_timeout=5)
    Watcher(settings, client, lambda library_id: celery.send_task(SCAN_LIBRARY_TASK, args=[library_id])).run(stopping)
