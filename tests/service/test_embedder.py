"""The embedder service as a real process (tiny random CLIP) with a real Redis server on free ports."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.embedder.model import ClipEmbedder
from services.embedder.pooling import attention_pool
from shared import logs
from shared.clients import EmbedderClient, UpstreamError
from shared.internal_auth import INTERNAL_SECRET_HEADER
from shared.metrics import REQUEST_SECONDS, Samples
from shared.schemas import EMBEDDER_STARTING, VECTORS_STREAM
from shared.settings import INT8_MIN_COSINE, Settings
from shared.vectors import VectorStore, encode_video_owner
from tests.conftest import PHOTOS, TEST_OUTPUT, free_port, wait_for
from tests.samples import varied_texts
from tests.tiny_clip import REAL_MODEL_DIR, TINY_DIM
from tools.stack import REPO_ROOT

PHOTO_NAMES = sorted(os.listdir(PHOTOS))[:8]


class EmbedderProcess:
    def __init__(self, data_dir: Path, model_dir: Path | str, log_name: str, env: dict[str, str] | None = None,
                 **settings: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_urlsafe(16)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1",
               "MEDIASEARCH_INTERNAL_SECRET": self.secret,
               "MEDIASEARCH_DATA_DIR": str(data_dir), "MEDIASEARCH_CLIP_MODEL": str(model_dir),
               "MEDIASEARCH_EMBEDDER_PORT": str(self.port), "MEDIASEARCH_TORCH_THREADS": "1",
               **{f"MEDIASEARCH_{key.upper()}": value for key, value in settings.items()}, **(env or {})}
        self.log_path = TEST_OUTPUT / "logs" / "embedder" / f"{log_name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the process keeps its own handle
            self.process = subprocess.Popen([sys.executable, "-m", "services.embedder"], env=env, cwd=REPO_ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)
        # As the product's own services call it (with the internal secret); tests of strangers use httpx.
        self.http = httpx.Client(base_url=self.url, timeout=60, headers={INTERNAL_SECRET_HEADER: self.secret})
        self.client = EmbedderClient(self.url, secret=self.secret)

    def wait_answering(self, settled: Callable[[httpx.Response], bool] = lambda reply: True,
                       timeout: float = 120) -> httpx.Response:
        """Its first /health answer that is ``settled``, once it no longer says it is starting."""
        def answer():
            assert self.process.poll() is None, f"embedder exited; log: {self.log_path}"
            try:
                reply = self.http.get("/health")
            except httpx.TransportError:
                return None
            return reply if reply.json().get("detail") != EMBEDDER_STARTING and settled(reply) else None

        return wait_for(answer, timeout, interval=0.1, message=f"embedder on {self.url} to answer")

    def metrics(self) -> Samples:
        """The embedder's /metrics (Prometheus text), to read values from."""
        return Samples(self.client.metrics())

    def stop(self) -> None:
        """Stops the process; a second call does nothing."""
        self.http.close()
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def put_frames(data_dir: Path, names: list[str]) -> list[str]:
    """Real photos placed where frames live in the data dir; returns their relative paths."""
    paths = []
    for number, name in enumerate(names):
        relative = f"media/frames/te/photo-{number:05d}.jpg"
        (data_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PHOTOS / name, data_dir / relative)
        paths.append(relative)
    return paths


