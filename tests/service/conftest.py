"""The gateway app in-process for the service tests: its create_app over a real Redis (the redis_url
fixture), a real SQLite catalog and real files; the embedder and index point at closed ports."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from shared.settings import Settings
from tests.conftest import free_port

TEST_API_KEY = "service-tests-static-key"  # MEDIASEARCH_API_KEY of these gateways: clients are signed in with it


def settings_for(tmp_path: Path, redis_url: str, **overrides) -> Settings:
    # Embedder and index point at closed ports: nothing here may need them, except where a test says so.
    # TestClient sends "Host: testserver", a name the gateway answers to only when told.
    values = {"data_dir": tmp_path / "data", "redis_url": redis_url, "ingest_roots": [tmp_path / "root"],
              "embedder_url": f"http://127.0.0.1:{free_port()}", "index_urls": [f"http://127.0.0.1:{free_port()}"],
              "api_key": TEST_API_KEY, "allowed_hosts": ["testserver"]}
    return Settings(**{**values, **overrides})


@pytest.fixture
def make_client(tmp_path, redis_url):
    clients = []

    def make(signed_in: bool = True, **overrides) -> TestClient:
        """A client of a new gateway; signed in with the static key unless ``signed_in`` is false."""
        client = TestClient(create_app(settings_for(tmp_path, redis_url, **overrides)),
                            headers={"X-API-Key": TEST_API_KEY} if signed_in else None)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
