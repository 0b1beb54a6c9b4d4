"""Search latency through the gateway under concurrent clients, with and without an ingest job running.

    python bench/load_test.py                  # real ViT-B/32 architecture, random weights (real cost)
    python bench/load_test.py --model tiny     # the tests' tiny CLIP: measures the plumbing, not the model

Starts its own stack (tools.stack.Stack: Redis, embedder, index, one ingest worker, gateway) on
loopback ports in a temporary data dir, and only ever talks to 127.0.0.1. Steps:
1. ingest ``--seed`` real photos, so searches have something to rank;
2. unloaded: one client, then ``--clients`` concurrent clients, searching for ``--duration`` seconds each;
3. loaded: the same clients while an upload of ``--ingest`` more photos is being ingested.
Every query is a different phrase, so the embedder's text cache never answers: each search pays for
the text encoder, the index and the catalog. A closed loop: each client sends its next search when the
last one answered. Errors are any answer but 200, or no answer within the timeout.
Writes bench/results/load.md and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import TEST_API_KEY, stack_env  # the stack's static key: the clients are signed in
from tests.samples import PHOTOS
from tests.tiny_clip import REAL_MODEL_DIR, make_tiny_clip_dir
from tools.stack import Stack

RESULTS = REPO_ROOT / "bench" / "results" / "load.md"
PLACES = ("in the snow", "at the beach", "in a city street", "on a table", "at night", "in the forest",
          "in the rain", "indoors", "from above", "close up")
REQUEST_TIMEOUT_S = 120.0


SIGNED_IN = {"X-API-Key": TEST_API_KEY}


def queries() -> Iterator[str]:
    """Ten thousand distinct phrases ("a tench at night", ...) built from the photos' class names."""
    things = sorted({p.stem.split("_", 1)[1].replace("_", " ") for p in PHOTOS.glob("*.JPEG")})
    return itertools.cycle([f"a {thing} {place}" for place in PLACES for thing in things])


@dataclass
class Phase:
    name: str
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    note: str = ""

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def row(self) -> str:
        requests = len(self.latencies_ms) + sum(self.errors.values())
        errors = sum(self.errors.values())
        return (f"| {self.name} | {self.clients} | {requests} | {errors} | {requests / self.elapsed:.1f} | "
                f"{self.percentile(50):.0f} | {self.percentile(95):.0f} | {self.percentile(99):.0f} | "
                f"{max(self.latencies_ms, default=float('nan')):.0f} |")


async def search_clients(base_url: str, phase: Phase, phrases: Iterator[str]) -> Phase:
    deadline = time.monotonic() + phase.seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                reply = await http.get("/search", params={"q": next(phrases), "k": 20})
                outcome = "ok" if reply.status_code == 200 else f"HTTP {reply.status_code}"
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            if outcome == "ok":
                phase.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                phase.errors[outcome] = phase.errors.get(outcome, 0) + 1

    started = time.monotonic()
    limits = httpx.Limits(max_connections=phase.clients, max_keepalive_connections=phase.clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits, headers=SIGNED_IN) as http:
        await asyncio.gather(*(client(http) for _ in range(phase.clients)))
    phase.elapsed = time.monotonic() - started
    return phase


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def upload(http: httpx.Client, photos: list[Path], folder: str) -> str:
    reply = http.post("/uploads", files=[("files", (f"{folder}/{p.name}", p.read_bytes(), "image/jpeg"))
                                         for p in photos])
    reply.raise_for_status()
    return reply.json()["job_id"]


def job(http: httpx.Client, job_id: str) -> dict:
    return http.get(f"/jobs/{job_id}").json()


