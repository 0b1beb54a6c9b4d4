"""Search: a query vector fanned out to every index shard, merged, joined with the catalog.

The index knows rows and similarities only. Rows the catalog does not know (a deleted media item, a
whole-video vector, a frame whose catalog write is not visible yet) are dropped, so the gateway asks
the shards for more than it needs and asks again with a larger k until it has enough results or the
shards have nothing more. Filters become an ``allow_rows`` list computed from the catalog and are
applied inside the index search, so a filtered search still returns k results.

A search by words also looks for them in the text read in frames (OCR; shared/text_match.py): frames whose
text holds the query's words well enough are ranked by that, and the two rankings are fused by reciprocal
rank fusion (score = 1/(60 + CLIP rank) + search_text_weight/(60 + text rank)), so a photo of a sign saying
the words comes first; a query whose words no text holds ranks by CLIP alone. ``mode`` picks visual
(CLIP only), text (text matches only) or both.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Literal

import anyio
import numpy as np

from services.gateway.state import Gateway
from services.gateway.timing import timed
from shared import catalog, text_match
from shared.errors import (
    BadInput,
    Conflict,
    InvalidParameter,
    NotFound,
    TooLarge,
    Unavailable,
    too_large_message,
)
from shared.query_terms import QueryTerms, parse_query
from shared.schemas import (
    CompareHit,
    CompareRun,
    MatchedText,
    Moment,
    SearchCompareRequest,
    SearchCompareResponse,
    SearchResponse,
    SearchResult,
    TextLine,
    frame_url,
    media_url,
    thumb_url,
)
from shared.vectors import OnZero, ZeroVector, unit

MAX_INDEX_K = 10_000  # IndexSearchRequest's limit
MAX_EF = 10_000
MAX_QUERY_CHARS = 1000
MAX_NEAR_KM = 20_038  # half the Earth's circumference: everywhere
DAY_S = 86_400
ZERO_QUERY = "the query gives a zero vector; nothing to compare with"
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009): ranks far down count little either way
TEXT_CANDIDATES = 200  # frames the trigram index proposes for scoring, best bm25 first (the fusion gives
# little weight to text ranks beyond that)
SearchMode = Literal["visual", "text", "both"]


@dataclass(frozen=True)
class Filters:
    """What search and browsing narrow the library to: catalog.media_conditions' keyword arguments."""
    kind: str | None = None  # "image" | "video"
    folder: str | None = None
    created_from: float | None = None  # when it was added
    created_to: float | None = None
    collection: int | None = None
    taken_from: catalog.TakenBound | None = None  # when it was taken (taken_bound)
    taken_to: catalog.TakenBound | None = None
    camera: str | None = None
    near: catalog.Near | None = None
    library: int | None = None  # a library's id (GET /libraries)

    def conditions(self) -> dict[str, object]:
        """As keyword arguments of catalog.media_conditions (and rows_matching, timeline_page)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def active(self) -> bool:
        return any(value is not None for value in self.conditions().values())


def instant(text: str | None, name: str) -> float | None:
    """Epoch seconds of an ISO 8601 date-time (UTC when it has no offset; a date is its midnight);
    InvalidParameter, naming the parameter ``name``, for anything else (a bare number included)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"{name} must be an ISO 8601 date-time such as 2024-03-10T14:30:00Z, "
                               f"not {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def taken_bound(text: str | None, name: str, end: bool = False) -> catalog.TakenBound | None:
    """A bound on the capture time from an ISO 8601 date or date-time (``name``: the parameter, for the
    message). A date means the whole day: as an ``end`` (exclusive) it is the start of the next day. A date
    or date-time without offset is a wall clock, compared with each item's own; one with an offset is an
    instant."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        return catalog.TakenBound(start + (DAY_S if end else 0), wall_clock=True)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"{name} must be an ISO 8601 date (2024-03-10) or date-time (2024-03-10T14:30:00, "
                               f"with an offset such as +01:00 for an instant), not {text!r}") from None
    if moment.tzinfo is not None:
        return catalog.TakenBound(moment.timestamp(), wall_clock=False)
    return catalog.TakenBound(moment.replace(tzinfo=UTC).timestamp(), wall_clock=True)


def near_point(text: str | None) -> catalog.Near | None:
    """``near=lat,lon,km`` (decimal degrees, kilometres) as a catalog.Near; InvalidParameter if malformed."""
    if text is None:
        return None
    usage = "near must be lat,lon,km in decimal degrees and kilometres, e.g. near=48.8584,2.2945,5"
    try:
        lat, lon, km = (float(part) for part in text.split(","))
    except ValueError:
        raise InvalidParameter(f"{usage}; not {text!r}") from None
    if not all(math.isfinite(value) for value in (lat, lon, km)):
        raise InvalidParameter(f"{usage}; not {text!r}")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidParameter(f"near: the latitude must be within ±90 and the longitude within ±180, not {text!r}")
    if not 0 < km <= MAX_NEAR_KM:
        raise InvalidParameter(f"near: the distance must be more than 0 and at most {MAX_NEAR_KM:g} km, not {km:g}")
    return catalog.Near(lat, lon, km)


def check_filters(gateway: Gateway, filters: Filters) -> Filters:
    """``filters`` if what they name exists (a collection filter must name one), else NotFound."""
    if filters.collection is not None and catalog.get_collection(gateway.catalog(), filters.collection) is None:
        raise NotFound(f"no collection with id {filters.collection}")
    return filters


@dataclass(frozen=True)
class SearchOptions:
    k: int = 20
    offset: int = 0
    min_similarity: float | None = None
    group_videos: bool = False
    filters: Filters = field(default_factory=Filters)
    ef: int | None = None  # the index's search breadth (None: its default)
    mode: SearchMode = "both"  # by words: CLIP, the text read in frames, or both fused


@dataclass
class ShardHits:
    rows: list[int]
    similarities: list[float]
    partial: bool  # some shard did not answer
    exhausted: bool  # every shard that answered returned all it had


# -- the query -----------------------------------------------------------------------------------------
def search_options(gateway: Gateway, k: int = 20, offset: int = 0, min_similarity: float | None = None,
                   filters: Filters | None = None, group_videos: bool = False, ef: int | None = None,
                   mode: SearchMode = "both") -> SearchOptions:
    """Options checked against the settings and the catalog (a collection filter must name one)."""
    if k > gateway.settings.search_max_k:
        raise InvalidParameter(f"k must be between 1 and {gateway.settings.search_max_k}")
    filters = check_filters(gateway, filters or Filters())
    return SearchOptions(k=k, offset=offset, min_similarity=min_similarity, group_videos=group_videos,
                         filters=filters, ef=ef, mode=mode)


def query_text(q: str) -> str:
    """The words to search for, trimmed; InvalidParameter when empty or too long."""
    text = q.strip()
    if not text:
        raise InvalidParameter("the query q is empty: type what to look for")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidParameter(f"the query q is longer than {MAX_QUERY_CHARS} characters")
    return text


def check_query_image_size(gateway: Gateway, size: int | None) -> None:
    """Refuse a query image over MEDIASEARCH_MAX_QUERY_IMAGE_BYTES (``size`` None: not known yet). The
    request body was already bounded as it streamed in (body_limits.py); this is the image part's own size."""
    if size is not None and size > gateway.settings.max_query_image_bytes:
        raise TooLarge(too_large_message("the query image", gateway.settings.max_query_image_bytes,
                                         "MEDIASEARCH_MAX_QUERY_IMAGE_BYTES"))


