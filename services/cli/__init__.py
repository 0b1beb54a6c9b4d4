"""`mediasearch`: the command line for a running gateway (MEDIASEARCH_URL, with MEDIASEARCH_API_KEY or --key).

    mediasearch search "a dog" [-k 10]
    mediasearch status
    mediasearch bench --queries "a cat" "a skyline at night" [--queries-file F] --ef-search 32 64 128 --k 5
                      --repeat 3 --output data/benchmarks/latest.json

`bench` measures the index on the library you indexed: each query is encoded once, then searched by the
graph and by an exact scan of every vector (the reference) at each ef_search, inside the index
(`POST /search/compare`); it writes recall, latencies and speed-ups as JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 120.0


class CliError(Exception):
    """What went wrong, in one line for the user."""


class Gateway:
    def __init__(self, url: str, key: str | None):
        if not key:
            raise CliError("no API key: set MEDIASEARCH_API_KEY or pass --key (make one in the UI: Account, API keys)")
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S, headers={"X-API-Key": key})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {self.url} ({exc}); is it running? "
                           "Set MEDIASEARCH_URL to its address") from None
        if reply.status_code == 401:
            raise CliError(f"the gateway at {self.url} refused the API key (401); check MEDIASEARCH_API_KEY or --key")
        if reply.status_code >= 400:
            try:
                detail = reply.json().get("detail", reply.text)
            except ValueError:
                detail = reply.text
            raise CliError(f"{method} {path}: {reply.status_code} {detail}")
        return reply.json()


# -- search and status ----------------------------------------------------------------------------------
def search(gateway: Gateway, query: str, k: int) -> None:
    answer = gateway.call("GET", "/search", params={"q": query, "k": k})
    results = answer["results"]
    if not results:
        print("no results")
    for rank, result in enumerate(results, 1):
        at = f" at {result['timestamp']:.1f} s" if result["kind"] == "video" and result.get("timestamp") else ""
        print(f"{rank:3d}  {result['similarity']:.3f}  {result['kind']:5s}  media {result['media_id']:<7d} "
              f"{result['name']}{at}")
    if answer.get("partial"):
        print("(partial: an index shard did not answer)")


def status(gateway: Gateway) -> None:
    me = gateway.call("GET", "/auth/me")  # /health answers anyone: this is what checks the key
    health = gateway.call("GET", "/health")
    print(f"gateway {gateway.url}: {health.get('status', '?')} (signed in as {me['username']})")
    for name, value in health.items():
        if name != "status":
            print(f"  {name}: {json.dumps(value) if isinstance(value, dict | list) else value}")


# -- bench ----------------------------------------------------------------------------------------------
def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def bench_report(answers: list[dict], k: int, ef_values: list[int], repeat: int) -> dict:
    """The benchmark's JSON from the gateway's compare answers (one per query)."""
    per_query = []
    for answer in answers:
        for run in answer["runs"]:
            hnsw_ms, brute_ms = mean(run["hnsw_ms"]), mean(run["brute_ms"])
            per_query.append({
                "query": answer["query"], "ef_search": run["ef_search"], "recall": run["recall"],
                "hnsw_ms": hnsw_ms, "brute_ms": brute_ms, "speedup": brute_ms / hnsw_ms if hnsw_ms > 0 else None,
                "hnsw_runs_ms": run["hnsw_ms"], "brute_runs_ms": run["brute_ms"],
                "hnsw_results": run["hnsw_results"], "brute_results": run["brute_results"],
            })
    aggregates = {}
    for ef in ef_values:
        rows = [row for row in per_query if row["ef_search"] == ef]
        hnsw_runs = [ms for row in rows for ms in row["hnsw_runs_ms"]]
        brute_runs = [ms for row in rows for ms in row["brute_runs_ms"]]
        aggregates[str(ef)] = {
            "queries": len(rows),
            "avg_recall": mean([row["recall"] for row in rows]),
            "avg_hnsw_ms": mean(hnsw_runs), "p95_hnsw_ms": p95(hnsw_runs),
            "avg_brute_ms": mean(brute_runs), "p95_brute_ms": p95(brute_runs),
            "avg_speedup": mean(brute_runs) / mean(hnsw_runs) if mean(hnsw_runs) > 0 else None,
        }
    return {
        "k": k, "repeat": repeat, "ef_search": ef_values,
        "encode_ms": mean([answer["encode_ms"] for answer in answers]),
        "measured": "per query, inside the index (slowest shard): the graph search (hnsw_ms) and an exact scan "
                    "of every vector (brute_ms); encode_ms is the text encoding through the embedder",
        "per_query": per_query,
        "aggregates": aggregates,
    }


def print_table(report: dict) -> None:
    print(f"k={report['k']}, {report['repeat']} run(s) per query, encode {report['encode_ms']:.1f} ms per query "
          "(inside the index: graph vs exact scan)")
    print(f"{'ef':>6} {'queries':>7} {'recall':>7} {'hnsw avg':>9} {'hnsw p95':>9} {'exact avg':>10} "
          f"{'exact p95':>10} {'speed-up':>9}")
    for ef, row in report["aggregates"].items():
        speedup = f"{row['avg_speedup']:.1f}x" if row["avg_speedup"] else "-"
        print(f"{ef:>6} {row['queries']:>7} {row['avg_recall']:>7.3f} {row['avg_hnsw_ms']:>7.3f}ms "
              f"{row['p95_hnsw_ms']:>7.3f}ms {row['avg_brute_ms']:>8.3f}ms {row['p95_brute_ms']:>8.3f}ms {speedup:>9}")


def read_queries(queries: list[str] | None, queries_file: Path | None) -> list[str]:
    found = list(queries or [])
    if queries_file is not None:
        try:
            lines = queries_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CliError(f"cannot read the queries file: {exc}") from None
        found += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not found:
        raise CliError("no queries: give --queries and/or --queries-file (one query a line)")
    return found


def check_ef(ef_values: list[int], k: int) -> None:
    below = [ef for ef in ef_values if ef < k]
    if below:
        raise CliError(f"--ef-search {below[0]} is below --k {k}: the graph search cannot return k results from "
                       "fewer candidates; use values of at least k")


def bench(gateway: Gateway, queries: list[str], ef_values: list[int], k: int, repeat: int, output: Path) -> dict:
    answers = [gateway.call("POST", "/search/compare",
                            json={"q": query, "k": k, "ef_search": ef_values, "repeat": repeat})
               for query in queries]
    report = bench_report(answers, k, ef_values, repeat)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"written to {output}")
    return report


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mediasearch", description="Talk to a running mediasearch gateway.")
    top.add_argument("--url", default=os.environ.get("MEDIASEARCH_URL", DEFAULT_URL),
                     help="the gateway (MEDIASEARCH_URL; default %(default)s)")
    top.add_argument("--key", default=os.environ.get("MEDIASEARCH_API_KEY"),
                     help="an API key (MEDIASEARCH_API_KEY)")
    commands = top.add_subparsers(dest="command", required=True)
    find = commands.add_parser("search", help="search by words")
    find.add_argument("query")
    find.add_argument("-k", type=int, default=10, help="results (default %(default)s)")
    commands.add_parser("status", help="is the gateway up, and what does it hold")
    measure = commands.add_parser("bench", help="the index against an exact scan, on your library")
    measure.add_argument("--queries", nargs="+", metavar="Q")
    measure.add_argument("--queries-file", type=Path, metavar="F", help="one query a line")
    measure.add_argument("--ef-search", nargs="+", type=int, default=[32, 64, 128], metavar="EF")
    measure.add_argument("--k", type=int, default=5)
    measure.add_argument("--repeat", type=int, default=3)
    measure.add_argument("--output", type=Path, default=Path("data/benchmarks/latest.json"))
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "bench":
            queries = read_queries(args.queries, args.queries_file)  # before the key: usage errors first
            check_ef(args.ef_search, args.k)
            bench(Gateway(args.url, args.key), queries, args.ef_search, args.k, args.repeat, args.output)
        elif args.command == "search":
            search(Gateway(args.url, args.key), args.query, args.k)
        else:
            status(Gateway(args.url, args.key))
    except CliError as exc:
        print(f"mediasearch: {exc}", file=sys.stderr)
        return 1
    return 0
