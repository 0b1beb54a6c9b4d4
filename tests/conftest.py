"""Fixtures that start the real product: a Redis server, the embedder with a tiny random CLIP, the
index, a Celery worker and the gateway, each its own process on free loopback ports.

The tests come in tiers, one folder each, marked by that folder's name: ``unit`` (no processes),
``service`` (one service, in process or on loopback), ``stack`` (the whole product) and ``browser``
(headless Chromium against the whole product). ``make test-fast`` runs the unit and service tiers
(what ``-m "unit or service"`` selects)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from shared.internal_auth import INTERNAL_SECRET_HEADER, internal_secret
from tests.samples import PHOTOS, SHARED_DATA, VIDEOS  # noqa: F401 (PHOTOS and VIDEOS: imported from here too)
from tests.tiny_clip import make_tiny_clip_dir, make_tiny_siglip_dir
from tools.stack import Stack, find_redis_server

# Tests never reach the internet: no model download in any service they start (test_model_download.py
# serves its own hub on loopback and allows it there).
os.environ["HF_HUB_OFFLINE"] = "1"

TESTS = Path(__file__).resolve().parent
TEST_OUTPUT = TESTS.parent / "test-output"
TIERS = ("unit", "service", "stack", "browser")
# The internal secret of the stacks started here, set as an operator would (MEDIASEARCH_INTERNAL_SECRET),
# and in this process too, so that clients a test makes (an EmbedderClient, an IngestContext) present it
# as the product's own processes do. Tests of the key file on the data volume set the variable empty.
TEST_INTERNAL_SECRET = secrets.token_urlsafe(16)
# MEDIASEARCH_API_KEY of the stacks started here: RunningStack.client sends it (the static key acts as the
# owner). The browser tests sign in with an account instead (tests/browser/pages.py).
TEST_API_KEY = secrets.token_urlsafe(16)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test with its tier, the folder it lives in."""
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        tier = item.path.relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in a tier folder, one of {', '.join(TIERS)}")
        item.add_marker(tier)


@pytest.fixture(scope="session", autouse=True)
def internal_secret_of_this_process() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDIASEARCH_INTERNAL_SECRET", TEST_INTERNAL_SECRET)
        yield TEST_INTERNAL_SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = 60, interval: float = 0.05, message: str = "") -> object:
    """Poll until ``condition()`` is truthy; returns its value or fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


def redis_answers(url: str) -> bool:
    """The Redis at ``url`` (with the password in it, if any) answers a ping."""
    try:
        return redis.Redis.from_url(url).ping()
    except redis.ConnectionError:  # AuthenticationError too
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> str:
    """A private redis-server on a free port, for tests of one service on its own."""
    port = free_port()
    server = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                              stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis_answers(url), 30, message="redis-server to start")
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip_dir(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory) -> Path:
    return make_tiny_siglip_dir(tmp_path_factory.mktemp("tiny-siglip"))


def stack_env(data_dir: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    gateway, embedder, index, redis_port = (free_port() for _ in range(4))
    env = {
        "MEDIASEARCH_DATA_DIR": str(data_dir),
        "MEDIASEARCH_CLIP_MODEL": str(model_dir),
        "MEDIASEARCH_CLIP_RANDOM_WEIGHTS": "1",
        "MEDIASEARCH_GATEWAY_PORT": str(gateway),
        "MEDIASEARCH_EMBEDDER_PORT": str(embedder),
        "MEDIASEARCH_EMBEDDER_URL": f"http://127.0.0.1:{embedder}",
        "MEDIASEARCH_INDEX_PORT": str(index),
        "MEDIASEARCH_INDEX_URLS": f"http://127.0.0.1:{index}",
        "MEDIASEARCH_REDIS_PORT": str(redis_port),
        "MEDIASEARCH_TORCH_THREADS": "1",
        "MEDIASEARCH_INGEST_ROOTS": str(SHARED_DATA),
        "MEDIASEARCH_INTERNAL_SECRET": TEST_INTERNAL_SECRET,
        "MEDIASEARCH_API_KEY": TEST_API_KEY,
        # Reading text costs ~1 s of CPU a picture; only the stacks that test it (OCR=1) pay for it.
        "MEDIASEARCH_OCR": "0",
    }
    env.pop("MEDIASEARCH_REDIS_URL", None)
    env.update(extra)
    return env


class RunningStack:
    def __init__(self, stack: Stack):
        self.stack = stack
        s = stack.settings
        self.settings = s
        self.secret = internal_secret(s)
        # for tests that call the embedder or the index directly
        self.internal_headers = {INTERNAL_SECRET_HEADER: self.secret}
        self.url = f"http://127.0.0.1:{s.gateway_port}"
        self.client = httpx.Client(base_url=self.url, timeout=60, headers={"X-API-Key": s.api_key.get_secret_value()})

    def wait_job(self, job_id: str, timeout: float = 180) -> dict:
        def finished():
            job = self.client.get(f"/jobs/{job_id}").json()
            return job if job["status"] in ("done", "failed", "cancelled") else None

        return wait_for(finished, timeout, interval=0.1, message=f"job {job_id} to finish")

    def upload(self, files: list[tuple[str, bytes]], folder: str | None = None) -> str:
        parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
        reply = self.client.post("/uploads", files=parts, data={"folder": folder} if folder else None)
        assert reply.status_code == 202, reply.text
        return reply.json()["job_id"]


@contextmanager
def running_stack(tmp_path: Path, model_dir: Path | str, name: str, require_ready: bool = True,
                  **extra: str) -> Iterator[RunningStack]:
    """The whole product on loopback, data in ``tmp_path``, logs in test-output/logs/<name>; stopped on exit.
    Without ``require_ready``, an embedder that is up but not ready (downloading its model) is left to it."""
    stack = Stack(env=stack_env(tmp_path / "data", model_dir, **extra), log_dir=TEST_OUTPUT / "logs" / name)
    try:
        stack.start(timeout=240, require_ready=require_ready)
        running = RunningStack(stack)
        try:
            yield running
        finally:
            running.client.close()
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory, tiny_clip_dir) -> RunningStack:
    """One whole product shared by the integration tests of a session (they must not assume it is empty)."""
    # A second ingest root of its own, where tests make folders to add as libraries.
    library_roots = tmp_path_factory.mktemp("library-roots")
    with running_stack(tmp_path_factory.mktemp("stack"), tiny_clip_dir, "session",
                       MEDIASEARCH_INGEST_ROOTS=f"{SHARED_DATA},{library_roots}") as running:
        yield running


@pytest.fixture
def fresh_stack(tmp_path, tiny_clip_dir, request) -> RunningStack:
    """A private product for tests that kill services or need an empty catalog."""
    with running_stack(tmp_path, tiny_clip_dir, request.node.name) as running:
        yield running
