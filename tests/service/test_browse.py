"""Capture metadata through the gateway in-process (a real Redis, a real SQLite catalog): GET /media/{id}'s
capture details, browsing the library with GET /media (keyset pages, sort orders, the filters), the
filters' validation on browse and search, the catalog side of filtered search, and one JPEG with EXIF
taken through the real ingest pipeline to the API."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from PIL import Image

from services.ingest_worker.pipeline import IngestContext, ingest_item
from shared import catalog
from shared.media_store import MediaStore
from tests.samples import PHOTOS
from tests.stand_ins import StandInEmbedder

ITEM_FIELDS = {"id", "name", "kind", "taken_at", "camera", "created_at", "width", "height", "duration", "frame_id",
               "thumb_url", "frame_url", "media_url"}


def epoch(*fields: int, offset: int | None = None) -> float:
    """A wall clock at ``offset`` minutes (None: read as UTC, as the catalog stores an unknown offset)."""
    return datetime(*fields, tzinfo=UTC if offset is None else timezone(timedelta(minutes=offset))).timestamp()


class Library:
    """Media rows put into the gateway's catalog with the catalog's own functions, as the worker leaves them."""

    def __init__(self, conn):
        self.conn = conn
        self.count = 0

    def add(self, name: str, taken: tuple[float, int | None] | None = None, camera: str | None = None,
            gps: tuple[float, float] | None = None, kind: str = "image", added: float | None = None,
            indexed: bool = True, **capture) -> int:
        self.count += 1
        taken_at, offset = taken or (None, None)
        media_id = catalog.insert_media(
            self.conn, sha256=f"{self.count:064x}", kind=kind, mime="image/jpeg", path=f"media/{self.count}.jpg",
            name=name, folder=name.rpartition("/")[0], size=1000, width=640, height=480,
            duration=3.0 if kind == "video" else None, status="pending",
            created_at=added if added is not None else epoch(2025, 1, 1) + self.count,
            taken_at=taken_at, taken_offset=offset, taken_at_source="exif" if taken else None, camera=camera,
            gps_lat=gps and gps[0], gps_lon=gps and gps[1], **capture)
        frame = catalog.insert_frame(self.conn, media_id, f"frames/{self.count}.jpg", f"thumbs/{self.count}.jpg",
                                     640, 480, 0.0 if kind == "video" else None)
        catalog.set_frame_rows(self.conn, {frame: 100 + self.count})
        if indexed:
            catalog.mark_media_indexed(self.conn, media_id)
        return media_id


@pytest.fixture
def library(client) -> Library:
    return Library(client.app.state.gateway.catalog())


def ids(client, **params) -> list[int]:
    reply = client.get("/media", params=params)
    assert reply.status_code == 200, reply.text
    return [item["id"] for item in reply.json()["items"]]


# -- GET /media/{id} ----------------------------------------------------------------------------------------
def test_media_info_says_when_where_and_with_what_it_was_taken(client, library):
    paris = library.add("trip/paris.jpg", (epoch(2024, 3, 10, 15, 22, 5, offset=60), 60), "Canon EOS R5",
                        (48.8584, 2.2945), lens="RF24-105mm F4 L IS USM", added=epoch(2025, 2, 1))
    no_offset = library.add("old/scan.jpg", (epoch(2019, 8, 4, 7, 5), None), "Apple iPhone 12")
    unknown = library.add("legacy/before-step-7.jpg")

    info = client.get(f"/media/{paris}").json()
    assert info["taken_at"] == "2024-03-10T15:22:05+01:00" and info["taken_at_source"] == "exif"
    assert (info["camera"], info["lens"]) == ("Canon EOS R5", "RF24-105mm F4 L IS USM")
    assert info["gps"] == {"lat": 48.8584, "lon": 2.2945}
    assert info["created_at"] == epoch(2025, 2, 1)  # still when it was added
    # Without an offset: the wall clock as the camera wrote it, no offset invented.
    assert client.get(f"/media/{no_offset}").json()["taken_at"] == "2019-08-04T07:05:00"
    blank = client.get(f"/media/{unknown}").json()
    assert [blank[key] for key in ("taken_at", "taken_at_source", "camera", "lens", "gps")] == [None] * 5


# -- GET /media: the library without a query ------------------------------------------------------------------
def test_pages_go_newest_first_by_capture_time_without_repeats_or_gaps(client, library):
    march = library.add("a/march.jpg", (epoch(2024, 3, 10, 12), None))
    may = library.add("a/may.jpg", (epoch(2024, 5, 1, 9, 30, offset=120), 120))
    same_moment = [library.add(f"a/burst-{i}.jpg", (epoch(2024, 4, 2, 8), None)) for i in range(3)]
    legacy = library.add("a/legacy.jpg", added=epoch(2024, 4, 20))  # no capture time: sorted by when added
    video = library.add("a/clip.mp4", (epoch(2023, 12, 31, 23, 59), None), kind="video")
    library.add("a/still-embedding.jpg", (epoch(2024, 6, 1), None), indexed=False)  # not listed until indexed
    newest_first = [may, legacy, *reversed(same_moment), march, video]

    pages, cursor = [], None
    while True:
        reply = client.get("/media", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:]]

    items = {item["id"]: item for item in client.get("/media").json()["items"]}
    assert set(items[may]) == ITEM_FIELDS
    assert items[may]["taken_at"] == "2024-05-01T09:30:00+02:00" and items[legacy]["taken_at"] is None
    assert items[video]["media_url"] == f"/video/{video}" and items[video]["duration"] == 3.0
    assert items[march]["thumb_url"] == f"/thumb/{items[march]['frame_id']}"
    assert ids(client, order="asc") == list(reversed(newest_first))
    added_first = sorted(set(newest_first) - {legacy}, reverse=True) + [legacy]  # the others were added later
    assert ids(client, sort="added") == added_first


def test_a_cursor_is_a_place_in_the_order_not_an_offset(client, library):
    first, second, third = (library.add(f"b/{i}.jpg", (epoch(2024, 1, 10 - i), None)) for i in range(3))
    page = client.get("/media", params={"limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [first]
    newer = library.add("b/newer.jpg", (epoch(2024, 2, 1), None))  # added meanwhile, before the cursor
    catalog.delete_media(library.conn, second)
    rest = client.get("/media", params={"limit": 5, "cursor": page["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == [third]
    assert ids(client) == [newer, first, third]


def test_capture_filters_use_the_wall_clock_where_each_was_taken(client, library):
    # 00:30 on 11 March in Paris is still 10 March in UTC: by its own date it belongs to the 11th.
    paris_night = library.add("c/paris-night.jpg", (epoch(2024, 3, 11, 0, 30, offset=60), 60), "Canon EOS R5",
                              (48.8584, 2.2945))
    new_york = library.add("c/new-york.jpg", (epoch(2024, 3, 10, 20, 0, offset=-300), -300), "Apple iPhone 12",
                           (40.7128, -74.0060))
    no_offset = library.add("c/scan.jpg", (epoch(2024, 3, 10, 9, 0), None), "canon eos r5")
    clip = library.add("c/clip.mp4", (epoch(2024, 3, 10, 10), None), "Canon EOS R5", (48.86, 2.35), kind="video")
    library.add("c/legacy.jpg")

    assert ids(client, taken_after="2024-03-10", taken_before="2024-03-10", type="image") == [new_york, no_offset]
    assert ids(client, taken_after="2024-03-11") == [paris_night]
    # With an offset, a bound is an instant: the Paris photo was taken at 23:30 UTC on the 10th.
    assert ids(client, taken_after="2024-03-10T23:00:00+00:00") == [new_york, paris_night]
    assert ids(client, taken_before="2024-03-10T09:00:00") == []  # before: not at
    assert ids(client, camera="CANON eos R5", type="image") == [paris_night, no_offset]
    assert ids(client, near="48.8566,2.3522,10", type="image") == [paris_night]  # 4 km from the centre of Paris
    assert ids(client, near="48.8566,2.3522,6000") == [new_york, paris_night, clip]  # New York: 5,840 km
    assert ids(client, near="48.8566,2.3522,5000") == [paris_night, clip]


@pytest.mark.parametrize("params, fragment", [
    ({"taken_after": "yesterday"}, "taken_after must be an ISO 8601 date"),
    ({"taken_before": "2024-13-01"}, "taken_before must be an ISO 8601 date"),
    ({"near": "48.8,2.3"}, "near must be lat,lon,km"),
    ({"near": "north,east,5"}, "near must be lat,lon,km"),
    ({"near": "nan,2.3,5"}, "near must be lat,lon,km"),
    ({"near": "91,0,5"}, "latitude must be within ±90"),
    ({"near": "48.8,2.3,0"}, "distance must be more than 0"),
    ({"camera": ""}, "camera"),
])
def test_bad_filters_are_a_readable_422_for_browse_and_search(client, params, fragment):
    for path, extra in (("/media", {}), ("/search", {"q": "a dog"})):
        reply = client.get(path, params={**extra, **params})
        assert reply.status_code == 422, (path, reply.text)
        assert fragment in reply.json()["detail"], (path, reply.text)


@pytest.mark.parametrize("params, fragment", [
    ({"cursor": "not-a-cursor"}, "cursor is not one this listing gave"),
    ({"sort": "size"}, "sort"),
    ({"order": "up"}, "order"),
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
])
def test_bad_browse_parameters_are_a_readable_422(client, params, fragment):
    reply = client.get("/media", params=params)
    assert reply.status_code == 422 and fragment in reply.json()["detail"]


def test_the_ends_of_the_calendar_are_answered_not_crashed_on(client, library):
    library.add("h/a.jpg", (epoch(2024, 1, 1), None))
    assert len(ids(client, taken_after="0001-01-01", taken_before="9999-12-31")) == 1
    assert ids(client, taken_after="9999-12-31T23:59:59+14:00") == []
    huge = base64.urlsafe_b64encode(b"taken|1.0|99999999999999999999999").decode()
    assert client.get("/media", params={"cursor": huge}).status_code == 422


def test_a_cursor_of_one_sort_is_refused_by_another(client, library):
    for i in range(2):
        library.add(f"d/{i}.jpg", (epoch(2024, 1, 1 + i), None))
    cursor = client.get("/media", params={"sort": "added", "limit": 1}).json()["next_cursor"]
    reply = client.get("/media", params={"sort": "taken", "cursor": cursor})
    assert reply.status_code == 422 and "same sort" in reply.json()["detail"]


def test_valid_capture_filters_reach_the_search_itself(client):
    reply = client.get("/search", params={"q": "a dog", "taken_after": "2024-03-10", "camera": "Canon EOS R5",
                                          "near": "48.8566,2.3522,10", "taken_before": "2024-03-10T12:00:00+01:00"})
    assert reply.status_code == 503 and "embedder is unavailable" in reply.json()["detail"]


def test_search_filters_give_the_index_only_the_matching_rows(library):
    """Search applies filters inside the index as the allowed vector rows: the catalog's side of it."""
    paris = library.add("e/paris.jpg", (epoch(2024, 3, 10, 12), None), "Canon EOS R5", (48.8584, 2.2945))
    library.add("e/rome.jpg", (epoch(2024, 3, 10, 13), None), "Canon EOS R5", (41.9028, 12.4964))
    library.add("e/old.jpg", (epoch(2010, 3, 10, 12), None), "Canon EOS R5", (48.8584, 2.2945))
    rows = catalog.rows_matching(library.conn, taken_from=catalog.TakenBound(epoch(2024, 1, 1), True),
                                 camera="canon eos r5", near=catalog.Near(48.85, 2.35, 20), kind="image")
    assert rows == [frame["vector_row"] for frame in catalog.frames_of_media(library.conn, paris)]


