"""Our HNSW (services.index.hnsw) against hnswlib, same vectors, same M and ef_construction, one run.

Datasets:
  clip-like      100k x 512 L2-normalised clustered vectors shaped like CLIP image embeddings
  sift           200k x 128 real SIFT descriptors (OpenCV) of the ImageNet sample photos, normalised
  fashion-mnist  69k x 784 Fashion-MNIST images (Debian package dataset-fashion-mnist), normalised
Each has 1000 held-out queries; ground truth is exact cosine top-10.

Measured, with one thread for both libraries: build time; queries/s at recall@10 of 0.90, 0.95 and
0.99 (ef swept; the smallest swept ef reaching the target is taken, no interpolation); graph bytes
per vector (ours: the graph structure; hnswlib: its saved index file minus the raw float32 vectors).
Times are the calling thread's CPU time (time.thread_time): both libraries run single-threaded
queries and builds on the calling thread, and CPU time is far less disturbed than wall time when
other processes share the machine. Wall times are recorded in the JSON too. Query timings alternate
between the two libraries and keep the best of several repetitions.

Writes bench/results/index.md, index.json and index_recall_qps.png. Computed SIFT descriptors and
ground truths are cached in bench/.cache/. `--quick` runs smaller datasets in a few minutes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.index.hnsw import HNSWIndex

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "imagenet-sample"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
M = 16
EF_CONSTRUCTION = 200
K = 10
TARGETS = (0.90, 0.95, 0.99)
EF_SWEEP = (10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 400, 512)
STOP_RECALL = 0.995  # sweeping further only measures ever slower searches


@dataclass
class Dataset:
    name: str
    description: str
    base: np.ndarray
    queries: np.ndarray


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors[norms[:, 0] > 0] / norms[norms[:, 0] > 0])


def clip_like(n: int, n_queries: int, dim: int = 512, seed: int = 0) -> Dataset:
    """CLIP image embeddings share a large common component and vary mostly within a much smaller
    subspace, where they gather into topics: a Gaussian mixture in 128 latent dimensions, projected
    to ``dim``, plus the common direction and isotropic noise, then normalised. Random pairs have a
    cosine of about 0.4 and nearest neighbours about 0.75, as with CLIP ViT-B/32 photo embeddings."""
    rng = np.random.default_rng(seed)
    total, latent = n + n_queries, 128
    topics = rng.standard_normal((max(10, total // 100), latent), dtype=np.float32)
    points = (topics[rng.integers(0, len(topics), total)]
              + rng.standard_normal((total, latent), dtype=np.float32))
    projection = rng.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)
    common = rng.standard_normal(dim, dtype=np.float32) * 1.2
    vectors = normalised(common + points @ projection + rng.standard_normal((total, dim), dtype=np.float32) * 0.5)
    return Dataset("clip-like", f"{n} x {dim} clustered, CLIP-shaped (synthetic)", vectors[:n], vectors[n:])


def sift(n: int, n_queries: int) -> Dataset:
    """Descriptors of the first 980 photos form the base (sampled), those of the last 20 the queries."""
    cache = CACHE / "sift_descriptors.npz"  # OpenCV's SIFT values are whole numbers 0..255: kept as uint8
    if not cache.exists():
        import cv2

        photos = sorted(PHOTOS.glob("*.JPEG"))
        if not photos:
            raise SystemExit(f"no photos in {PHOTOS}")
        extractor = cv2.SIFT_create()
        pools: list[list[np.ndarray]] = [[], []]
        for number, photo in enumerate(photos):
            image = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
            if image is None:
                continue
            _, descriptors = extractor.detectAndCompute(image, None)
            if descriptors is not None:
                pools[number >= len(photos) - 20].append(np.clip(descriptors, 0, 255).astype(np.uint8))
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cache, base=np.concatenate(pools[0]), queries=np.concatenate(pools[1]))
    stored = np.load(cache)
    base_pool, query_pool = normalised(stored["base"]), normalised(stored["queries"])
    rng = np.random.default_rng(0)
    if len(base_pool) < n:
        raise SystemExit(f"only {len(base_pool)} SIFT descriptors available, {n} requested")
    base = base_pool[np.sort(rng.choice(len(base_pool), n, replace=False))]
    queries = query_pool[rng.choice(len(query_pool), n_queries, replace=False)]
    return Dataset("sift", f"{n} x 128 SIFT descriptors of real photos (OpenCV)", base, queries)


def _idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    count, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows * cols)


def fashion_mnist(n: int, n_queries: int) -> Dataset:
    paths = [FASHION_MNIST / "train-images-idx3-ubyte.gz", FASHION_MNIST / "t10k-images-idx3-ubyte.gz"]
    if not all(p.exists() for p in paths):
        raise SystemExit(f"Fashion-MNIST not found in {FASHION_MNIST}: apt-get install dataset-fashion-mnist")
    images = normalised(np.concatenate([_idx_images(p) for p in paths]).astype(np.float32))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    queries = images[order[:n_queries]]
    base = images[np.sort(order[n_queries:n_queries + n])]
    return Dataset("fashion-mnist", f"{len(base)} x 784 Fashion-MNIST images", base, queries)


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start:start + 256] @ base.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        result[start:start + 256] = np.take_along_axis(top, order, axis=1)
    return result


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth))
    return hits / truth.size


def timed(function, *args):
    """The result, the calling thread's CPU seconds and the wall seconds of ``function(*args)``."""
    cpu, wall = time.thread_time(), time.perf_counter()
    result = function(*args)
    return result, time.thread_time() - cpu, time.perf_counter() - wall


