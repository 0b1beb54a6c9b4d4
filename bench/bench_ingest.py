"""Ingest throughput end to end against the raw model, in one run.

    .venv/bin/python bench/bench_ingest.py [--photos 1000] [--model ../shared/models/clip-vit-base-patch32]

Starts the real stack (Redis, embedder with the real ViT-B/32 architecture and random weights, index,
ingest worker, gateway) on loopback in a temporary data dir, then:
1. raw model images/s: forward passes alone over preprocessed photos, fp32, batch 16 and 32, in this
   process on one dedicated thread with the embedder's thread count (the stack idle meanwhile);
2. ingest: the photos of ../shared/data/photos/imagenet-sample uploaded through the gateway in one
   request (one job), timed from the first byte sent until the job says done: images/s end to end
   (upload, sniff, hash, decode, frames and thumbnails, EXIF, catalog, embedding, index catch-up);
3. the raw model again at its best batch (the machine may be shared: the higher raw figure is used).
Prints and writes bench/results/ingest.md: images/s, the ratio to the raw best, the mean batch size the
embedder saw during the ingest (its /metrics histogram), and CPU seconds by service.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.embedder.model import ClipEmbedder
from shared.internal_auth import INTERNAL_SECRET_HEADER, internal_secret
from shared.metrics import Samples
from tests.conftest import TEST_API_KEY, stack_env  # the stack's static key: the upload is signed in
from tests.samples import PHOTOS
from tools.stack import Stack

RESULTS = REPO / "bench" / "results"
RAW_BATCHES = (16, 32)
BATCH_HISTOGRAM = "mediasearch_embedder_batch_size"
INFERENCE_HISTOGRAM = "mediasearch_embedder_inference_seconds"


@dataclass(frozen=True)
class Rate:
    per_second: float  # images per second of wall time
    per_cpu_second: float  # images per CPU-second, every thread and process counted


def raw_rate(model: ClipEmbedder, pixels: np.ndarray, batch: int, min_seconds: float) -> Rate:
    """Forward passes over slices of ``pixels`` for at least ``min_seconds`` (after one warm-up pass); the CPU
    is this process's (idle but for the passes)."""
    slices = [pixels[start:start + batch] for start in range(0, len(pixels) - batch + 1, batch)]
    model.embed_pixels(slices[0])
    done, passes = 0, 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while passes < 2 or time.perf_counter() - started < min_seconds:
        done += len(model.embed_pixels(slices[passes % len(slices)]))
        passes += 1
    return Rate(done / (time.perf_counter() - started), done / (time.process_time() - cpu_started))


