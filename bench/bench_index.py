"""Our HNSW (services.index.hnsw) against hnswlib, same vectors, same M and ef_construction, one run.

The product searches the index one query per call (one HTTP request, one query), so the headline is
the single-query curve: queries/s when each query is its own call (ours: ``HNSWIndex.search(vector)``;
hnswlib: ``knn_query(vector)``), one thread each. The batched curve (all queries in one call) is
measured too.

Datasets (``--datasets``, comma-separated):
  clip-2k        2k x 128 clustered, CLIP-shaped (synthetic)
  clip-20k       20k x 128 clustered, CLIP-shaped (synthetic)
  clip-100k      100k x 512 clustered, CLIP-shaped (synthetic): the shape of the product's vectors
                 (``--clip-100k-n`` sets its rows)
  sift           200k x 128 real SIFT descriptors (OpenCV) of the ImageNet sample photos, normalised
  fashion-mnist  69k x 784 Fashion-MNIST images (Debian package dataset-fashion-mnist), normalised
Default: the three clip sets. Each has 1000 held-out queries; ground truth is exact cosine top-10.

Measured, one thread for both libraries: build time; for each swept ef, recall@10 and queries/s of
single-query calls and of one batched call; queries/s at recall@10 of 0.90, 0.95 and 0.99,
interpolated on the curve between the two swept ef that bracket the target (log queries/s linear in
recall; where the smallest ef, k, already passes the target, its rate), so that a recall a hair under
the target at one ef does not cost a whole step of ef (the sweep is fine at the low end anyway);
memory per vector. Times are the calling thread's CPU time
(time.thread_time): both libraries search on the calling thread, and CPU time is far less disturbed
than wall time when other processes share the machine (wall-clock rates are in the JSON too). Every
measurement alternates between the two libraries, in alternating order, and keeps the best of several
rounds, so both see the same machine load.

Memory per vector counts everything each library holds: the resident memory the build and a first
search added (Linux RSS, /proc/self/statm), measured around each library in turn. Ours holds the
float32 vectors (the product reads them from the shared vectors store; here the index holds its own
copy, the same bytes), the graph, the 8-bit codes and the searchers' scratch; hnswlib its vectors,
links, labels, per-node locks and label map. Also listed: ours counted array by array, and hnswlib's
saved index file (vectors, links, labels: a lower bound of what it holds).

Writes bench/results/index.md, index.json and index_recall_qps.png (``--quick``: index_quick.*).
Computed SIFT descriptors are cached in bench/.cache/.
"""

from __future__ import annotations

import argparse
import gc
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
EF_SWEEP = (10, 11, 12, 13, 14, 16, 18, 20, 24, 28, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 400, 512)
STOP_RECALL = 0.995  # sweeping further only measures ever slower searches
MODES = ("single", "batch")


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


def clip_like(n: int, n_queries: int, dim: int = 512, seed: int = 0, name: str = "clip-like") -> Dataset:
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
    return Dataset(name, f"{n} x {dim} clustered, CLIP-shaped (synthetic)", vectors[:n], vectors[n:])


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