class Ours:
    name = "ours"

    def build(self, base: np.ndarray) -> None:
        self.index = HNSWIndex(base.shape[1], m=M, ef_construction=EF_CONSTRUCTION)
        self.index.add(base)

    def graph_bytes(self, base: np.ndarray) -> int:
        return self.index.graph_nbytes

    def search(self, queries: np.ndarray, ef: int) -> np.ndarray:
        return self.index.search(queries, K, ef=ef)[0]


class Hnswlib:
    name = "hnswlib"

    def build(self, base: np.ndarray) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=base.shape[1])
        self.index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=0)
        self.index.set_num_threads(1)
        self.index.add_items(base, num_threads=1)

    def graph_bytes(self, base: np.ndarray) -> int:
        with tempfile.TemporaryDirectory(dir=CACHE) as folder:
            path = os.path.join(folder, "hnswlib.bin")
            self.index.save_index(path)
            return os.path.getsize(path) - base.nbytes

    def search(self, queries: np.ndarray, ef: int) -> np.ndarray:
        self.index.set_ef(ef)
        return self.index.knn_query(queries, k=K, num_threads=1)[0]


def warm_up_ours() -> None:
    """Load or compile the numba kernels outside any timing."""
    rng = np.random.default_rng(1)
    for dim in (128, 512):
        index = HNSWIndex(dim)
        index.add(normalised(rng.standard_normal((300, dim))))
        index.search(normalised(rng.standard_normal((2, dim))), K)


def bench_dataset(dataset: Dataset, repetitions: int) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    truth = exact_top_k(dataset.base, dataset.queries, K)
    engines = [Ours(), Hnswlib()]
    result = {"name": dataset.name, "description": dataset.description, "n": len(dataset.base),
              "dim": dataset.base.shape[1], "queries": len(dataset.queries), "engines": {}}
    for engine in engines:
        _, cpu, wall = timed(engine.build, dataset.base)
        result["engines"][engine.name] = {
            "build_cpu_s": cpu, "build_wall_s": wall,
            "graph_bytes_per_vector": engine.graph_bytes(dataset.base) / len(dataset.base), "sweep": []}
        print(f"  {engine.name:8s} build {cpu:7.1f} s CPU ({wall:.1f} s wall)", flush=True)
    active = {engine.name for engine in engines}
    for ef in EF_SWEEP:
        best = {name: (0.0, 0.0) for name in active}
        recall = {}
        for _ in range(repetitions):
            for engine in engines:  # alternate, so both see the same machine load
                if engine.name not in active:
                    continue
                found, cpu, wall = timed(engine.search, dataset.queries, ef)
                recall[engine.name] = recall_at_k(found, truth)
                qps = len(dataset.queries) / cpu, len(dataset.queries) / wall
                best[engine.name] = max(best[engine.name], qps)
        for name in sorted(active):
            point = {"ef": ef, "recall": recall[name], "qps": best[name][0], "qps_wall": best[name][1]}
            result["engines"][name]["sweep"].append(point)
            print(f"  {name:8s} ef {ef:4d} recall {recall[name]:.4f} {best[name][0]:9.0f} q/s", flush=True)
        active = {name for name in active if recall[name] < STOP_RECALL}
        if not active:
            break
    for stats in result["engines"].values():
        stats["at_target"] = {}
        for target in TARGETS:
            reached = [p for p in stats["sweep"] if p["recall"] >= target]
            stats["at_target"][str(target)] = min(reached, key=lambda p: p["ef"]) if reached else None
    return result


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def qps_cell(point: dict | None) -> str:
    return f"{point['qps']:.0f} (ef {point['ef']})" if point else "not reached"


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours and theirs else "n/a"