def direction(vector: np.ndarray) -> np.ndarray:
    """A query vector scaled to unit length; a query with no direction matches nothing (BadInput)."""
    try:
        return unit(vector, OnZero.RAISE)
    except ZeroVector:
        raise BadInput(ZERO_QUERY) from None


def query_terms(text: str) -> QueryTerms:
    """The terms of a query (query_text's): what to look for and what to subtract; InvalidParameter when
    nothing is left to look for."""
    try:
        return parse_query(text)
    except ValueError as error:
        raise InvalidParameter(str(error)) from None


async def words_vector(gateway: Gateway, terms: QueryTerms) -> np.ndarray:
    """The words' direction minus each subtracted concept's (rclip's arithmetic), in one embedder call (its
    text vectors are unit vectors)."""
    vectors = await gateway.embedder.embed_texts([terms.text, *terms.minus])
    return direction(vectors[0] - vectors[1:].sum(axis=0))


def frame_vector(gateway: Gateway, frame_id: int) -> np.ndarray:
    """The stored vector of a frame ("more like this"), read from the vectors store."""
    frame = catalog.get_frame(gateway.catalog(), frame_id)
    if frame is None:
        raise NotFound(f"no frame with id {frame_id}")
    row = frame["vector_row"]
    if row is None:
        raise Conflict(f"frame {frame_id} is not embedded yet; try again when its job is done")
    store = gateway.vectors_or_none()
    if store is None:
        raise Conflict("no vectors have been stored yet")
    vectors, _ = store.view()
    if row >= len(vectors):
        raise Conflict(f"frame {frame_id}'s vector is not committed yet")
    return np.array(vectors[row], dtype=np.float32)


