"""Container healthchecks without curl in the slim image.

    python docker/healthcheck.py http://127.0.0.1:8000/health   # healthy when the URL answers 2xx
    python docker/healthcheck.py celery                         # healthy when this container's worker answers a ping
"""

import socket
import sys
import urllib.error
import urllib.request


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return 200 <= reply.status < 300
    except urllib.error.HTTPError as exc:  # e.g. 503 from the embedder: its body says why
        print(f"{url}: HTTP {exc.code}: {exc.read(500).decode(errors='replace')}", file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return False


def celery_worker_ok() -> bool:
    from shared.queue import make_celery
    from shared.settings import Settings

    node = f"celery@{socket.gethostname()}"  # Celery's default node name for this container's worker
    return bool(make_celery(Settings()).control.ping(destination=[node], timeout=5))


if __name__ == "__main__":
    target = sys.argv[1]
    sys.exit(0 if (celery_worker_ok() if target == "celery" else http_ok(target)) else 1)