def test_months_count_media_by_the_month_where_they_were_taken(client, library):
    library.add("g/new-year-in-tokyo.jpg", (epoch(2024, 1, 1, 0, 30, offset=540), 540))  # still 2023 in UTC
    library.add("g/march.jpg", (epoch(2024, 3, 10), None), "Canon EOS R5")
    library.add("g/march-too.jpg", (epoch(2024, 3, 31, 23, 59), None))
    library.add("g/legacy.jpg", added=epoch(2022, 5, 5))  # no capture time: the month it was added
    months = client.get("/media/months").json()["months"]
    assert months == [{"month": "2024-03", "media": 2}, {"month": "2024-01", "media": 1},
                      {"month": "2022-05", "media": 1}]
    assert client.get("/media/months", params={"camera": "canon eos r5"}).json()["months"] == [
        {"month": "2024-03", "media": 1}]
    assert client.get("/media/months", params={"near": "x"}).status_code == 422


def test_cameras_lists_every_camera_most_used_first(client, library):
    for camera in ("Apple iPhone 12", "Canon EOS R5", "apple iphone 12", None):
        library.add(f"f/{camera}.jpg", (epoch(2024, 1, 1), None), camera)
    cameras = client.get("/cameras").json()["cameras"]
    assert [(c["camera"].lower(), c["media"]) for c in cameras] == [("apple iphone 12", 2), ("canon eos r5", 1)]