# -- the index ------------------------------------------------------------------------------------------
async def query_shards(gateway: Gateway, vector: np.ndarray, k: int, allow_rows: list[int] | None,
                       ef: int | None = None) -> ShardHits:
    """Ask every shard at once; a shard that fails makes the answer partial, all failing is Unavailable."""
    asked = await gateway.shards.search(vector, k, ef, allow_rows)
    if not asked.answers:
        raise Unavailable("no index shard answered: " + "; ".join(str(f) for f in asked.failures))
    best: dict[int, float] = {}
    exhausted = True
    for answer in asked.answers:
        exhausted &= len(answer.rows) < k
        for row, similarity in zip(answer.rows, answer.similarities):
            best[row] = max(similarity, best.get(row, -2.0))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return ShardHits([r for r, _ in ranked], [s for _, s in ranked], asked.partial, exhausted)


# -- the words read in frames ------------------------------------------------------------------------
@dataclass(frozen=True)
class TextHit:
    row: int  # the frame's vector row
    frame_id: int
    match: text_match.TextMatch


def find_text(gateway: Gateway, text: str, filters: Filters) -> list[TextHit]:
    """Frames whose text holds the query's words well enough (text_match_min_quality), best first."""
    words = text_match.query_words(text)
    match = text_match.candidates_query(words)
    if match is None:
        return []
    candidates = catalog.text_candidates(gateway.catalog(), match, TEXT_CANDIDATES, **filters.conditions())
    found = [TextHit(candidate.vector_row, candidate.frame_id, scored) for candidate in candidates
             if (scored := text_match.score(words, candidate.search_text, gateway.settings.text_match_min_quality))]
    return sorted(found, key=lambda hit: -hit.match.quality)  # stable: bm25's order among equals


def with_matched_text(gateway: Gateway, page: list[SearchResult], text: dict[int, TextHit]) -> list[SearchResult]:
    """The page's results found by their text, with the words and the lines they were found in (read for
    the page alone: a frame's lines with their boxes are the bulk of its text)."""
    hits = {hit.frame_id: hit for hit in text.values()}
    found = [result for result in page if result.frame_id in hits]
    lines = catalog.frames_text(gateway.catalog(), [result.frame_id for result in found]) if found else {}
    for result in found:
        match, read = hits[result.frame_id].match, lines.get(result.frame_id, [])  # read again meanwhile: gone
        result.matched_text = MatchedText(words=match.words, quality=round(match.quality, 4),
                                          lines=[TextLine(**read[index]) for index in match.lines if index < len(read)])
    return page


