"""Duplicates at library size: the duplicate report (the library call ``GET /duplicates`` makes,
``find_duplicates`` with the index) on a generated library of 50,000 photos, and the near-duplicate
lookup the ingest worker makes under the catalog's write lock, each against the implementation before
this change (read from git at ``REFERENCE``: all-pairs vector comparison, a scan of every perceptual
hash) in the same run.

    python bench/bench_duplicates.py [--items 50000] [--reference-items 5000] [--new-items 500]

The library is built through the library code, not the ingest pipeline: media and frame rows in a real
catalog, vectors in a real vectors store (512-d, clustered: photos of a cluster are about 0.5 alike), with
planted visual copies (cosine 0.955-0.995 to an earlier photo) and perceptual-hash copies (1-6 bits off an
earlier photo's hash, ``near_duplicate_of`` found by ``catalog.find_near_duplicate`` as ingest does). The
index is the index service's shard run in process (its real HNSW graph, the product's M and
ef_construction); the lookups ask it one item at a time, as the gateway asks the shards over HTTP (which
adds a round trip per item that this does not measure). Prints the table and writes
bench/results/duplicates.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from services.index.shard import Shard
from shared import catalog
from shared.organise.duplicates import find_duplicates, look_up_visual_pairs
from shared.settings import Settings
from shared.vectors import VectorStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "duplicates.md"
REFERENCE = "ba246dc"  # the commit before duplicates went through indexes
DIM = 512
THRESHOLD = 0.95  # MEDIASEARCH_DUPLICATE_VISUAL_THRESHOLD's default
MAX_DISTANCE = 6  # MEDIASEARCH_PHASH_MAX_DISTANCE's default
VISUAL_COPIES = 0.02  # share of photos that are a visual copy of an earlier one
PHASH_COPIES = 0.02  # share that are a resized copy (perceptual hash a few bits off)
BATCH = 1000


def reference(path: str) -> types.ModuleType:
    """A module as it was at ``REFERENCE``."""
    source = subprocess.run(["git", "show", f"{REFERENCE}:{path}"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType(f"reference_{Path(path).stem}")
    exec(compile(source, f"{REFERENCE}:{path}", "exec"), module.__dict__)
    return module


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def near(bases: np.ndarray, cosines: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at exactly ``cosines`` from the unit ``bases``, in random directions."""
    other = rng.standard_normal(bases.shape).astype(np.float32)
    other = unit_rows(other - np.sum(other * bases, axis=1, keepdims=True) * bases)
    return unit_rows(cosines[:, None] * bases + np.sqrt(1 - cosines[:, None] ** 2) * other)


class Library:
    """A real catalog and vectors store, filled as ingest leaves them, and the index over the vectors."""

    def __init__(self, root: Path, seed: int):
        self.settings = Settings(data_dir=root)
        self.conn = catalog.connect(self.settings.catalog_path)
        self.writer = VectorStore(self.settings.vectors_dir, dim=DIM, model_id="bench", writable=True)
        self.store = VectorStore(self.settings.vectors_dir)
        self.rng = np.random.default_rng(seed)
        self.centres = unit_rows(self.rng.standard_normal((500, DIM)))
        self.vectors = np.zeros((0, DIM), dtype=np.float32)
        self.phashes: list[int] = []
        self.shard = Shard(self.settings.vectors_dir, root / "index", m=self.settings.index_m,
                           ef_construction=self.settings.index_ef_construction,
                           ef_search=self.settings.index_ef_search)

    def add(self, count: int) -> None:
        """``count`` more photos, some of them copies of earlier ones."""
        rng, first = self.rng, len(self.phashes)
        vectors = near(self.centres[rng.integers(0, len(self.centres), count)], np.full(count, 0.7), rng)
        kind = rng.random(count)
        sources = (rng.random(count) * (first + np.arange(count))).astype(int)  # an earlier photo
        for offset in range(0, count, BATCH):
            stop = min(count, offset + BATCH)
            for n in range(offset, stop):
                if n + first and kind[n] < VISUAL_COPIES + PHASH_COPIES:
                    source = self.vectors[sources[n]] if sources[n] < first else vectors[sources[n] - first]
                    cosine = rng.uniform(0.955, 0.995) if kind[n] < VISUAL_COPIES else 0.99
                    vectors[n] = near(source[None, :], np.array([cosine]), rng)[0]
            with catalog.transaction(self.conn):
                frames = {}
                for n in range(offset, stop):
                    number = first + n
                    if number and kind[n] >= VISUAL_COPIES and kind[n] < VISUAL_COPIES + PHASH_COPIES:
                        bits = rng.choice(64, size=rng.integers(1, MAX_DISTANCE + 1), replace=False)
                        phash = self.phashes[sources[n]] ^ int(sum(1 << int(bit) for bit in bits))
                    else:
                        phash = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
                    self.phashes.append(phash)
                    hex_hash = f"{phash:016x}"
                    media_id = catalog.insert_media(
                        self.conn, sha256=f"{number:064x}", kind="image", mime="image/jpeg", path=f"o/{number}.jpg",
                        name=f"IMG_{number:06d}.jpg", size=100_000 + number, width=4000, height=3000, phash=hex_hash,
                        near_duplicate_of=catalog.find_near_duplicate(self.conn, hex_hash, MAX_DISTANCE),
                        status="indexed")
                    frames[catalog.insert_frame(self.conn, media_id, f"f/{number}.jpg", f"t/{number}.jpg", 512,
                                                384)] = n
            rows = self.writer.append(vectors[offset:stop], list(frames))
            catalog.set_frame_rows(self.conn, dict(zip(frames, rows)))
        self.vectors = np.concatenate([self.vectors, vectors])

    # the NeighbourIndex the duplicates ask (as ShardedIndex asks the shards over HTTP)
    def indexed_through(self) -> int:
        return self.shard.indexed_through

    def nearest(self, vector: np.ndarray, k: int, allow_rows: list[int] | None) -> tuple[list[int], list[float]]:
        return self.shard.search(vector, k, None, allow_rows)

    def report(self):
        return find_duplicates(self.conn, self.store, THRESHOLD, MAX_DISTANCE, self)

    def close(self) -> None:
        self.shard.close()
        self.store.close()
        self.writer.close()
        self.conn.close()


