"""The `mediasearch` command against the real stack: search, status, and bench (the graph beside an exact
scan of every vector, through the gateway's compare route), with its usage errors."""

from __future__ import annotations

import json

import pytest

from services.cli import main
from tests.conftest import RunningStack
from tests.samples import PHOTOS


@pytest.fixture(scope="module")
def indexed(live_stack: RunningStack) -> RunningStack:
    files = [(f"cli/{path.name}", path.read_bytes()) for path in sorted(PHOTOS.glob("*.JPEG"))[400:412]]
    job = live_stack.wait_job(live_stack.upload(files))
    assert job["indexed"] + job["duplicates"] == len(files), job
    return live_stack


def run(stack: RunningStack, *argv: str, key: str | None = None) -> int:
    return main(["--url", stack.url, "--key", key or stack.settings.api_key.get_secret_value(), *argv])


def test_search_and_status(indexed, capsys):
    assert run(indexed, "search", "a photo", "-k", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.split()[0] == str(rank) for rank, line in enumerate(lines, 1))
    assert run(indexed, "status") == 0
    assert capsys.readouterr().out.startswith(f"gateway {indexed.url}: ok")


def test_bench_writes_recall_latencies_and_both_result_lists(indexed, tmp_path, capsys):
    output = tmp_path / "benchmarks" / "latest.json"
    assert run(indexed, "bench", "--queries", "a cat", "a skyline at night", "--ef-search", "8", "1000",
               "--k", "5", "--repeat", "2", "--output", str(output)) == 0
    report = json.loads(output.read_text())
    assert report["encode_ms"] > 0 and set(report["aggregates"]) == {"8", "1000"}
    assert len(report["per_query"]) == 4
    for row in report["per_query"]:
        assert len(row["hnsw_results"]) == len(row["brute_results"]) == 5
        similarities = [hit["similarity"] for hit in row["brute_results"]]
        # recall counts ties: a hit as similar as the exact 5th is one of the true 5 (identical frames)
        as_good = sum(hit["similarity"] >= similarities[-1] - 1e-5 for hit in row["hnsw_results"])
        assert row["recall"] == pytest.approx(min(5, as_good) / 5)
        assert similarities == sorted(similarities, reverse=True)
        # the exact answer is never beaten: the graph's k-th best is at most the exact k-th best
        assert min(hit["similarity"] for hit in row["hnsw_results"]) <= similarities[-1] + 1e-5
        assert all(hit["media_id"] is not None for hit in row["brute_results"])
        assert len(row["hnsw_runs_ms"]) == len(row["brute_runs_ms"]) == 2
        assert row["speedup"] == pytest.approx(row["brute_ms"] / row["hnsw_ms"])
    aggregate = report["aggregates"]["1000"]
    assert aggregate["queries"] == 2 and 0 < aggregate["avg_recall"] <= 1
    table = capsys.readouterr().out
    assert "recall" in table and "p95" in table and str(output) in table


def test_usage_errors_say_what_to_do(indexed, tmp_path, capsys):
    assert run(indexed, "bench", "--queries", "a cat", "--k", "10", "--ef-search", "5") == 1
    assert "--ef-search 5 is below --k 10" in capsys.readouterr().err
    reply = indexed.client.post("/search/compare", json={"q": "a cat", "k": 10, "ef_search": [5]})
    assert reply.status_code == 422 and "below k=10" in reply.json()["detail"]
    assert run(indexed, "status", key="not-a-key") == 1
    assert "refused the API key" in capsys.readouterr().err
    assert main(["--url", "http://127.0.0.1:9", "--key", "k", "status"]) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err
    assert run(indexed, "bench") == 1
    assert "no queries" in capsys.readouterr().err