@pytest.fixture(scope="module")
def embedders(tmp_path_factory, tiny_clip_dir, redis_url) -> dict[str, EmbedderProcess]:
    """Every embedder process of this module, started at once so that they load side by side (each takes
    seconds): "main" with a long collection window, so that concurrent requests reliably meet in one
    batch; "no-redis" with no Redis to announce to; "missing-weights" with a real config but no weights."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    started: dict[str, EmbedderProcess] = {}
    try:
        started["main"] = EmbedderProcess(tmp_path_factory.mktemp("embedder-main"), tiny_clip_dir, "main",
                                          clip_random_weights="1", redis_url=redis_url, embed_max_batch="8",
                                          embed_max_wait_ms="400")
        started["no-redis"] = EmbedderProcess(tmp_path_factory.mktemp("embedder-no-redis"), tiny_clip_dir,
                                              "no-redis", clip_random_weights="1", redis_url=dead_redis)
        started["missing-weights"] = EmbedderProcess(tmp_path_factory.mktemp("embedder-missing-weights"),
                                                     REAL_MODEL_DIR, "missing-weights", clip_random_weights="0",
                                                     redis_url=dead_redis)
        yield started
    finally:
        for service in started.values():
            service.stop()


@pytest.fixture(scope="module")
def embedder(embedders) -> EmbedderProcess:
    service = embedders["main"]
    assert service.wait_answering().status_code == 200
    return service


def stored_rows(data_dir: Path, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    store = VectorStore(data_dir / "vectors")
    vectors, owners = store.view()
    return np.array(vectors[rows]), np.array(owners[rows])


# -- the plain functions -------------------------------------------------------------------------------
def test_attention_pool_matches_formula():
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(7, 16))
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    m = frames.mean(axis=0)
    logits = [float(f @ m) / 0.08 for f in frames]
    weights = np.exp(logits) / np.sum(np.exp(logits))
    expected = sum(w * f for w, f in zip(weights, frames))
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(attention_pool(frames), expected, atol=1e-6)
    np.testing.assert_allclose(attention_pool(frames[:1]), frames[0], atol=1e-6)
    with pytest.raises(ValueError):
        attention_pool(np.zeros((0, 16)))


def test_random_weights_are_the_same_on_every_load(tiny_clip_dir):
    first = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)
    second = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)
    assert first.model_id == second.model_id == f"random-weights:{tiny_clip_dir.name}"
    pixels = np.stack([first.preprocess((PHOTOS / name).read_bytes()) for name in PHOTO_NAMES[:2]])
    np.testing.assert_array_equal(first.embed_pixels(pixels), second.embed_pixels(pixels))
    np.testing.assert_array_equal(first.embed_texts(["a dog"]), second.embed_texts(["a dog"]))


def test_preprocessing_matches_the_reference_clip_processor(tiny_clip_dir):
    from PIL import Image
    from transformers import CLIPImageProcessor

    model = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)
    reference = CLIPImageProcessor.from_pretrained(str(tiny_clip_dir), local_files_only=True)
    ours = np.stack([model.preprocess((PHOTOS / name).read_bytes()) for name in PHOTO_NAMES])
    theirs = reference(images=[Image.open(PHOTOS / name).convert("RGB") for name in PHOTO_NAMES],
                       return_tensors="np")["pixel_values"]
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).mean() < 0.1  # resampling details differ, the picture does not
    np.testing.assert_allclose(np.sum(model.embed_pixels(ours) * model.embed_pixels(theirs.astype(np.float32)),
                                      axis=1), 1, atol=0.01)


def test_int8_vectors_agree_with_fp32_for_every_photo_and_text(tiny_clip_dir):
    fp32 = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)
    int8 = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1, int8=True)
    assert int8.precision == "int8" and int8.model_id == fp32.model_id
    pixels = np.stack([fp32.preprocess((PHOTOS / name).read_bytes()) for name in PHOTO_NAMES])
    assert np.sum(fp32.embed_pixels(pixels) * int8.embed_pixels(pixels), axis=1).min() >= INT8_MIN_COSINE
    texts = varied_texts(1000)
    assert np.sum(fp32.embed_texts(texts) * int8.embed_texts(texts), axis=1).min() >= INT8_MIN_COSINE


def test_onnx_runtime_text_tower_gives_torch_fp32_vectors_and_is_exported_once(tiny_clip_dir, caplog):
    fp32 = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)
    texts = varied_texts(1000, seed=2)
    expected = fp32.embed_texts(texts)
    for int8 in (False, True):
        onnx = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1, text_int8=int8,
                            text_runtime="onnxruntime")
        assert onnx.onnx_text is not None and onnx.onnx_text.path.exists()
        vectors = onnx.embed_texts(texts)
        if not int8:  # the same computation (int8 agreement is measured on the real architecture, below)
            assert np.sum(expected * vectors, axis=1).min() >= 0.9999
        # Padded batches and single texts agree (batch and length are free in the export; int8 scales its
        # activations per batch, so there only to int8's tolerance).
        singles = np.stack([onnx.embed_texts([text])[0] for text in texts[:20]])
        assert np.sum(vectors[:20] * singles, axis=1).min() >= (INT8_MIN_COSINE if int8 else 0.9999)
        # A second start finds the exported file in the model cache: no export.
        exported = onnx.onnx_text.path.stat().st_mtime_ns
        caplog.clear()
        with caplog.at_level("INFO", logger="mediasearch.embedder"):
            again = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1, text_int8=int8,
                                 text_runtime="onnxruntime")
        assert again.onnx_text.path == onnx.onnx_text.path and exported == again.onnx_text.path.stat().st_mtime_ns
        assert "exporting" not in caplog.text
        np.testing.assert_array_equal(again.embed_texts(texts[:5]), onnx.embed_texts(texts[:5]))
    # A damaged file in the cache (a power cut mid-write, a full disk) is exported again, not trusted.
    onnx.onnx_text.path.write_bytes(b"not a model")
    caplog.clear()
    with caplog.at_level("WARNING", logger="mediasearch.embedder"):
        repaired = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1, text_int8=True,
                                text_runtime="onnxruntime")
    assert "does not load" in caplog.text and repaired.onnx_text is not None
    np.testing.assert_allclose(repaired.embed_texts(texts[:5]), onnx.embed_texts(texts[:5]), atol=1e-6)


def test_onnx_runtime_int8_text_tower_agrees_with_fp32_on_the_real_architecture():
    """ViT-B/32's text tower (random weights, its real sizes): the default search path against torch fp32 on
    1,000 varied texts. A 32-wide tiny model is too narrow for int8 to mean anything (torch's own int8 dips
    to 0.989 there)."""
    fp32 = ClipEmbedder(str(REAL_MODEL_DIR), random_weights=True)
    int8 = ClipEmbedder(str(REAL_MODEL_DIR), random_weights=True, text_int8=True, text_runtime="onnxruntime")
    texts = varied_texts(1000, seed=3)
    agreement = np.concatenate([np.sum(fp32.embed_texts(texts[start:start + 100]) *
                                       int8.embed_texts(texts[start:start + 100]), axis=1)
                                for start in range(0, len(texts), 100)])
    assert agreement.min() >= INT8_MIN_COSINE and agreement.max() < 1


def test_the_default_quantises_both_towers_and_the_text_tower_can_go_alone(tiny_clip_dir):
    defaults = Settings(data_dir=Path("unused"))
    both = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1, int8=defaults.clip_int8,
                        text_int8=defaults.clip_text_int8, text_runtime=defaults.clip_text_runtime)
    assert (both.precision, both.text_precision) == ("int8", "int8 onnxruntime")
    fp32 = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)
    default = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1, text_int8=True)
    assert (default.precision, default.text_precision) == ("float32", "int8")
    assert "float32 images, int8 texts" in default.device_name
    pixels = np.stack([fp32.preprocess((PHOTOS / name).read_bytes()) for name in PHOTO_NAMES])
    np.testing.assert_array_equal(default.embed_pixels(pixels), fp32.embed_pixels(pixels))  # images untouched
    texts = varied_texts(1000, seed=1)
    agreement = np.sum(fp32.embed_texts(texts) * default.embed_texts(texts), axis=1)
    assert agreement.min() >= INT8_MIN_COSINE and agreement.max() < 1  # quantised, and close


# -- the service ---------------------------------------------------------------------------------------
def test_health_reports_the_loaded_model(embedder, tiny_clip_dir):
    health = embedder.http.get("/health").json()
    assert health["ready"] is True and health["dim"] == TINY_DIM
    assert health["model_id"] == f"random-weights:{tiny_clip_dir.name}" and health["real_weights"] is False


def test_strangers_get_401_everywhere_but_a_bare_health(embedder):
    assert httpx.get(f"{embedder.url}/health").json() == {"ready": True}  # anonymous: up, nothing more
    for secret in (None, "wrong", embedder.secret + "x"):
        headers = {} if secret is None else {INTERNAL_SECRET_HEADER: secret}
        for method, path, body in (("POST", "/embed/text", {"texts": ["x"]}), ("GET", "/metrics", None),
                                   ("POST", "/embed/video", {"media_id": 1, "rows": [0]}), ("GET", "/docs", None),
                                   ("GET", "/openapi.json", None)):
            reply = httpx.request(method, f"{embedder.url}{path}", json=body, headers=headers)
            assert reply.status_code == 401 and "X-Internal-Secret" in reply.json()["detail"], (path, secret)
        if secret is not None:  # a wrong secret is refused even on /health: that caller is misconfigured
            assert httpx.get(f"{embedder.url}/health", headers=headers).status_code == 401
    refused = EmbedderClient(embedder.url, secret="wrong")
    with pytest.raises(UpstreamError) as error:
        refused.embed_texts(["x"])
    refused.close()
    assert error.value.status == 401 and error.value.caller_fault


def test_text_vectors_are_unit_length_and_cached(embedder):
    before = embedder.metrics()
    texts = ["a dog in the snow", "a red car", "a dog in the snow"]
    first = embedder.client.embed_texts(texts)
    assert first.shape == (3, TINY_DIM)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(first[0], first[2])
    again = embedder.client.embed_texts(["a red car"])
    np.testing.assert_array_equal(again[0], first[1])
    after = embedder.metrics()
    hits = "mediasearch_embedder_text_cache_hits_total"
    assert after.value(hits) >= before.value(hits) + 1
    texts = "mediasearch_embedder_batch_size_sum"  # each distinct text ran through the model once
    assert after.value(texts, kind="text") == before.value(texts, kind="text") + 2


def test_images_are_stored_unit_length_and_announced_on_the_stream(embedder, redis_url):
    paths = put_frames(embedder.data_dir, PHOTO_NAMES[:3])
    rows = embedder.client.embed_frames([(100 + i, path) for i, path in enumerate(paths)])
    assert len(rows) == 3 and rows == list(range(rows[0], rows[0] + 3))
    vectors, owners = stored_rows(embedder.data_dir, rows)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert owners.tolist() == [100, 101, 102]
    query = embedder.client.embed_query_image((PHOTOS / PHOTO_NAMES[0]).read_bytes())
    # same photo, same vector (int8 activations are scaled per forward pass: equal to ~1e-4), not stored again
    assert float(query @ vectors[0]) > 0.999

    def announced():
        entries = redis.Redis.from_url(redis_url, decode_responses=True).xrange(VECTORS_STREAM)
        return [(int(f["start"]), int(f["end"])) for _, f in entries if int(f["start"]) == rows[0]]

    assert wait_for(announced, 10, message="the stream entry") == [(rows[0], rows[-1] + 1)]


def test_concurrent_requests_share_one_forward_pass(embedder):
    paths = put_frames(embedder.data_dir, PHOTO_NAMES[:6])
    before = embedder.metrics()
    committed = int(before.value("mediasearch_embedder_committed_rows"))
    with ThreadPoolExecutor(len(paths)) as pool:
        replies = list(pool.map(lambda p: embedder.client.embed_frames([(7, p)]), paths))
    assert sorted(row for reply in replies for row in reply) == list(range(committed, committed + 6))
    after = embedder.metrics()

    def added(name: str, **labels: str) -> float:
        return after.value(name, kind="image", **labels) - before.value(name, kind="image", **labels)

    assert added("mediasearch_embedder_batch_size_sum") == 6  # images through the model
    passes = added("mediasearch_embedder_batch_size_count")
    assert 1 <= passes < 6
    assert added("mediasearch_embedder_batch_size_bucket", le="1.0") < passes  # a pass of 2 or more
    assert added("mediasearch_embedder_inference_seconds_count") == passes


def test_a_bad_frame_fails_its_own_request_not_the_pass_it_shares(embedder, tiny_clip_dir):
    """As the ingest workers send them: one request per file, many at once, batched into shared passes. A
    frame that cannot be read fails its own request (422); every other frame is stored once, under its own
    owner, with its own vector (none lost, none swapped within a batch)."""
    names = PHOTO_NAMES[:7]
    paths = put_frames(embedder.data_dir, names)
    corrupt = "media/frames/te/corrupt-in-a-batch.jpg"
    (embedder.data_dir / corrupt).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    requests = [(300 + number, path) for number, path in enumerate(paths)]
    requests.insert(3, (399, corrupt))
    before = embedder.metrics()

    def send(item: tuple[int, str]) -> list[int] | UpstreamError:
        try:
            return embedder.client.embed_frames([item])
        except UpstreamError as exc:
            return exc

    with ThreadPoolExecutor(len(requests)) as pool:
        replies = list(pool.map(send, requests))
    after = embedder.metrics()
    refused = replies.pop(3)
    assert isinstance(refused, UpstreamError) and refused.status == 422 and corrupt in refused.detail
    assert all(isinstance(reply, list) and len(reply) == 1 for reply in replies), replies
    rows = [reply[0] for reply in replies]
    vectors, owners = stored_rows(embedder.data_dir, rows)
    assert owners.tolist() == list(range(300, 300 + len(names)))
    model = ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1)  # the same weights, in this process
    expected = model.embed_pixels(np.stack([model.preprocess((embedder.data_dir / path).read_bytes())
                                            for path in paths]))
    similarity = vectors @ expected.T
    assert similarity.argmax(axis=1).tolist() == list(range(len(names)))
    np.testing.assert_allclose(np.diag(similarity), 1, atol=1e-3)  # int8 activations are scaled per pass

    def added(name: str) -> float:
        return after.value(name, kind="image") - before.value(name, kind="image")

    assert added("mediasearch_embedder_batch_size_sum") == len(names)  # the corrupt frame never reached the model
    assert added("mediasearch_embedder_batch_size_count") < len(names)  # and the others shared passes


def test_metrics_are_prometheus_text_with_batch_and_inference_histograms(embedder):
    embedder.client.embed_frames([(8, put_frames(embedder.data_dir, PHOTO_NAMES[:1])[0])])
    reply = embedder.http.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    found = {family.name: family for family in text_string_to_metric_families(reply.text)}
    for name in ("mediasearch_embedder_batch_size", "mediasearch_embedder_inference_seconds"):
        assert found[name].type == "histogram"
        counts = {s.labels["kind"]: s.value for s in found[name].samples if s.name == f"{name}_count"}
        assert counts["image"] >= 1 and counts["text"] >= 0
    samples = Samples(reply.text)
    assert samples.mean("mediasearch_embedder_batch_size", kind="image") >= 1
    assert samples.value("mediasearch_embedder_ready") == 1
    assert samples.value(f"{REQUEST_SECONDS}_count", route="/embed/images", status="200") >= 1
    assert samples.value("mediasearch_embedder_rows_appended_total") >= 1


def test_log_lines_carry_the_request_and_job_ids_of_the_caller(embedder):
    with logs.bind(request_id="trace-embed-1", job_id="job-embed-1"):
        embedder.client.embed_texts(["a kite over the dunes"])
    reply = embedder.http.post("/embed/text", json={"texts": ["x"]}, headers={"X-Request-ID": "trace-embed-2"})
    assert reply.headers["x-request-id"] == "trace-embed-2"

    def logged() -> bool:
        log = embedder.log_path.read_text()
        return ("[request_id=trace-embed-1 job_id=job-embed-1] POST /embed/text 200" in log
                and "[request_id=trace-embed-2] POST /embed/text 200" in log)

    wait_for(logged, 10, message=f"both lines in {embedder.log_path}")


def test_video_vector_is_the_attention_pool_of_its_frames(embedder):
    paths = put_frames(embedder.data_dir, PHOTO_NAMES[3:8])
    frame_rows = embedder.client.embed_frames([(200 + i, path) for i, path in enumerate(paths)])
    video_row = embedder.client.embed_video(42, frame_rows)
    frames, _ = stored_rows(embedder.data_dir, frame_rows)
    pooled, owners = stored_rows(embedder.data_dir, [video_row])
    np.testing.assert_allclose(pooled[0], attention_pool(frames), atol=1e-6)
    assert owners[0] == encode_video_owner(42)
    # A video vector is not a frame vector, and rows must be committed.
    for rows in ([video_row], [10**9], []):
        reply = embedder.http.post("/embed/video", json={"media_id": 42, "rows": rows})
        assert reply.status_code == 422, reply.text


def test_bad_input_gets_a_4xx_and_stores_nothing(embedder):
    good = put_frames(embedder.data_dir, PHOTO_NAMES[:1])[0]
    corrupt = "media/frames/te/corrupt.jpg"
    (embedder.data_dir / corrupt).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    committed = embedder.metrics().value("mediasearch_embedder_committed_rows")
    for path in (corrupt, "../../../etc/passwd", "/etc/passwd", "media/frames/te/missing.jpg", "media"):
        reply = embedder.http.post("/embed/images", json={"items": [{"owner": 1, "path": good},
                                                                    {"owner": 2, "path": path}]})
        assert reply.status_code == 422, reply.text
        assert path in reply.json()["detail"]
    for body in ({"items": []}, {"texts": []}, {"items": [{"owner": "x", "path": good}]}):
        assert embedder.http.post("/embed/images", json=body).status_code == 422
    assert embedder.http.post("/embed/text", json={"texts": []}).status_code == 422
    reply = embedder.http.post("/embed/query-image", files={"file": ("q.jpg", b"GIF89a broken")})
    assert reply.status_code == 422 and "image" in reply.json()["detail"]
    assert embedder.http.post("/embed/query-image", files={"file": ("q.jpg", b"")}).status_code == 422
    assert embedder.metrics().value("mediasearch_embedder_committed_rows") == committed


def test_restart_gives_the_same_vectors_and_commits_survive_redis_down(embedder, embedders):
    other = embedders["no-redis"]  # another process of the same model, as after a restart
    assert other.wait_answering().status_code == 200
    text = "a lighthouse at dusk"
    np.testing.assert_array_equal(other.client.embed_texts([text]), embedder.client.embed_texts([text]))
    rows = other.client.embed_frames([(1, put_frames(other.data_dir, PHOTO_NAMES[:1])[0])])
    assert rows == [0]
    metrics = other.metrics()
    assert metrics.value("mediasearch_embedder_committed_rows") == 1
    assert metrics.value("mediasearch_embedder_stream_errors_total") == 1


def test_missing_weights_gives_503_with_one_clear_line(embedders):
    service = embedders["missing-weights"]
    reply = service.wait_answering()
    assert reply.status_code == 503
    anonymous = httpx.get(f"{service.url}/health")  # a healthcheck's view: not ready, and no reason
    assert anonymous.status_code == 503 and anonymous.json() == {"ready": False}
    detail = reply.json()["detail"]
    assert "\n" not in detail and str(REAL_MODEL_DIR) in detail
    for hint in ("MEDIASEARCH_CLIP_MODEL", "MEDIASEARCH_CLIP_RANDOM_WEIGHTS=1", "model.safetensors"):
        assert hint in detail
    assert service.http.post("/embed/text", json={"texts": ["x"]}).status_code == 503
    service.stop()
    log = service.log_path.read_text()
    assert detail in log and "Traceback" not in log


def test_a_text_alone_does_not_wait_for_company_but_images_collect(tiny_clip_dir):
    """A search's text goes through at once even with a long collection window; images queued together
    still share a pass."""
    from services.embedder.batching import DynamicBatcher

    passes: list[tuple[str, int]] = []
    batcher = DynamicBatcher(lambda: ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1), max_batch=4,
                             max_wait_s=600, observe=lambda kind, n, _s: passes.append((kind, n)))
    model = batcher.model
    try:
        vector = batcher.submit("text", "a dog on a beach").result(timeout=60)  # not the 600 s window
        assert vector.shape == (model.dim,) and passes == [("text", 1)]
        pixels = np.zeros((3, model.preprocess.crop, model.preprocess.crop), dtype=np.float32)
        images = [batcher.submit("image", pixels) for _ in range(4)]  # a full batch does not wait either
        assert all(future.result(timeout=60).shape == (model.dim,) for future in images)
        assert passes[1:] == [("image", 4)]
    finally:
        batcher.close()


def test_a_text_queued_during_a_batch_of_images_waits_for_one_chunk_not_the_batch(tiny_clip_dir):
    """A search during an ingest: images go through in chunks, and a text that arrives while the first
    chunk runs is answered before the next one."""
    from services.embedder.batching import IMAGE_CHUNK, DynamicBatcher

    passes: list[tuple[str, int]] = []
    late_text: list = []

    def observe(kind: str, items: int, _seconds: float) -> None:
        passes.append((kind, items))
        if kind == "image" and not late_text:  # the first chunk is done: a search comes in now
            late_text.append(batcher.submit("text", "a dog on a beach"))

    batcher = DynamicBatcher(lambda: ClipEmbedder(str(tiny_clip_dir), random_weights=True, threads=1),
                             max_batch=4 * IMAGE_CHUNK, max_wait_s=600, observe=observe)
    try:
        model = batcher.model
        pixels = np.zeros((3, model.preprocess.crop, model.preprocess.crop), dtype=np.float32)
        images = [batcher.submit("image", pixels) for _ in range(4 * IMAGE_CHUNK)]
        assert all(future.result(timeout=60).shape == (model.dim,) for future in images)  # none lost
        assert late_text[0].result(timeout=60).shape == (model.dim,)
        assert passes == [("image", IMAGE_CHUNK), ("text", 1), *[("image", IMAGE_CHUNK)] * 3]
    finally:
        batcher.close()
