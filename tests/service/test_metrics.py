"""Metrics and logs: the gateway's /metrics (in process, over a real Redis and catalog) with the embedder's
and an index shard's apps answering its internal clients on loopback; request ids in responses, in log
lines and in internal calls; JSON log lines from a real process. The embedder's own /metrics, after real
embeds, is in test_embedder.py. No timings are asserted."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from services.embedder.app import create_app as create_embedder
from services.index.app import create_app as create_index
from shared import catalog, logs
from shared.metrics import REQUEST_SECONDS, Samples
from shared.settings import Settings
from tests.conftest import free_port, wait_for
from tools.stack import REPO_ROOT

KEY = "s3cret"
SIGNED = {"X-API-Key": KEY}


def families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines of this process (as MEDIASEARCH_LOG_FORMAT=json writes them), DEBUG and up."""
    stream = io.StringIO()
    handler = logs.make_handler("gateway", "json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_gateway_metrics_need_the_key_and_cover_routes_queue_and_items(make_client, redis_url):
    client = make_client(signed_in=False, api_key=KEY)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401

    gateway = client.app.state.gateway
    conn = catalog.connect(gateway.settings.catalog_path)
    _, items = catalog.create_job(conn, "upload", "holiday", [(f"{n}.jpg", f"uploads/{n}.jpg") for n in range(3)])
    catalog.set_item(conn, items[0], catalog.ItemStatus.FAILED, reason="broken")
    queue = redis.Redis.from_url(redis_url)
    waiting = queue.llen("celery")
    queue.rpush("celery", "metrics-test-1", "metrics-test-2")
    try:
        assert client.get("/media/123456", headers=SIGNED).status_code == 404
        assert client.get("/media/654321", headers=SIGNED).status_code == 404
        reply = client.get("/metrics", headers=SIGNED)
    finally:
        queue.lrem("celery", 0, "metrics-test-1")
        queue.lrem("celery", 0, "metrics-test-2")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    found = families(reply.text)

    latency = found[REQUEST_SECONDS]
    assert latency.type == "histogram"
    media = [s for s in latency.samples if s.name == f"{REQUEST_SECONDS}_count"
             and s.labels["route"] == "/media/{media_id}"]
    assert [(s.labels["service"], s.labels["method"], s.labels["status"], s.value) for s in media] == \
        [("gateway", "GET", "404", 2.0)]
    assert not any("123456" in s.labels.get("route", "") for s in latency.samples)  # templates, not paths

    depth = found["mediasearch_queue_depth"]
    assert [(s.labels["queue"], s.value) for s in depth.samples] == [("celery", waiting + 2)]
    by_status = {s.labels["status"]: s.value for s in found["mediasearch_job_items"].samples}
    assert set(by_status) == {status.value for status in catalog.ItemStatus}
    assert by_status["queued"] == 2 and by_status["failed"] == 1 and by_status["indexed"] == 0
    samples = Samples(reply.text)
    assert samples.value("mediasearch_disk_free_bytes", service="gateway") > 0
    assert samples.value("mediasearch_media") == 0
    # The embedder and the index are closed ports here: they are down, the rest is served.
    up = {(s.labels["service"], s.labels["shard"]): s.value for s in found["mediasearch_up"].samples}
    assert up == {("gateway", ""): 1, ("redis", ""): 1, ("embedder", ""): 0, ("index", "0"): 0}


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port in this process (its lifespan not run: no model); its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="off", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30, message="uvicorn did not start")
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_gateway_metrics_include_the_embedder_and_every_shard_with_the_request_id(make_client, tmp_path, redis_url,
                                                                                  log_lines):
    # The embedder's and the shard's apps on loopback, answering the gateway's internal clients.
    settings = Settings(data_dir=tmp_path / "services", redis_url=redis_url)
    with serving(create_embedder(settings)) as embedder_url, serving(create_index(settings)) as index_url:
        client = make_client(signed_in=False, api_key=KEY, embedder_url=embedder_url, index_urls=[index_url])
        scrape_twice_and_check(client, log_lines)


