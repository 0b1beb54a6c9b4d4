"""Search: a query vector fanned out to every index shard, merged, joined with the catalog.

The index knows rows and similarities only. Rows the catalog does not know (a deleted media item, a
whole-video vector, a frame whose catalog write is not visible yet) are dropped, so the gateway asks
the shards for more than it needs and asks again with a larger k until it has enough results or the
shards have nothing more. Filters become an ``allow_rows`` list computed from the catalog and are
applied inside the index search, so a filtered search still returns k results.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field

import anyio
import numpy as np
from fastapi import HTTPException

from services.gateway.state import Gateway
from services.gateway.timing import timed
from shared import catalog
from shared.clients import UpstreamError
from shared.schemas import Moment, SearchResponse, SearchResult, media_url

MAX_INDEX_K = 10_000  # IndexSearchRequest's limit
MAX_EF = 10_000


@dataclass(frozen=True)
class Filters:
    kind: str | None = None  # "image" | "video"
    folder: str | None = None
    created_from: float | None = None
    created_to: float | None = None
    collection: int | None = None

    @property
    def active(self) -> bool:
        return any(value is not None for value in (self.kind, self.folder, self.created_from, self.created_to,
                                                   self.collection))


@dataclass(frozen=True)
class SearchOptions:
    k: int = 20
    offset: int = 0
    min_similarity: float | None = None
    group_videos: bool = False
    filters: Filters = field(default_factory=Filters)
    ef: int | None = None  # the index's search breadth (None: its default)


@dataclass
class ShardHits:
    rows: list[int]
    similarities: list[float]
    partial: bool  # some shard did not answer
    exhausted: bool  # every shard that answered returned all it had


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0 or not np.isfinite(norm):
        raise HTTPException(400, "the query gives a zero vector; nothing to compare with")
    return (vector / norm).astype(np.float32)


def combine(vectors: list[np.ndarray]) -> np.ndarray:
    """Text and image queries together: the mean of the normalised vectors, normalised again."""
    return unit(np.mean([unit(v) for v in vectors], axis=0))


def frame_vector(gateway: Gateway, frame_id: int) -> np.ndarray:
    """The stored vector of a frame ("more like this"), read from the vectors store."""
    frame = catalog.get_frame(gateway.catalog(), frame_id)
    if frame is None:
        raise HTTPException(404, f"no frame with id {frame_id}")
    row = frame["vector_row"]
    if row is None:
        raise HTTPException(409, f"frame {frame_id} is not embedded yet; try again when its job is done")
    try:
        vectors, _ = gateway.vectors().view()
    except FileNotFoundError as exc:
        raise HTTPException(409, "no vectors have been stored yet") from exc
    if row >= len(vectors):
        raise HTTPException(409, f"frame {frame_id}'s vector is not committed yet")
    return np.array(vectors[row], dtype=np.float32)


async def query_shards(gateway: Gateway, vector: np.ndarray, k: int, allow_rows: list[int] | None,
                       ef: int | None = None) -> ShardHits:
    """Ask every shard at once; a shard that fails makes the answer partial, all failing is an error."""
    answers = await asyncio.gather(*(shard.search(vector, k, ef, allow_rows) for shard in gateway.shards),
                                   return_exceptions=True)
    failures = [a for a in answers if isinstance(a, BaseException)]
    for failure in failures:
        if not isinstance(failure, UpstreamError):
            raise failure
    if len(failures) == len(answers):
        raise HTTPException(503, "no index shard answered: " + "; ".join(str(f) for f in failures))
    best: dict[int, float] = {}
    exhausted = True
    for answer in answers:
        if isinstance(answer, BaseException):
            continue
        exhausted &= len(answer.rows) < k
        for row, similarity in zip(answer.rows, answer.similarities):
            best[row] = max(similarity, best.get(row, -2.0))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return ShardHits([r for r, _ in ranked], [s for _, s in ranked], bool(failures), exhausted)


def to_results(hits: ShardHits, known: dict[int, sqlite3.Row], options: SearchOptions,
               exclude_frames: frozenset[int]) -> list[SearchResult]:
    """Results in rank order; with ``group_videos`` the frames of one video become one result."""
    results: list[SearchResult] = []
    by_video: dict[int, SearchResult] = {}
    for row, similarity in zip(hits.rows, hits.similarities):
        info = known.get(row)
        if info is None or info["frame_id"] in exclude_frames:
            continue
        if options.min_similarity is not None and similarity < options.min_similarity:
            break
        is_video = info["kind"] == "video"
        moment = Moment(frame_id=info["frame_id"], timestamp=info["timestamp"], similarity=similarity)
        if options.group_videos and is_video and info["media_id"] in by_video:
            by_video[info["media_id"]].moments.append(moment)
            continue
        result = SearchResult(
            frame_id=info["frame_id"], media_id=info["media_id"], video_id=info["media_id"] if is_video else None,
            timestamp=info["timestamp"], similarity=similarity, kind=info["kind"], name=info["name"],
            frame_url=f"/frame/{info['frame_id']}", thumb_url=f"/thumb/{info['frame_id']}",
            media_url=media_url(info["media_id"], info["kind"]),
            moments=[moment] if options.group_videos and is_video else None)
        if options.group_videos and is_video:
            by_video[info["media_id"]] = result
        results.append(result)
    return results


def known_rows(gateway: Gateway, rows: list[int]) -> dict[int, sqlite3.Row]:
    return catalog.frames_for_rows(gateway.catalog(), rows)


async def search_vector(gateway: Gateway, vector: np.ndarray, options: SearchOptions,
                        exclude_frames: frozenset[int] = frozenset()) -> tuple[list[SearchResult], bool]:
    """The page ``[offset, offset + k)`` of results for ``vector`` and whether a shard was missing."""
    allow_rows = None
    if options.filters.active:
        f = options.filters
        allow_rows = await anyio.to_thread.run_sync(
            lambda: catalog.rows_matching(gateway.catalog(), f.kind, f.folder, f.created_from, f.created_to,
                                          f.collection))
        if not allow_rows:
            return [], False
    wanted = options.offset + options.k
    # Dropped rows and grouped frames need headroom; grow it while the shards still have more.
    fetch = min(MAX_INDEX_K, wanted * (4 if options.group_videos else 2) + len(exclude_frames) + 16)
    while True:
        with timed("index"):
            hits = await query_shards(gateway, vector, fetch, allow_rows, options.ef)
        known = await anyio.to_thread.run_sync(known_rows, gateway, hits.rows)
        results = to_results(hits, known, options, exclude_frames)
        below_threshold = (options.min_similarity is not None and hits.similarities
                           and hits.similarities[-1] < options.min_similarity)
        if len(results) >= wanted or hits.exhausted or below_threshold or fetch >= MAX_INDEX_K:
            return results[options.offset:wanted], hits.partial
        fetch = min(MAX_INDEX_K, fetch * 4)


async def run_search(gateway: Gateway, query: str, vector: np.ndarray, options: SearchOptions,
                     exclude_frames: frozenset[int] = frozenset()) -> SearchResponse:
    results, partial = await search_vector(gateway, unit(vector), options, exclude_frames)
    return SearchResponse(query=query, k=options.k, offset=options.offset, results=results, partial=partial)
