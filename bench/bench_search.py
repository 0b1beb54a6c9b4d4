"""Search latency through the gateway at 100k indexed frames, for 1, 8 and 32 concurrent clients.

    .venv/bin/python bench/bench_search.py [--frames 100000] [--seconds 20] [--model ../shared/models/clip-vit-base-patch32]

Starts the real stack (Redis, embedder with the real ViT-B/32 architecture and random weights, index,
worker, gateway) on loopback in a temporary data dir. The 100k frames are seeded straight into the
vectors store and the catalog while the embedder is stopped (embedding 100k images would take hours on
a laptop CPU and is measured by bench_embedder instead); they are CLIP-shaped clustered vectors, and
every catalog row points at one real frame file. Each query is a distinct text, so the embedder's text
cache never answers. The split of latency comes from the gateway's Server-Timing header: `embed` (text
encoding, HTTP to the embedder included), `index` (fan-out to the shards and merge) and the rest
(catalog join, serialisation, HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared import catalog
from shared.internal_auth import INTERNAL_SECRET_HEADER, internal_secret
from shared.vectors import VectorStore
from tests.conftest import TEST_API_KEY, stack_env  # the stack's static key: the clients are signed in
from tests.samples import PHOTOS
from tools.stack import Stack

RESULTS = REPO / "bench" / "results"
WORDS = ["dog", "cat", "beach", "mountain", "car", "city", "night", "snow", "forest", "river", "bird", "boat",
         "child", "cake", "bicycle", "train", "flower", "street", "kitchen", "concert"]


SIGNED_IN = {"X-API-Key": TEST_API_KEY}


def clip_like_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Clustered unit vectors: CLIP embeddings of a photo library bunch around a few hundred themes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 200), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def seed_library(data_dir: Path, model_id: str, dim: int, frames: int, frame_file: str) -> None:
    """``frames`` catalog frames (100 per media item) with committed vectors."""
    conn = catalog.connect(data_dir / "catalog.sqlite3")
    store = VectorStore(data_dir / "vectors", dim=dim, model_id=model_id, writable=True)
    vectors = clip_like_vectors(frames, dim)
    per_media = 100
    for start in range(0, frames, 10_000):
        with catalog.transaction(conn):
            frame_ids = []
            for media_start in range(start, min(start + 10_000, frames), per_media):
                media_id = catalog.insert_media(
                    conn, sha256=f"bench{media_start:012d}", kind="video", mime="video/mp4", path=frame_file,
                    name=f"bench/video-{media_start // per_media}.mp4", folder="bench", size=1, status="indexed")
                for offset in range(min(per_media, frames - media_start)):
                    frame_ids.append(catalog.insert_frame(conn, media_id, frame_file, frame_file, 512, 384,
                                                          timestamp=float(offset)))
        rows = store.append(vectors[start:start + len(frame_ids)], frame_ids)
        with catalog.transaction(conn):
            catalog.set_frame_rows(conn, dict(zip(frame_ids, rows)))
    store.close()
    conn.close()


async def run_clients(url: str, clients: int, seconds: float, k: int) -> tuple[list[float], list[dict], int]:
    """``clients`` concurrent searchers for ``seconds``. The load generator shares the 2 cores with the stack, so
    it is aiohttp (about a third of httpx's CPU per request): what it spends is taken from the product."""
    latencies: list[float] = []
    spans: list[dict] = []
    errors = 0
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            n = next(counter)
            query = f"a photo of a {WORDS[n % len(WORDS)]} number {n}"
            start = time.perf_counter()
            async with http.get(f"{url}/search", params={"q": query, "k": str(k)}) as reply:
                body = await reply.read()
            latencies.append(time.perf_counter() - start)
            if reply.status != 200 or len(json.loads(body)["results"]) != k:
                errors += 1
                continue
            timing = {}
            for entry in reply.headers.get("server-timing", "").split(","):
                name, _, duration = entry.strip().partition(";dur=")
                if duration:
                    timing[name] = float(duration) / 1000
            spans.append(timing)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=SIGNED_IN,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies, spans, errors


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--model", default=str(REPO.parent / "shared" / "models" / "clip-vit-base-patch32"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = Path(tmp) / "data"
        # All clients come from one address here, standing in for many users: no per-client rate limit.
        env = stack_env(data_dir, Path(args.model), MEDIASEARCH_TORCH_THREADS="0",
                        MEDIASEARCH_RATE_LIMIT_SEARCH_PER_MIN="0")
        stack = Stack(env=env, log_dir=Path(tmp) / "logs")
        try:
            stack.start(timeout=600)
            url = f"http://127.0.0.1:{stack.settings.gateway_port}"
            internal = {INTERNAL_SECRET_HEADER: internal_secret(stack.settings)}
            health = httpx.get(f"{stack.settings.embedder_url}/health", headers=internal, timeout=30).json()
            # The embedder is the single writer of the vectors store: stop it while the library is seeded.
            stack.kill("embedder")
            photo = sorted(PHOTOS.glob("*.JPEG"))[0]
            frame_file = "media/bench/frame.jpg"
            (data_dir / "media" / "bench").mkdir(parents=True, exist_ok=True)
            (data_dir / frame_file).write_bytes(photo.read_bytes())
            began = time.perf_counter()
            seed_library(data_dir, health["model_id"], health["dim"], args.frames, frame_file)
            print(f"seeded {args.frames} frames in {time.perf_counter() - began:.1f}s", flush=True)
            stack.start_service(stack.service("embedder"))
            stack.wait_healthy(stack.service("embedder"), timeout=600)
            began = time.perf_counter()
            while httpx.get(f"{stack.settings.index_urls[0]}/health", headers=internal,
                            timeout=30).json()["nodes"] < args.frames:
                time.sleep(1)  # a benchmark waiting for the index build, not a test
            print(f"index caught up in {time.perf_counter() - began:.1f}s", flush=True)

            rows = []
            for clients in (int(c) for c in args.clients.split(",")):
                asyncio.run(run_clients(url, clients, 2.0, args.k))  # warm-up
                latencies, spans, errors = asyncio.run(run_clients(url, clients, args.seconds, args.k))
                total = sum(s.get("total", 0) for s in spans) or 1.0
                embed = sum(s.get("embed", 0) for s in spans) / total
                index = sum(s.get("index", 0) for s in spans) / total
                rows.append((clients, len(latencies), len(latencies) / args.seconds, percentile(latencies, 50),
                             percentile(latencies, 95), percentile(latencies, 99), embed, index, 1 - embed - index,
                             errors))
                print(rows[-1], flush=True)
        finally:
            stack.stop()

    table = [
        "# Search latency through the gateway",
        "",
        f"{args.frames} indexed frames (CLIP-shaped clustered 512-d vectors), text queries with k={args.k}, each "
        f"a distinct text (no cache hits); embedder = ViT-B/32 architecture with random weights on CPU; "
        f"{args.seconds:.0f} s per row. Shares are of the gateway's own time (Server-Timing).",
        "",
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}. Command: `make bench-search`.",
        "",
        "| clients | queries | queries/s | p50 ms | p95 ms | p99 ms | text encoding | index search | rest | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for clients, count, qps, p50, p95, p99, embed, index, rest, errors in rows:
        table.append(f"| {clients} | {count} | {qps:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {embed:.0%} | "
                     f"{index:.0%} | {rest:.0%} | {errors} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
