"""Search over two index shards on a private stack, and what the gateway does when services die:
a shard down gives partial results, the embedder down gives 503 for search and "degraded" health."""

from __future__ import annotations

import pytest

from tests.conftest import PHOTOS, free_port, running_stack

PHOTOS_USED = sorted(PHOTOS.glob("*.JPEG"))[200:210]


@pytest.fixture
def two_shard_stack(tmp_path, tiny_clip_dir):
    urls = ",".join(f"http://127.0.0.1:{free_port()}" for _ in range(2))
    with running_stack(tmp_path, tiny_clip_dir, "two-shards", MEDIASEARCH_INDEX_URLS=urls) as running:
        yield running


def test_shards_merge_then_partial_results_and_embedder_outage(two_shard_stack):
    stack = two_shard_stack
    job = stack.wait_job(stack.upload([(f"shards/{p.name}", p.read_bytes()) for p in PHOTOS_USED]))
    assert job["indexed"] == len(PHOTOS_USED)

    health = stack.client.get("/health").json()
    assert health["status"] == "ok" and health["index_nodes"] == len(PHOTOS_USED)
    full = stack.client.get("/search", params={"q": "a photo", "k": len(PHOTOS_USED)}).json()
    # Rows are split between the shards (row % 2), so all ten come back only if both were merged.
    assert len(full["results"]) == len(PHOTOS_USED) and full["partial"] is False
    for path in PHOTOS_USED[:3]:
        reply = stack.client.post("/search/image", files={"file": ("q.jpg", path.read_bytes())}, params={"k": 1})
        assert reply.json()["results"][0]["name"] == f"shards/{path.name}"

    stack.stack.kill("index-1")
    partial = stack.client.get("/search", params={"q": "a photo", "k": len(PHOTOS_USED)})
    assert partial.status_code == 200
    body = partial.json()
    assert body["partial"] is True and 0 < len(body["results"]) < len(PHOTOS_USED)
    health = stack.client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    down = {s["name"]: s for s in health.json()["services"]}["index-1"]
    assert not down["ok"] and down["detail"]

    stack.stack.kill("index-0")
    none_left = stack.client.get("/search", params={"q": "a photo"})
    assert none_left.status_code == 503 and "no index shard answered" in none_left.json()["detail"]

    stack.stack.kill("embedder")
    no_embedder = stack.client.get("/search", params={"q": "a photo"})
    assert no_embedder.status_code == 503 and "embedder is unavailable" in no_embedder.json()["detail"]
    health = stack.client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded" and health.json()["dim"] is None