def timed(call: Callable, repeat: int = 1):
    """(median seconds, last result) over ``repeat`` calls."""
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def groups_of(report) -> set[frozenset[int]]:
    return {frozenset(member.media_id for member in group.members) for group in report.groups}


def build(root: Path, items: int, seed: int) -> tuple[Library, dict[str, float]]:
    library = Library(root, seed)
    figures = {}
    figures["build_s"], _ = timed(lambda: library.add(items))
    figures["index_s"], _ = timed(library.shard.catch_up)
    figures["lookup_s"], left = timed(lambda: look_up_visual_pairs(library.conn, library.store, library))
    assert left == 0, left
    return library, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--reference-items", type=int, default=5_000, help="size the all-pairs reference runs at")
    parser.add_argument("--new-items", type=int, default=500, help="photos added before a report that looks them up")
    parser.add_argument("--lookups", type=int, default=200, help="near-duplicate lookups timed at --items")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    old_duplicates = reference("shared/organise/duplicates.py")
    old_media = reference("shared/catalog/media.py")
    lines = []

    with tempfile.TemporaryDirectory(prefix="bench-duplicates-") as tmp:
        # 1. The reference size: old (all pairs) and new report, and the same groups.
        small, small_figures = build(Path(tmp) / "small", args.reference_items, seed=1)
        old_s, old_report = timed(lambda: old_duplicates.find_duplicates(small.conn, small.store, THRESHOLD,
                                                                         MAX_DISTANCE), args.repeat)
        new_s, new_report = timed(small.report, args.repeat)
        same = groups_of(old_report) == groups_of(new_report)
        small.close()
        lines += [f"| {args.reference_items:,} | report before (all pairs) | {old_s:.3f} s | |",
                  f"| {args.reference_items:,} | report now (recorded pairs) | {new_s:.3f} s | "
                  f"{old_s / new_s:.0f}x faster; same {len(groups_of(new_report))} groups: {same} |",
                  f"| {args.reference_items:,} | looking up every item's neighbours once | "
                  f"{small_figures['lookup_s']:.2f} s | {small_figures['lookup_s'] / args.reference_items * 1e6:.0f} µs an item |"]
        print("\n".join(lines), flush=True)

        # 2. Library size: the report, the report after new photos, near-duplicate lookups.
        large, figures = build(Path(tmp) / "large", args.items, seed=2)
        report_s, report = timed(large.report, args.repeat)
        large.add(args.new_items)
        large.shard.catch_up()
        fresh_s, fresh = timed(large.report)
        rng = np.random.default_rng(3)
        queries = [f"{large.phashes[int(rng.integers(0, args.items))] ^ (1 << int(rng.integers(0, 64))):016x}"
                   if n % 2 else f"{int(rng.integers(0, 2**63)):016x}" for n in range(args.lookups)]
        scan_s, scanned = timed(lambda: [old_media.find_near_duplicate(large.conn, q, MAX_DISTANCE) for q in queries])
        band_s, banded = timed(lambda: [catalog.find_near_duplicate(large.conn, q, MAX_DISTANCE) for q in queries])
        large.close()
    lines += [f"| {args.items:,} | **report now (recorded pairs)** | **{report_s:.3f} s** | goal ≤ 2 s; "
              f"{len(report.groups):,} groups |",
              f"| {args.items:,} + {args.new_items} new | report that first looks up the new photos | {fresh_s:.3f} s | "
              f"{len(fresh.groups):,} groups |",
              f"| {args.items:,} | looking up every item's neighbours once | {figures['lookup_s']:.1f} s | "
              f"{figures['lookup_s'] / args.items * 1e6:.0f} µs an item (index build: {figures['index_s']:.0f} s) |",
              f"| {args.items:,} | near-duplicate lookup before (scan) | {scan_s / args.lookups * 1e3:.2f} ms | |",
              f"| {args.items:,} | near-duplicate lookup now (band indexes) | {band_s / args.lookups * 1e3:.3f} ms | "
              f"{scan_s / band_s:.0f}x faster; same answers: {scanned == banded} |"]
    table = "\n".join(["| items | what | time | |", "|---|---|---|---|", *lines])
    print(table)
    RESULTS.write_text(
        f"# Duplicates at library size\n\n`make bench-duplicates` ({platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d')}). Reports are the library call GET /duplicates makes (find_duplicates with "
        f"the index), median of {args.repeat}, threshold {THRESHOLD}, near distance {MAX_DISTANCE}; before: "
        f"the code at {REFERENCE}, in the same run. Lookups ask the in-process shard one item at a time "
        f"(through the index service each adds an HTTP round trip). Near-duplicate lookups: per lookup, "
        f"{args.lookups} hashes (half one bit off a stored one).\n\n{table}\n")


if __name__ == "__main__":
    main()