# -- the real pipeline: a JPEG with EXIF, from its item to the API -------------------------------------------------
def test_a_photo_ingested_by_the_pipeline_is_browsable_by_its_capture_details(client):
    settings = client.app.state.gateway.settings.model_copy(update={"disk_reserve_bytes": 0})
    block = Image.Exif()
    block[0x010F], block[0x0110] = "Canon", "Canon EOS R5"
    block.get_ifd(0x8769).update({0x9003: "2021:07:04 18:30:00", 0x9011: "-04:00", 0xA434: "RF50mm F1.8 STM"})
    block.get_ifd(0x8825).update({1: "N", 2: (40.0, 42.0, 46.08), 3: "W", 4: (74.0, 0.0, 21.6)})
    photo = io.BytesIO()
    Image.open(PHOTOS / "n02099601_golden_retriever.JPEG").save(photo, "JPEG", exif=block)
    job_id = catalog.new_job_id()
    (settings.uploads_dir / job_id).mkdir(parents=True)
    (settings.uploads_dir / job_id / "0").write_bytes(photo.getvalue())
    ctx = IngestContext(settings, catalog.connect(settings.catalog_path), MediaStore(settings.data_path),
                        StandInEmbedder(), httpx.Client(timeout=1))  # the embedding is not what is tested here
    try:
        item = catalog.create_job(ctx.conn, "upload", "", [("july/dog.jpg", f"uploads/{job_id}/0")], job_id=job_id)[1][0]
        outcome = ingest_item(item, ctx)
    finally:
        ctx.close()
    assert outcome.status == "indexed", outcome.reason

    info = client.get(f"/media/{outcome.media_id}").json()
    assert info["taken_at"] == "2021-07-04T18:30:00-04:00" and info["taken_at_source"] == "exif"
    assert (info["camera"], info["lens"]) == ("Canon EOS R5", "RF50mm F1.8 STM")
    assert info["gps"] == {"lat": pytest.approx(40.7128), "lon": pytest.approx(-74.006)}
    assert ids(client, taken_after="2021-07-04", taken_before="2021-07-04", camera="canon eos r5",
               near="40.7,-74.0,5") == [outcome.media_id]