def stored_similarities(gateway: Gateway, vector: np.ndarray, rows: list[int]) -> dict[int, float]:
    """Cosine of the query with the stored vectors of ``rows`` (text matches CLIP did not rank)."""
    store = gateway.vectors_or_none()
    if store is None or not rows:
        return {}
    vectors, _ = store.view()
    present = [row for row in rows if row < len(vectors)]
    similarities = np.asarray(vectors[present], dtype=np.float32) @ vector if present else []
    return {row: float(similarity) for row, similarity in zip(present, similarities)}


def fuse(hits: ShardHits, text: list[TextHit], text_similarities: dict[int, float], weight: float) -> ShardHits:
    """CLIP's ranking and the text ranking as one, by reciprocal rank fusion."""
    fused: dict[int, float] = {row: 1 / (RRF_K + rank) for rank, row in enumerate(hits.rows, 1)}
    similarity = {**text_similarities, **dict(zip(hits.rows, hits.similarities))}
    for rank, hit in enumerate(text, 1):
        if hit.row in similarity:
            fused[hit.row] = fused.get(hit.row, 0.0) + weight / (RRF_K + rank)
    order = sorted(fused, key=lambda row: -fused[row])
    return ShardHits(order, [similarity[row] for row in order], hits.partial, hits.exhausted)


def to_results(hits: ShardHits, known: dict[int, sqlite3.Row], options: SearchOptions,
               exclude_frames: frozenset[int], text: dict[int, TextHit] | None = None) -> list[SearchResult]:
    """Results in rank order; with ``group_videos`` the frames of one video become one result. ``text``: the
    rows found by their text (min_similarity does not apply to them)."""
    text = text or {}
    results: list[SearchResult] = []
    by_video: dict[int, SearchResult] = {}
    for row, similarity in zip(hits.rows, hits.similarities):
        info = known.get(row)
        if info is None or info["frame_id"] in exclude_frames:
            continue
        if options.min_similarity is not None and similarity < options.min_similarity and row not in text:
            if not text:
                break
            continue
        is_video = info["kind"] == "video"
        moment = Moment(frame_id=info["frame_id"], timestamp=info["timestamp"], similarity=similarity)
        if options.group_videos and is_video and info["media_id"] in by_video:
            by_video[info["media_id"]].moments.append(moment)
            continue
        result = SearchResult(
            frame_id=info["frame_id"], media_id=info["media_id"], video_id=info["media_id"] if is_video else None,
            timestamp=info["timestamp"], similarity=similarity, kind=info["kind"], name=info["name"],
            frame_url=frame_url(info["frame_id"]), thumb_url=thumb_url(info["frame_id"]),
            media_url=media_url(info["media_id"], info["kind"]),
            moments=[moment] if options.group_videos and is_video else None)
        if options.group_videos and is_video:
            by_video[info["media_id"]] = result
        results.append(result)
    return results


def known_rows(gateway: Gateway, rows: list[int]) -> dict[int, sqlite3.Row]:
    return catalog.frames_for_rows(gateway.catalog(), rows)


