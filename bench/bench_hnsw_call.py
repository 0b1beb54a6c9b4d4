"""Per-call cost of HNSWIndex.search: one query per call (the service's path), and one batched call,
next to hnswlib's knn_query on the same vectors.

    .venv/bin/python bench/bench_hnsw_call.py [--n 20000] [--ef 64] [--queries 3000]
        [--against /path/to/other/checkout]

Clustered CLIP-shaped unit vectors (128-d, ``bench_index.clip_like``), M=16, ef_construction=200,
k=10, one thread. Our graph is built once per size and saved under /tmp/hnsw_bench_call/, so every
run (and every checkout) searches the very same graph; hnswlib is built on the same vectors. With
``--against`` the HNSW package of another checkout (e.g. a ``git worktree`` of an older commit) is
loaded too, under another name, and measured side by side in this process. Each query alternates
between the code bases, so that the load of a shared machine hits all alike.

Reported per code base: the median wall time of a single-query call; the same on an index holding
one vector (the call's fixed cost: Python, locking, dispatch, no graph walk); and the batched rate
(all the queries in one call, best of the repetitions).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_index import clip_like  # noqa: E402

from services.index.hnsw import HNSWIndex  # noqa: E402

CACHE = Path("/tmp/hnsw_bench_call")
DIM = 128
K = 10


def load_other(checkout: Path) -> type:
    """HNSWIndex from another checkout's services/index/hnsw, imported as the package hnsw_other."""
    package = checkout / "services" / "index" / "hnsw"
    spec = importlib.util.spec_from_file_location("hnsw_other", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["hnsw_other"] = module
    spec.loader.exec_module(module)
    return module.HNSWIndex


class Hnswlib:
    """hnswlib behind the same ``search(query, k, ef)`` as ours."""

    def __init__(self, vectors: np.ndarray):
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        self.index.init_index(max_elements=len(vectors), M=16, ef_construction=200, random_seed=0)
        self.index.set_num_threads(1)
        self.index.add_items(vectors, num_threads=1)
        self.ef = None

    def search(self, query: np.ndarray, k: int, ef: int):
        if ef != self.ef:
            self.index.set_ef(ef)
            self.ef = ef
        return self.index.knn_query(query, k=min(k, self.index.get_current_count()), num_threads=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the queries")
    parser.add_argument("--against", type=Path, help="another checkout to measure side by side")
    args = parser.parse_args()

    dataset = clip_like(args.n, args.queries, dim=DIM)
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"clip{args.n}x{DIM}.hnsw"
    if not path.exists():
        index = HNSWIndex(DIM, m=16, ef_construction=200)
        index.add(dataset.base)
        index.save(path)
    queries = dataset.queries
    classes = {"this": HNSWIndex}
    if args.against is not None:
        classes["against"] = load_other(args.against)
    indexes, tiny = {}, {}
    for name, cls in classes.items():
        indexes[name] = cls.load(path)
        tiny[name] = cls(DIM)
        tiny[name].add(queries[:1])
    indexes["hnswlib"] = Hnswlib(dataset.base)
    tiny["hnswlib"] = Hnswlib(queries[:1])
    for name in indexes:
        for q in queries[:300]:  # warm-up (and the kernels compiled or loaded)
            indexes[name].search(q, K, args.ef)
            tiny[name].search(q, K, args.ef)
    if "against" in indexes:
        first, second = (indexes[name].search(queries, k=K, ef=args.ef) for name in classes)
        assert all(np.array_equal(a, b) for a, b in zip(first, second)), "the two code bases answer differently"

    def single_calls(by_name: dict) -> dict[str, float]:
        times = {name: np.empty(args.queries * args.repeats, dtype=np.int64) for name in by_name}
        names = list(by_name)
        for i in range(args.queries * args.repeats):
            q = queries[i % args.queries]
            for name in names if i % 2 == 0 else names[::-1]:
                start = time.perf_counter_ns()
                by_name[name].search(q, K, args.ef)
                times[name][i] = time.perf_counter_ns() - start
        return {name: float(np.median(t)) / 1e3 for name, t in times.items()}

    single = single_calls(indexes)
    fixed = single_calls(tiny)
    batched = {name: 0.0 for name in indexes}
    for _ in range(args.repeats):
        for name, index in indexes.items():
            start = time.perf_counter()
            index.search(queries, K, args.ef)
            batched[name] = max(batched[name], args.queries / (time.perf_counter() - start))
    for name in indexes:
        print(f"{name:8s} n={args.n} ef={args.ef} single_median_us={single[name]:.2f} "
              f"one_vector_index_us={fixed[name]:.2f} batched_qps={batched[name]:.0f}")
    print(f"ratio this/hnswlib (time): single {single['this'] / single['hnswlib']:.3f}  one-vector "
          f"{fixed['this'] / fixed['hnswlib']:.3f}  batched {batched['hnswlib'] / batched['this']:.3f}")
    if "against" in indexes:
        print(f"ratio this/against (time): single {single['this'] / single['against']:.3f}  one-vector "
              f"{fixed['this'] / fixed['against']:.3f}  batched {batched['against'] / batched['this']:.3f}")


if __name__ == "__main__":
    main()