def markdown(results: list[dict], quick: bool) -> str:
    lines = [
        "# HNSW index benchmark: ours vs hnswlib",
        "",
        (f"M={M}, ef_construction={EF_CONSTRUCTION}, k={K}, one thread for builds and queries in both "
         "libraries. Times are the calling thread's CPU time (the machine is shared); queries/s at a "
         "target recall use the smallest swept ef reaching it. Graph bytes/vector: ours = graph "
         "structure; hnswlib = saved index file minus the float32 vectors."
         + (" **Quick run (small datasets).**" if quick else "")),
        "",
        (f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
         f"{time.strftime('%Y-%m-%d %H:%M')}."),
        "",
    ]
    for result in results:
        ours, theirs = result["engines"]["ours"], result["engines"]["hnswlib"]
        lines += [f"## {result['name']}: {result['description']}, {result['queries']} queries", "",
                  "| metric | ours | hnswlib | ours / hnswlib | target |", "|---|---|---|---|---|"]
        for target in TARGETS:
            a, b = ours["at_target"][str(target)], theirs["at_target"][str(target)]
            goal = ">= 1.0x" if target == 0.95 else ""
            lines.append(f"| queries/s at recall@10 >= {target:.2f} | {qps_cell(a)} | {qps_cell(b)} | "
                         f"{ratio(a and a['qps'], b and b['qps'])} | {goal} |")
        lines.append(f"| build time (s, 1 thread) | {ours['build_cpu_s']:.1f} | {theirs['build_cpu_s']:.1f} | "
                     f"{ratio(ours['build_cpu_s'], theirs['build_cpu_s'])} | <= 1.5x |")
        lines.append(f"| graph bytes / vector | {ours['graph_bytes_per_vector']:.1f} | "
                     f"{theirs['graph_bytes_per_vector']:.1f} | "
                     f"{ratio(ours['graph_bytes_per_vector'], theirs['graph_bytes_per_vector'])} | <= 1.2x |")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for axis, result in zip(axes[0], results):
        for name, stats in result["engines"].items():
            sweep = stats["sweep"]
            axis.plot([p["recall"] for p in sweep], [p["qps"] for p in sweep], marker="o", label=name)
        axis.set_yscale("log")
        axis.set_xlabel("recall@10")
        axis.set_ylabel("queries/s (1 thread, CPU time)")
        axis.set_title(f"{result['name']} ({result['n']} x {result['dim']})")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small datasets, a few minutes")
    parser.add_argument("--datasets", default="clip-like,sift,fashion-mnist",
                        help="comma-separated subset of clip-like, sift, fashion-mnist")
    parser.add_argument("--repetitions", type=int, default=None, help="timed runs per ef (best kept)")
    args = parser.parse_args()
    sizes = ({"clip-like": 20_000, "sift": 50_000, "fashion-mnist": 20_000} if args.quick
             else {"clip-like": 100_000, "sift": 200_000, "fashion-mnist": 69_000})
    n_queries = 500 if args.quick else 1000
    repetitions = args.repetitions or (2 if args.quick else 3)
    loaders = {"clip-like": clip_like, "sift": sift, "fashion-mnist": fashion_mnist}
    warm_up_ours()
    results = []
    for name in args.datasets.split(","):
        dataset = loaders[name](sizes[name], n_queries)
        print(f"{dataset.name}: {dataset.description}", flush=True)
        results.append(bench_dataset(dataset, repetitions))
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (RESULTS / f"index{suffix}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"index{suffix}.md").write_text(markdown(results, args.quick))
    plot(results, RESULTS / f"index{suffix}_recall_qps.png")
    print(markdown(results, args.quick))


if __name__ == "__main__":
    main()
