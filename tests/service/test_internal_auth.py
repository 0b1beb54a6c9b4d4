"""Internal authentication of a running service: the index app in process (its HTTP shell over a real
store), and the launcher's Redis as a real process. The embedder's side is in test_embedder.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from services.index.app import create_app
from shared.clients import IndexClient, UpstreamError
from shared.internal_auth import INTERNAL_SECRET_HEADER
from shared.settings import Settings
from shared.vectors import VectorStore
from tests.conftest import free_port, redis_answers, wait_for
from tests.samples import unit_rows
from tools.stack import Stack

SECRET = "s3cret-for-tests"
ROWS = 200


@pytest.fixture
def index(tmp_path: Path, redis_url: str):
    """An index shard over a store of 200 committed rows, and a client that presents no secret."""
    data = tmp_path / "data"
    store = VectorStore(data / "vectors", dim=16, model_id="m", writable=True)
    store.append(unit_rows(ROWS, 16), np.arange(ROWS))
    settings = Settings(data_dir=data, redis_url=redis_url, internal_secret=SECRET)
    with TestClient(create_app(settings)) as client:
        yield client
    store.close()


def test_the_index_answers_only_its_callers_but_a_bare_health(index):
    signed = {INTERNAL_SECRET_HEADER: SECRET}
    assert index.get("/health").json() == {"ready": True}  # anonymous: up, nothing more
    assert index.get("/health", headers=signed).json()["indexed_through"] == ROWS
    search = {"vector": unit_rows(1, 16)[0].tolist(), "k": 3}
    for headers in ({}, {INTERNAL_SECRET_HEADER: "wrong"}, {INTERNAL_SECRET_HEADER: SECRET.upper()}):
        for method, path, body in (("POST", "/search", search), ("POST", "/delete", {"rows": [1]}),
                                   ("GET", "/docs", None), ("GET", "/openapi.json", None)):
            reply = index.request(method, path, json=body, headers=headers)
            assert reply.status_code == 401 and INTERNAL_SECRET_HEADER in reply.json()["detail"], (path, headers)
    assert index.get("/health", headers={INTERNAL_SECRET_HEADER: "wrong"}).status_code == 401
    assert len(index.post("/search", json=search, headers=signed).json()["rows"]) == 3  # nothing was deleted


def test_deletes_past_the_committed_rows_are_refused(index):
    signed = {INTERNAL_SECRET_HEADER: SECRET}
    for rows in ([ROWS], [1, ROWS + 1], [10**12]):
        reply = index.post("/delete", json={"rows": rows}, headers=signed)
        assert reply.status_code == 400 and "not committed" in reply.json()["detail"], rows
    assert index.post("/delete", json={"rows": [1, 7]}, headers=signed).json() == {"deleted": 2}
    vectors = unit_rows(ROWS, 16)
    for row in (1, 7):
        found = index.post("/search", json={"vector": vectors[row].tolist(), "k": 5}, headers=signed).json()["rows"]
        assert row not in found and len(found) == 5


def test_clients_present_the_secret_they_are_given(tmp_path, redis_url):
    data = tmp_path / "data"
    store = VectorStore(data / "vectors", dim=16, model_id="m", writable=True)
    store.append(unit_rows(4, 16), np.arange(4))
    app = create_app(Settings(data_dir=data, redis_url=redis_url, internal_secret=None))  # so the data volume's key
    key = data / "secrets" / "internal.key"
    assert (key.stat().st_mode & 0o777, key.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    with TestClient(app) as http:
        signed = IndexClient("http://testserver", http=http, secret=key.read_text().strip())
        assert len(signed.search(unit_rows(1, 16)[0], k=4).rows) == 4
        with pytest.raises(UpstreamError) as refused:
            IndexClient("http://testserver", http=http, secret="wrong").delete([0])
        assert refused.value.status == 401
    store.close()


def test_the_launchers_redis_needs_its_password(tmp_path):
    # Empty: whatever a developer's .env says, the launcher makes both secrets.
    stack = Stack(env={"MEDIASEARCH_DATA_DIR": str(tmp_path / "data"), "MEDIASEARCH_REDIS_PORT": str(free_port()),
                       "MEDIASEARCH_REDIS_PASSWORD": "", "MEDIASEARCH_INTERNAL_SECRET": ""})
    server = stack.service("redis")
    stack.start_service(server)
    try:
        url = stack.settings.effective_redis_url
        password = (tmp_path / "data" / "secrets" / "redis.password").read_text().strip()
        assert url == f"redis://:{password}@127.0.0.1:{stack.settings.redis_port}/0"
        wait_for(lambda: redis_answers(url), 30, message="the launcher's redis-server")
        stranger = redis.Redis(port=stack.settings.redis_port)
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=stack.settings.redis_port, password="guess").ping()
        assert redis.Redis.from_url(url, decode_responses=True).config_get("protected-mode") == {"protected-mode": "yes"}
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline  # never on a command line other users can read
    finally:
        stack.stop()

