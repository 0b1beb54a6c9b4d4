"""First start on a machine with internet: the embedder downloads the configured model into the model cache
by itself, with progress in /health and the log; offline, one line says what to do. The hub is
tests/hub_server.py on loopback: nothing leaves the machine."""

from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.hub_server import HubServer, tiny_clip_repository
from tests.service.test_embedder import EmbedderProcess
from tests.tiny_clip import TINY_DIM

REPO = "test-org/tiny-clip"


@pytest.fixture(scope="module")
def repository(tmp_path_factory, tiny_clip_dir):
    folder, shards = tiny_clip_repository(tiny_clip_dir, tmp_path_factory.mktemp("hub") / "tiny-clip")
    assert len(shards) >= 2 and not (folder / "model.safetensors").exists()
    return folder, shards


def start(tmp_path, name: str, endpoint: str) -> EmbedderProcess:
    return EmbedderProcess(tmp_path / f"data-{name}", REPO, f"download-{name}", redis_url=f"redis://127.0.0.1:{free_port()}/0",
                           model_download="1",
                           env={"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "0"})


def test_first_start_downloads_the_model_with_its_progress_then_starts_from_the_cache(tmp_path, repository):
    folder, shards = repository
    with HubServer({REPO: folder}, hold=shards[-1]) as hub:
        embedder = start(tmp_path, "first", hub.url)
        try:
            during = embedder.wait_answering(lambda reply: hub.holding.is_set() and "%" in reply.json()["detail"])
            assert during.status_code == 503
            assert during.json()["detail"].startswith(f"downloading the model {REPO} into the model cache: ")
            hub.release.set()
            ready = embedder.wait_answering(lambda reply: reply.status_code == 200)
            assert ready.json()["model_id"] == REPO and ready.json()["real_weights"] and ready.json()["dim"] == TINY_DIM
            assert embedder.client.embed_texts(["a dog"]).shape == (1, TINY_DIM)
        finally:
            embedder.stop()
    log = embedder.log_path.read_text()
    assert f"downloaded the model {REPO}" in log and "% (" in log and "Traceback" not in log
    snapshot = next((tmp_path / "cache" / "hub").glob("models--test-org--tiny-clip/snapshots/*"))
    assert {"config.json", "tokenizer.json", *shards} <= {p.name for p in snapshot.iterdir()}

    # The hub is gone now: the next start loads what the cache holds, asking nothing.
    again = start(tmp_path, "again", f"http://127.0.0.1:{free_port()}")
    try:
        assert again.wait_answering().status_code == 200
    finally:
        again.stop()
    assert "downloading" not in again.log_path.read_text()


def test_without_internet_one_line_says_what_to_do(tmp_path):
    offline = start(tmp_path, "offline", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        reply = offline.wait_answering(lambda reply: not reply.json()["detail"].startswith("downloading"))
    finally:
        offline.stop()
    detail = reply.json()["detail"]
    assert reply.status_code == 503 and "\n" not in detail
    assert f"could not download {REPO}" in detail and f"huggingface-cli download {REPO}" in detail