async def search_vector(gateway: Gateway, vector: np.ndarray, options: SearchOptions,
                        exclude_frames: frozenset[int] = frozenset(),
                        text: list[TextHit] | None = None) -> tuple[list[SearchResult], bool]:
    """The page ``[offset, offset + k)`` of results for ``vector`` and whether a shard was missing; ``text``:
    frames found by their text, fused with the index's ranking (mode both) or alone (mode text)."""
    text_rows = {hit.row: hit for hit in text or []}
    text_similarities = (await anyio.to_thread.run_sync(stored_similarities, gateway, vector, list(text_rows))
                         if text_rows else {})
    if options.mode == "text":
        hits = fuse(ShardHits([], [], False, True), text or [], text_similarities, 1.0)
        known = await anyio.to_thread.run_sync(known_rows, gateway, hits.rows, limiter=gateway.search_reads)
        page = to_results(hits, known, options, exclude_frames, text_rows)[options.offset:options.offset + options.k]
        return await anyio.to_thread.run_sync(with_matched_text, gateway, page, text_rows,
                                              limiter=gateway.search_reads), False
    allow_rows = None
    if options.filters.active:
        f = options.filters
        allow_rows = await anyio.to_thread.run_sync(
            lambda: catalog.rows_matching(gateway.catalog(), **f.conditions()))
        if not allow_rows:
            return [], False
    wanted = options.offset + options.k
    # Dropped rows and grouped frames need headroom; grow it while the shards still have more.
    fetch = min(MAX_INDEX_K, wanted * (4 if options.group_videos else 2) + len(exclude_frames) + 16)
    while True:
        with timed("index"):
            hits = await query_shards(gateway, vector, fetch, allow_rows, options.ef)
        # CLIP's own tail says whether more would pass the threshold (fused text rows may sit anywhere)
        below_threshold = (options.min_similarity is not None and hits.similarities
                           and hits.similarities[-1] < options.min_similarity)
        if text:
            hits = fuse(hits, text, text_similarities, gateway.settings.search_text_weight)
        known = await anyio.to_thread.run_sync(known_rows, gateway, hits.rows, limiter=gateway.search_reads)
        results = to_results(hits, known, options, exclude_frames, text_rows)
        if len(results) >= wanted or hits.exhausted or below_threshold or fetch >= MAX_INDEX_K:
            page = results[options.offset:wanted]
            if text_rows:
                page = await anyio.to_thread.run_sync(with_matched_text, gateway, page, text_rows,
                                                      limiter=gateway.search_reads)
            return page, hits.partial
        fetch = min(MAX_INDEX_K, fetch * 4)


async def run_search(gateway: Gateway, query: str, vector: np.ndarray, options: SearchOptions,
                     exclude_frames: frozenset[int] = frozenset(), text: list[TextHit] | None = None) -> SearchResponse:
    results, partial = await search_vector(gateway, direction(vector), options, exclude_frames, text)
    return SearchResponse(query=query, k=options.k, offset=options.offset, results=results, partial=partial)


# -- the three ways to search -------------------------------------------------------------------------
async def search_text(gateway: Gateway, text: str, options: SearchOptions) -> SearchResponse:
    """By words (``text`` as query_text returns it, minus terms and all): CLIP and the text read in frames,
    as ``options.mode`` says. The text is looked up while the query is embedded."""
    terms = query_terms(text)
    found: list[TextHit] = []

    async def look_up_text() -> None:
        found.extend(await anyio.to_thread.run_sync(find_text, gateway, terms.text, options.filters,
                                                    limiter=gateway.search_reads))

    try:
        async with anyio.create_task_group() as both:
            if options.mode != "visual" and text_match.query_words(terms.text):
                both.start_soon(look_up_text)
            with timed("embed"):
                vector = await (words_vector(gateway, terms) if terms.minus else
                                gateway.embedder.embed_text(terms.text))
    except ExceptionGroup as failed:  # anyio groups what either raised: answer as the first error says
        raise failed.exceptions[0] from None
    return await run_search(gateway, text, vector, options, text=found)


async def search_image(gateway: Gateway, data: bytes, name: str, text: str | None,
                       options: SearchOptions, text_weight: float = 0.5) -> SearchResponse:
    """By an example image; with ``text`` (query_text's, minus terms and all), by the image and the words
    together, the words' direction weighted ``text_weight`` and the image's the rest."""
    check_query_image_size(gateway, len(data))
    if not data:
        raise BadInput("the query image is empty (0 bytes)")
    terms = query_terms(text) if text is not None else None
    with timed("embed"):
        vector = direction(await gateway.embedder.embed_query_image(data, name))
        if terms is not None:
            vector = (1 - text_weight) * vector + text_weight * await words_vector(gateway, terms)
    label = f"image:{name}" + (f" + {text}" if text else "")
    return await run_search(gateway, label, vector, options)