def cpu_seconds_by_session(sessions: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system, with reaped children) of each service's process, and of the other
    processes of its session (``"<name> children"``: the worker's fork server and its decoders). Each
    service runs in a session of its own (tools/stack.py)."""
    ticks = os.sysconf("SC_CLK_TCK")
    by_sid = {sid: name for name, sid in sessions.items()}
    totals: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        sid = int(fields[3])  # the session id: the pid of the service's own process
        if sid in by_sid:
            name = by_sid[sid] if int(stat.parent.name) == sid else f"{by_sid[sid]} children"
            totals[name] = totals.get(name, 0.0) + sum(int(value) for value in fields[11:15]) / ticks
    return totals


def upload_and_wait(client: httpx.Client, photos: list[Path], timeout: float) -> tuple[float, dict]:
    """Upload ``photos`` in one request and wait until its job is finished: (seconds, the job)."""
    parts = [("files", (f"imagenet-sample/{photo.name}", photo.read_bytes(), "image/jpeg")) for photo in photos]
    started = time.perf_counter()
    reply = client.post("/uploads", files=parts, data={"folder": "imagenet-sample"})
    reply.raise_for_status()
    job_id = reply.json()["job_id"]
    deadline = started + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return time.perf_counter() - started, job
        if time.perf_counter() > deadline:
            raise RuntimeError(f"job {job_id} not finished after {timeout:.0f}s: {job}")
        time.sleep(0.5)  # a benchmark polling its job (each poll costs the gateway CPU the ingest shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=1000, help="photos of imagenet-sample to upload")
    parser.add_argument("--model", default=str(REPO.parent / "shared" / "models" / "clip-vit-base-patch32"))
    parser.add_argument("--raw-seconds", type=float, default=8.0, help="per raw measurement")
    parser.add_argument("--timeout", type=float, default=1800.0, help="for the ingest job")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a MEDIASEARCH_* setting for the stack (e.g. MEDIASEARCH_WORKER_CONCURRENCY=2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest.md")
    args = parser.parse_args()
    photos = sorted(PHOTOS.glob("*.JPEG"))[:args.photos]
    overrides = dict(setting.split("=", 1) for setting in args.env)

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        env = stack_env(Path(tmp) / "data", Path(args.model), MEDIASEARCH_TORCH_THREADS="0",
                        MEDIASEARCH_RATE_LIMIT_UPLOAD_PER_MIN="0", MEDIASEARCH_OCR="0",  # OCR: make bench-ocr
                        **overrides)
        logs = REPO / "test-output" / "bench-ingest-logs"  # kept after the run (the data dir is not)
        shutil.rmtree(logs, ignore_errors=True)
        stack = Stack(env=env, log_dir=logs)
        try:
            stack.start(timeout=600)
            s = stack.settings
            internal = {INTERNAL_SECRET_HEADER: internal_secret(s)}

            def embedder_metrics() -> Samples:
                return Samples(httpx.get(f"{s.embedder_url}/metrics", headers=internal, timeout=30).text)

            # The raw model as the embedder runs it: same config, same thread count, one dedicated thread.
            model = ClipEmbedder(args.model, random_weights=True, threads=s.torch_threads)
            pixels = np.stack([model.preprocess(photo.read_bytes()) for photo in photos[:2 * max(RAW_BATCHES)]])
            inference = ThreadPoolExecutor(max_workers=1)

            def raw(batch: int) -> Rate:
                measured = inference.submit(raw_rate, model, pixels, batch, args.raw_seconds).result()
                print(f"raw fp32 batch {batch}: {measured.per_second:.2f} images/s, "
                      f"{measured.per_cpu_second:.2f} images/CPU-s", flush=True)
                return measured

            raw_before = {batch: raw(batch) for batch in RAW_BATCHES}

            sessions = {service.name: service.process.pid for service in stack.services}
            before, cpu_before = embedder_metrics(), cpu_seconds_by_session(sessions)
            with httpx.Client(base_url=f"http://127.0.0.1:{s.gateway_port}", timeout=600,
                              headers={"X-API-Key": TEST_API_KEY}) as client:
                seconds, job = upload_and_wait(client, photos, args.timeout)
            after, cpu_after = embedder_metrics(), cpu_seconds_by_session(sessions)
            nodes = httpx.get(f"{s.index_urls[0]}/health", headers=internal, timeout=30).json()["nodes"]

            best_batch = max(raw_before, key=lambda batch: raw_before[batch].per_second)
            raw_after = raw(best_batch)
        finally:
            stack.stop()

    indexed = job["indexed"]
    rate = indexed / seconds
    raw_runs = [*raw_before.values(), raw_after]
    raw_best = max(run.per_second for run in raw_runs)
    raw_best_cpu = max(run.per_cpu_second for run in raw_runs)
    label = {"kind": "image"}
    passes = after.value(f"{BATCH_HISTOGRAM}_count", **label) - before.value(f"{BATCH_HISTOGRAM}_count", **label)
    items = after.value(f"{BATCH_HISTOGRAM}_sum", **label) - before.value(f"{BATCH_HISTOGRAM}_sum", **label)
    forward_s = (after.value(f"{INFERENCE_HISTOGRAM}_sum", **label)
                 - before.value(f"{INFERENCE_HISTOGRAM}_sum", **label))
    cpu = {name: value - cpu_before.get(name, 0.0) for name, value in cpu_after.items()}
    stack_cpu = sum(cpu.values())
    concurrency = overrides.get("MEDIASEARCH_WORKER_CONCURRENCY", str(s.worker_concurrency))
    int8 = overrides.get("MEDIASEARCH_CLIP_INT8", str(s.clip_int8)).lower() in ("1", "true", "yes", "on")
    embedder_precision = "int8 (the default on CPU)" if int8 else "fp32 images"

    table = [
        "# Ingest throughput end to end",
        "",
        f"{len(photos)} photos of imagenet-sample (about 500x375 JPEG) uploaded through the gateway in one "
        "request, timed from the first byte sent until the job said done. Raw model: ViT-B/32 architecture "
        f"with random weights, fp32, CPU, forward passes alone on preprocessed photos, {model.device_name}, in "
        "the same run (before the ingest at batch 16 and 32, after it at the best batch; the higher is used).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}. "
        f"Worker concurrency {concurrency}, embedder max batch {s.embed_max_batch}, the stack's embedder "
        f"{embedder_precision}. "
        f"Command: `make bench-ingest`{' ' + ' '.join('--env ' + e for e in args.env) if args.env else ''}.",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| raw model, batch {batch} (before) | {run.per_second:.2f} images/s, {run.per_cpu_second:.2f} images/CPU-s |"
          for batch, run in raw_before.items()),
        f"| raw model, batch {best_batch} (after) | {raw_after.per_second:.2f} images/s, "
        f"{raw_after.per_cpu_second:.2f} images/CPU-s |",
        f"| ingest end to end ({indexed} indexed, {job['failed']} failed, in {seconds:.1f} s) "
        f"| {rate:.2f} images/s |",
        f"| **ingest / raw best** | **{rate / raw_best:.2f}x** |",
        f"| ingest per CPU-second of the whole stack ({stack_cpu:.1f} CPU-s) | {indexed / stack_cpu:.2f} images/CPU-s |",
        f"| ingest / raw best, per CPU-second (what a machine of its own would give) "
        f"| {indexed / stack_cpu / raw_best_cpu:.2f}x |",
        f"| forward passes during the ingest (image) | {passes:.0f} |",
        f"| **mean batch size the embedder saw** | **{items / passes if passes else 0:.1f}** |",
        f"| forward passes' share of the ingest's wall time | {forward_s / seconds:.0%} |",
        f"| index nodes after the job | {nodes} |",
        "",
        "CPU seconds by process during the ingest (\"children\": the other processes of its session, "
        "such as the worker's decoders): "
        + ", ".join(f"{name} {value:.1f}" for name, value in cpu.items() if value >= 0.05) + ".",
    ]
    if job["errors"]:
        table += ["", "Failed files: " + "; ".join(f"{error['file']}: {error['reason']}" for error in job["errors"])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