def scrape_twice_and_check(client, log_lines) -> None:
    client.get("/metrics", headers=SIGNED)
    reply = client.get("/metrics", headers={**SIGNED, "X-Request-ID": "scrape-42"})
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "scrape-42"
    found = families(reply.text)
    up = {(s.labels["service"], s.labels["shard"]): s.value for s in found["mediasearch_up"].samples}
    assert up[("embedder", "")] == 1 and up[("index", "0")] == 1
    for name in ("mediasearch_embedder_batch_size", "mediasearch_embedder_inference_seconds"):
        assert found[name].type == "histogram"
        assert {s.labels["service"] for s in found[name].samples} == {"embedder"}
        assert {s.labels["kind"] for s in found[name].samples} == {"image", "text"}
    nodes = found["mediasearch_index_nodes"].samples
    assert [(s.labels["service"], s.labels["shard"], s.value) for s in nodes] == [("index", "0", 0.0)]
    assert found["mediasearch_index_search_seconds"].type == "histogram"
    routes = {(s.labels["service"], s.labels.get("shard"), s.labels["route"])
              for s in found[REQUEST_SECONDS].samples}
    # The first scrape's calls were timed: every service's own series, one family.
    assert {("gateway", None, "/metrics"), ("embedder", None, "/metrics"), ("index", "0", "/metrics")} <= routes
    assert reply.text.count(f"# TYPE {REQUEST_SECONDS} histogram") == 1

    # The internal calls carried the request id: every service's line about it names it.
    lines = [line for line in parsed(log_lines) if line.get("request_id") == "scrape-42"]
    assert len([line for line in lines if line["logger"] == "mediasearch.http" and line["path"] == "/metrics"]) == 3


def test_the_request_id_comes_back_and_is_in_the_json_log_lines(client, log_lines):
    reply = client.get("/media/77", headers={"X-Request-ID": "trace-abc_1"})
    assert reply.status_code == 404 and reply.headers["x-request-id"] == "trace-abc_1"
    line = next(line for line in parsed(log_lines) if line.get("request_id") == "trace-abc_1")
    assert line["service"] == "gateway" and line["logger"] == "mediasearch.http" and line["level"] == "INFO"
    assert line["route"] == "/media/{media_id}" and line["status"] == 404 and "time" in line
    assert "GET /media/77 404" in line["message"]
    # An id that is not sane (too long, odd characters, missing) is replaced by a new one.
    for sent in ("x" * 65, "bad id!", "", None):
        headers = {} if sent is None else {"X-Request-ID": sent}
        made = client.get("/health", headers=headers).headers["x-request-id"]
        assert made != sent and logs.sane_id(made) == made
    first, second = (client.get("/health").headers["x-request-id"] for _ in range(2))
    assert first != second


def test_log_lines_are_json_with_the_ids_in_a_real_process(tmp_path):
    program = (
        "import logging\n"
        "from shared import logs\n"
        "from shared.settings import Settings\n"
        "logs.configure_logging('ingest_worker', Settings())\n"
        "log = logging.getLogger('mediasearch.worker')\n"
        "log.info('before')\n"
        "with logs.bind(request_id='req-1', job_id='job-9'):\n"
        "    log.warning('item %s failed', 7)\n"
        "    try:\n"
        "        1 / 0\n"
        "    except ZeroDivisionError:\n"
        "        log.exception('with a traceback')\n"
        "    print(logs.outgoing_headers(), flush=True)\n"
        "log.debug('not shown at INFO')\n")

    def run(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", program], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env})

    done = run(MEDIASEARCH_LOG_FORMAT="json", MEDIASEARCH_DATA_DIR=str(tmp_path))
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["message"] for line in lines] == ["before", "item 7 failed", "with a traceback"]
    assert all(line["service"] == "ingest_worker" and line["logger"] == "mediasearch.worker" for line in lines)
    assert "request_id" not in lines[0] and "job_id" not in lines[0]
    assert all(line["request_id"] == "req-1" and line["job_id"] == "job-9" for line in lines[1:])
    assert lines[1]["level"] == "WARNING" and "ZeroDivisionError" in lines[2]["exception"]
    assert done.stdout.strip() == str({"X-Request-ID": "req-1", "X-Job-ID": "job-9"})

    text = run(MEDIASEARCH_DATA_DIR=str(tmp_path)).stderr.splitlines()
    assert " INFO ingest_worker mediasearch.worker before" in text[0]
    assert " WARNING ingest_worker mediasearch.worker [request_id=req-1 job_id=job-9] item 7 failed" in text[1]