def rss_bytes() -> int:
    """Resident bytes of this process, after handing the heap's free pages back to the system (so that
    memory freed before a build and reused by it is not mistaken for no memory at all)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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

    def memory_parts(self, base: np.ndarray) -> dict:
        index = self.index
        return {"float32 vectors": index.vectors_nbytes, "graph": index.graph_nbytes,
                "8-bit codes and scales": index.codes_nbytes,
                "one searcher's visited tags": 2 * len(base)}

    def set_ef(self, ef: int) -> None:
        self.ef = ef

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return self.index.search(queries, K, ef=self.ef)[0]

    def search_single(self, queries: list[np.ndarray]) -> list[np.ndarray]:
        search, ef = self.index.search, self.ef
        return [search(query, K, ef=ef)[0] for query in queries]


class Hnswlib:
    name = "hnswlib"

    def build(self, base: np.ndarray) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=base.shape[1])
        self.index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=0)
        self.index.set_num_threads(1)
        self.index.add_items(base, num_threads=1)

    def file_bytes(self) -> int:
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as folder:
            path = os.path.join(folder, "hnswlib.bin")
            self.index.save_index(path)
            return os.path.getsize(path)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def search_batch(self, queries: np.ndarray) -> np.ndarray:
        return self.index.knn_query(queries, k=K, num_threads=1)[0]

    def search_single(self, queries: list[np.ndarray]) -> list[np.ndarray]:
        knn_query = self.index.knn_query
        return [knn_query(query, k=K, num_threads=1)[0][0] for query in queries]


def warm_up_ours() -> None:
    """Load or compile the numba kernels outside any timing."""
    rng = np.random.default_rng(1)
    for dim in (128, 512, 784):
        index = HNSWIndex(dim)
        index.add(normalised(rng.standard_normal((300, dim))))
        index.search(normalised(rng.standard_normal((2, dim))), K)
        index.search(normalised(rng.standard_normal((1, dim)))[0], K)


def build_and_measure(engine, dataset: Dataset) -> dict:
    before = rss_bytes()
    _, cpu, wall = timed(engine.build, dataset.base)
    engine.set_ef(64)
    engine.search_single(list(dataset.queries[:200]))  # a first search allocates its scratch
    held = rss_bytes() - before
    n = len(dataset.base)
    stats = {"build_cpu_s": cpu, "build_wall_s": wall, "rss_bytes_per_vector": held / n,
             "sweep": [], "at_target": {}}
    if isinstance(engine, Ours):
        parts = engine.memory_parts(dataset.base)
        stats["parts_bytes_per_vector"] = {name: size / n for name, size in parts.items()}
        stats["counted_bytes_per_vector"] = sum(parts.values()) / n
        stats["graph_bytes_per_vector"] = engine.index.graph_nbytes / n
    else:
        size = engine.file_bytes()
        stats["file_bytes_per_vector"] = size / n
        stats["graph_bytes_per_vector"] = (size - dataset.base.nbytes) / n
    print(f"  {engine.name:8s} build {cpu:7.1f} s CPU ({wall:.1f} s wall), memory {held / n:.0f} bytes/vector",
          flush=True)
    return stats


def bench_dataset(dataset: Dataset, repetitions: int) -> dict:
    truth = exact_top_k(dataset.base, dataset.queries, K)
    engines = [Ours(), Hnswlib()]
    result = {"name": dataset.name, "description": dataset.description, "n": len(dataset.base),
              "dim": dataset.base.shape[1], "queries": len(dataset.queries), "engines": {}}
    for engine in engines:
        result["engines"][engine.name] = build_and_measure(engine, dataset)
    queries, query_list = dataset.queries, list(dataset.queries)
    active = [engine for engine in engines]
    for ef in EF_SWEEP:
        best = {(engine.name, mode): (0.0, 0.0) for engine in active for mode in MODES}
        recall = {}
        for engine in active:
            engine.set_ef(ef)
        for repetition in range(repetitions):
            # alternate the libraries and the order, so that both see the same machine load
            for engine in (active if repetition % 2 == 0 else active[::-1]):
                engine.set_ef(ef)
                for mode in MODES:
                    if mode == "batch":
                        found, cpu, wall = timed(engine.search_batch, queries)
                    else:
                        found, cpu, wall = timed(engine.search_single, query_list)
                    found = np.asarray(found)
                    if mode == "single" and engine.name == "ours" and repetition == 0:
                        assert np.array_equal(found, engine.search_batch(queries)), "single and batched differ"
                    recall[engine.name] = recall_at_k(found, truth)
                    rates = len(queries) / cpu, len(queries) / wall
                    best[engine.name, mode] = max(best[engine.name, mode], rates)
        for engine in active:
            point = {"ef": ef, "recall": recall[engine.name]}
            for mode in MODES:
                point[f"qps_{mode}"], point[f"qps_{mode}_wall"] = best[engine.name, mode]
            result["engines"][engine.name]["sweep"].append(point)
            print(f"  {engine.name:8s} ef {ef:4d} recall {point['recall']:.4f} single {point['qps_single']:9.0f} q/s"
                  f"  batched {point['qps_batch']:9.0f} q/s", flush=True)
        active = [engine for engine in active if recall[engine.name] < STOP_RECALL]
        if not active:
            break
    for stats in result["engines"].values():
        for target in TARGETS:
            stats["at_target"][str(target)] = at_recall(stats["sweep"], target)
    return result


def at_recall(sweep: list[dict], target: float) -> dict | None:
    """Queries/s (both modes) at recall ``target``, interpolated between the two swept points that
    bracket it: log(queries/s) linear in recall. None if the sweep never reaches it."""
    points = sorted(sweep, key=lambda p: p["ef"])
    for index, point in enumerate(points):
        if point["recall"] < target:
            continue
        if index == 0 or points[index - 1]["recall"] >= point["recall"]:
            return dict(point, interpolated=False)
        below = points[index - 1]
        share = (target - below["recall"]) / (point["recall"] - below["recall"])
        result = {"ef": f"{below['ef']}-{point['ef']}", "recall": target, "interpolated": True}
        for mode in MODES:
            for key in (f"qps_{mode}", f"qps_{mode}_wall"):
                result[key] = float(np.exp(np.log(below[key]) + share * (np.log(point[key]) - np.log(below[key]))))
        return result
    return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def qps_cell(point: dict | None, mode: str) -> str:
    return f"{point[f'qps_{mode}']:.0f} (ef {point['ef']}, {point['recall']:.3f})" if point else "not reached"


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours and theirs else "n/a"


def summary_rows(results: list[dict]) -> list[str]:
    lines = ["| dataset | single-query, recall@10 >= 0.95 | batched, >= 0.95 | single, >= 0.90 | single, >= 0.99 "
             "| memory / vector (RSS) | build time |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        ours, theirs = result["engines"]["ours"], result["engines"]["hnswlib"]
        cells = []
        for target, mode in (("0.95", "single"), ("0.95", "batch"), ("0.9", "single"), ("0.99", "single")):
            a, b = ours["at_target"][target], theirs["at_target"][target]
            cells.append(ratio(a and a[f"qps_{mode}"], b and b[f"qps_{mode}"]))
        cells.append(f"{ratio(ours['rss_bytes_per_vector'], theirs['rss_bytes_per_vector'])} "
                     f"({ours['rss_bytes_per_vector']:.0f} vs {theirs['rss_bytes_per_vector']:.0f} B)")
        cells.append(f"{ratio(ours['build_cpu_s'], theirs['build_cpu_s'])} "
                     f"({ours['build_cpu_s']:.0f} s vs {theirs['build_cpu_s']:.0f} s)")
        lines.append(f"| {result['name']}, {result['n']} x {result['dim']} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: list[dict], quick: bool, command: str) -> str:
    lines = [
        "# HNSW index benchmark: ours vs hnswlib",
        "",
        (f"`{command}`. M={M}, ef_construction={EF_CONSTRUCTION}, k={K}, one thread for builds and queries in "
         "both libraries. Single-query: each query its own call (ours `HNSWIndex.search(vector)`, hnswlib "
         "`knn_query(vector)`), as the product searches; batched: all queries in one call. Times are the "
         "calling thread's CPU time (the machine is shared), best of alternating rounds; queries/s at a "
         "target recall use the smallest swept ef reaching it. Memory: resident bytes each library added "
         "for its build and a first search (ours: float32 vectors, graph, 8-bit codes, scratch; hnswlib: "
         "vectors, links, labels, locks, label map)."
         + (" **Quick run (smaller datasets).**" if quick else "")),
        "",
        (f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
         f"{time.strftime('%Y-%m-%d %H:%M')}."),
        "",
        "## Summary: ours / hnswlib",
        "",
        "Queries/s ratios at the target recall@10 (interpolated on each curve), memory and build time.",
        "",
        *summary_rows(results),
        "",
    ]
    for result in results:
        ours, theirs = result["engines"]["ours"], result["engines"]["hnswlib"]
        lines += [f"## {result['name']}: {result['description']}, {result['queries']} queries", "",
                  "| metric | ours | hnswlib | ours / hnswlib |", "|---|---|---|---|"]
        for mode in MODES:
            for target in TARGETS:
                a, b = ours["at_target"][str(target)], theirs["at_target"][str(target)]
                label = "single-query" if mode == "single" else "batched"
                lines.append(f"| {label} queries/s at recall@10 >= {target:.2f} | {qps_cell(a, mode)} | "
                             f"{qps_cell(b, mode)} | {ratio(a and a[f'qps_{mode}'], b and b[f'qps_{mode}'])} |")
        lines.append(f"| build time (s CPU, 1 thread) | {ours['build_cpu_s']:.1f} | {theirs['build_cpu_s']:.1f} | "
                     f"{ratio(ours['build_cpu_s'], theirs['build_cpu_s'])} |")
        lines.append(f"| memory / vector, resident (bytes) | {ours['rss_bytes_per_vector']:.0f} | "
                     f"{theirs['rss_bytes_per_vector']:.0f} | "
                     f"{ratio(ours['rss_bytes_per_vector'], theirs['rss_bytes_per_vector'])} |")
        parts = ", ".join(f"{name} {size:.0f}" for name, size in ours["parts_bytes_per_vector"].items())
        lines.append(f"| memory / vector, counted (bytes) | {ours['counted_bytes_per_vector']:.0f} ({parts}) | "
                     f"{theirs['file_bytes_per_vector']:.0f} (its saved file) | "
                     f"{ratio(ours['counted_bytes_per_vector'], theirs['file_bytes_per_vector'])} |")
        lines.append(f"| graph bytes / vector | {ours['graph_bytes_per_vector']:.1f} | "
                     f"{theirs['graph_bytes_per_vector']:.1f} | "
                     f"{ratio(ours['graph_bytes_per_vector'], theirs['graph_bytes_per_vector'])} |")
        lines += ["", "<details><summary>sweep</summary>", "",
                  "| ef | ours recall | ours single q/s | ours batched q/s | hnswlib recall | hnswlib single q/s "
                  "| hnswlib batched q/s | single ratio | batched ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        theirs_by_ef = {p["ef"]: p for p in theirs["sweep"]}
        for point in ours["sweep"]:
            other = theirs_by_ef.get(point["ef"])
            if other is None:
                continue
            lines.append(f"| {point['ef']} | {point['recall']:.4f} | {point['qps_single']:.0f} | "
                         f"{point['qps_batch']:.0f} | {other['recall']:.4f} | {other['qps_single']:.0f} | "
                         f"{other['qps_batch']:.0f} | {ratio(point['qps_single'], other['qps_single'])} | "
                         f"{ratio(point['qps_batch'], other['qps_batch'])} |")
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.8), squeeze=False)
    colours = {"ours": "tab:blue", "hnswlib": "tab:orange"}
    for axis, result in zip(axes[0], results):
        for name, stats in result["engines"].items():
            sweep = stats["sweep"]
            for mode, style in (("single", "-"), ("batch", "--")):
                label = f"{name}, {'one query per call' if mode == 'single' else 'batched'}"
                axis.plot([p["recall"] for p in sweep], [p[f"qps_{mode}"] for p in sweep], style, marker="o",
                          markersize=3, color=colours[name], label=label)
        axis.set_yscale("log")
        axis.set_xlabel("recall@10")
        axis.set_ylabel("queries/s (1 thread, CPU time)")
        axis.set_title(f"{result['name']} ({result['n']} x {result['dim']})")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller datasets, a few minutes")
    parser.add_argument("--datasets", default="clip-2k,clip-20k,clip-100k",
                        help="comma-separated subset of clip-2k, clip-20k, clip-100k, sift, fashion-mnist")
    parser.add_argument("--repetitions", type=int, default=None, help="timed rounds per ef (best kept)")
    parser.add_argument("--clip-100k-n", type=int, default=None, metavar="ROWS",
                        help="rows of the 512-d clip set (default 100000, 30000 with --quick)")
    parser.add_argument("--queries", type=int, default=None, help="held-out queries per dataset (default 1000)")
    args = parser.parse_args()
    n_queries = args.queries or (500 if args.quick else 1000)
    large_n = args.clip_100k_n or (30_000 if args.quick else 100_000)
    loaders = {
        "clip-2k": lambda: clip_like(2_000, n_queries, dim=128, name="clip-2k"),
        "clip-20k": lambda: clip_like(20_000, n_queries, dim=128, name="clip-20k"),
        "clip-100k": lambda: clip_like(large_n, n_queries, dim=512, name=f"clip-{large_n // 1000}k"),
        "sift": lambda: sift(50_000 if args.quick else 200_000, n_queries),
        "fashion-mnist": lambda: fashion_mnist(20_000 if args.quick else 69_000, n_queries),
    }
    repetitions = args.repetitions or (3 if args.quick else 5)
    warm_up_ours()
    results = []
    for name in args.datasets.split(","):
        dataset = loaders[name]()
        print(f"{dataset.name}: {dataset.description}", flush=True)
        results.append(bench_dataset(dataset, repetitions))
        del dataset
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    command = "make bench-index" if len(sys.argv) == 1 else "python bench/bench_index.py " + " ".join(sys.argv[1:])
    (RESULTS / f"index{suffix}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"index{suffix}.md").write_text(markdown(results, args.quick, command))
    plot(results, RESULTS / f"index{suffix}_recall_qps.png")
    print(markdown(results, args.quick, command))


if __name__ == "__main__":
    main()