async def search_similar(gateway: Gateway, frame_id: int, options: SearchOptions) -> SearchResponse:
    """More like this: the frame's own stored vector as the query (the frame itself is left out)."""
    vector = await anyio.to_thread.run_sync(frame_vector, gateway, frame_id)
    return await run_search(gateway, f"similar:{frame_id}", vector, options, exclude_frames=frozenset({frame_id}))


# -- validation: the graph against an exact scan (mediasearch bench) -----------------------------------
TIE_TOLERANCE = 1e-5  # float32 dot products of the graph's re-ranking and the exact scan may differ this much
async def compare_with_exact(gateway: Gateway, request: SearchCompareRequest) -> SearchCompareResponse:
    """Encode the words once, then ask every shard for its graph answer and its exact top k at each
    ef_search; recall is the share of the merged exact top k the merged graph answer holds."""
    below = [ef for ef in request.ef_search if ef < request.k]
    if below:
        raise InvalidParameter(f"ef_search {below[0]} is below k={request.k}: the graph search keeps ef candidates, "
                               "so it cannot return k results from fewer; use ef_search >= k")
    text = query_text(request.q)
    start = time.perf_counter()
    vector = direction(await gateway.embedder.embed_text(text))
    encode_ms = (time.perf_counter() - start) * 1000
    runs = []
    for ef in dict.fromkeys(request.ef_search):
        asked = await gateway.shards.compare(vector, request.k, ef, request.repeat)
        if asked.partial or not asked.answers:
            raise Unavailable("an index shard did not answer: " + "; ".join(str(f) for f in asked.failures))
        hnsw = _merged([(a.hnsw.rows, a.hnsw.similarities) for a in asked.answers], request.k)
        exact = _merged([(a.exact.rows, a.exact.similarities) for a in asked.answers], request.k)
        known = await anyio.to_thread.run_sync(known_rows, gateway, [row for row, _ in hnsw + exact])
        runs.append(CompareRun(
            ef_search=ef, recall=_recall(hnsw, exact),
            hnsw_ms=[max(times) for times in zip(*(a.hnsw_ms for a in asked.answers))],
            brute_ms=[max(times) for times in zip(*(a.exact_ms for a in asked.answers))],
            hnsw_results=[_hit(row, sim, known) for row, sim in hnsw],
            brute_results=[_hit(row, sim, known) for row, sim in exact]))
    return SearchCompareResponse(query=text, k=request.k, encode_ms=encode_ms, shards=len(gateway.shards.urls),
                                 runs=runs)


def _recall(found: list[tuple[int, float]], exact: list[tuple[int, float]]) -> float:
    """The share of the exact top k the graph found, ties counted (as ANN benchmarks do): a hit as similar as
    the exact k-th is one of the true k nearest, whichever of equal rows (identical frames) each side kept."""
    if not exact:
        return 1.0
    kth = exact[-1][1] - TIE_TOLERANCE
    return min(len(exact), sum(1 for _, similarity in found if similarity >= kth)) / len(exact)


def _merged(answers: list[tuple[list[int], list[float]]], k: int) -> list[tuple[int, float]]:
    pairs = [pair for rows, sims in answers for pair in zip(rows, sims)]
    return sorted(pairs, key=lambda pair: -pair[1])[:k]


def _hit(row: int, similarity: float, known: dict[int, sqlite3.Row]) -> CompareHit:
    info = known.get(row)
    if info is None:
        return CompareHit(row=row, similarity=similarity)
    return CompareHit(row=row, similarity=similarity, frame_id=info["frame_id"], media_id=info["media_id"],
                      name=info["name"])