def run(args: argparse.Namespace, work: Path) -> str:
    model_dir = make_tiny_clip_dir(work / "tiny-clip") if args.model == "tiny" else Path(args.model)
    env = stack_env(work / "data", model_dir,
                    # On, so its cost is in the figures, but far above what this test sends from one address.
                    MEDIASEARCH_RATE_LIMIT_SEARCH_PER_MIN=str(10**9), MEDIASEARCH_RATE_LIMIT_UPLOAD_PER_MIN=str(10**9))
    env.pop("MEDIASEARCH_TORCH_THREADS")  # the embedder uses every core, as in production
    stack = Stack(env=env, log_dir=work / "logs")
    settings = stack.settings
    for url in (settings.embedder_url, *settings.index_urls, settings.effective_redis_url,
                f"http://{settings.gateway_host}:{settings.gateway_port}"):
        if urlsplit(url).hostname != "127.0.0.1":
            raise SystemExit(f"refusing to load-test a non-loopback target: {url}")
    base_url = f"http://127.0.0.1:{settings.gateway_port}"
    photos = sorted(PHOTOS.glob("*.JPEG"))
    seed, more = photos[:args.seed], photos[args.seed:args.seed + args.ingest]
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    stack.start(timeout=600)
    try:
        http = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S, headers=SIGNED_IN)
        seeded = upload(http, seed, "seed")
        wait_until(lambda: job(http, seeded)["status"] == "done", 1800, "the seed photos to be indexed")
        health = http.get("/health").json()
        phrases = queries()
        phases = [asyncio.run(search_clients(base_url, Phase("unloaded", 1, args.duration), phrases)),
                  asyncio.run(search_clients(base_url, Phase("unloaded", args.clients, args.duration), phrases))]

        ingest = upload(http, more, "load")
        wait_until(lambda: job(http, ingest)["processed"] >= 1, 600, "the ingest job to start")
        processed_before = job(http, ingest)["processed"]
        loaded = asyncio.run(search_clients(base_url, Phase("while ingesting", args.clients, args.duration), phrases))
        status = job(http, ingest)
        files = status["processed"] - processed_before
        loaded.note = (f"{files} files ingested during the phase ({files / loaded.elapsed:.1f} files/s); the job "
                       f"was {'still running' if status['status'] == 'running' else status['status']} at its end")
        phases.append(loaded)
        http.post(f"/jobs/{ingest}/cancel")
        http.close()
    finally:
        stack.stop()
    return report(args, phases, health, load_before, time.monotonic() - began)


def report(args: argparse.Namespace, phases: list[Phase], health: dict, load_before: float, total: float) -> str:
    unloaded, loaded = phases[1], phases[2]
    model = "tiny random CLIP (tests)" if args.model == "tiny" else \
        f"CLIP ViT-B/32 architecture with random weights ({Path(args.model).name}; real cost)"
    errors = ", ".join(f"{kind}: {count}" for phase in phases for kind, count in phase.errors.items()) or "none"
    command = f"python bench/load_test.py --clients {args.clients} --duration {args.duration:g}" + (
        " --model tiny" if args.model == "tiny" else "")
    lines = [
        "# Search under load",
        "",
        (f"{model}; x86_64, {os.cpu_count()} CPUs, Python {platform.python_version()}. The stack runs on this "
         "machine: Redis, embedder, one index shard, one ingest worker (2 threads), gateway, all on loopback, "
         f"sharing the CPUs with the clients. {health['frames']} frames indexed before the measurements. "
         f"Load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} (on a shared machine "
         "absolute numbers are noisy; compare the rows)."),
        "",
        (f"`{command}`: closed loop, k=20, every query a different phrase (no text-cache hits), latency "
         "measured at the client."),
        "",
        "| phase | clients | requests | errors | requests/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
        *(phase.row() for phase in phases),
        "",
        (f"- p95 while ingesting / p95 unloaded ({args.clients} clients): "
         f"**{loaded.percentile(95) / unloaded.percentile(95):.2f}×** "
         f"({loaded.percentile(95):.0f} ms vs {unloaded.percentile(95):.0f} ms)."),
        f"- Ingest during the loaded phase: {loaded.note}.",
        f"- Errors: {sum(sum(phase.errors.values()) for phase in phases)} ({errors}).",
        f"- Total run time {total:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REAL_MODEL_DIR), help="a CLIP model directory, or 'tiny'")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--seed", type=int, default=100, help="photos indexed before measuring")
    parser.add_argument("--ingest", type=int, default=400, help="photos uploaded for the loaded phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mediasearch-load-") as work:
        text = run(args, Path(work))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
