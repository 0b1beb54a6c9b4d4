"""Capture metadata (services/ingest_worker/metadata.py) read from real files: EXIF written by Pillow into
JPEG, TIFF, PNG, WebP, HEIC and AVIF (pillow-heif), videos tagged by ffmpeg as phones tag them, and the
broken dates real cameras write."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, TiffImagePlugin
from PIL.TiffImagePlugin import IFDRational

from services.ingest_worker.metadata import (
    Capture,
    camera_name,
    exif_gps,
    iso6709,
    read_capture,
    read_isolated,
)
from shared.safe_open import open_beneath
from shared.settings import Settings
from tests.samples import ffmpeg

pillow_heif.register_heif_opener()  # as services/ingest_worker/images.py does for the worker

FILE_TIME = datetime(2020, 6, 1, 12, 0, 0, tzinfo=UTC).timestamp()
FILE_CAPTURE = Capture(taken_at=FILE_TIME, taken_offset=0, taken_at_source="file")
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATE_TIME = 0x010F, 0x0110, 0x0132
ORIGINAL, ORIGINAL_OFFSET, DIGITIZED, LENS = 0x9003, 0x9011, 0x9004, 0xA434


def epoch(*fields: int, offset_minutes: int | None = None) -> float:
    """A wall clock at ``offset_minutes`` (None: read as UTC, as the catalog stores it)."""
    zone = UTC if offset_minutes is None else timezone(timedelta(minutes=offset_minutes))
    return datetime(*fields, tzinfo=zone).timestamp()


def exif(main: dict | None = None, details: dict | None = None, gps: dict | None = None) -> Image.Exif:
    block = Image.Exif()
    for tag, value in (main or {}).items():
        block[tag] = value
    for tag, value in (details or {}).items():
        block.get_ifd(EXIF_IFD)[tag] = value
    for tag, value in (gps or {}).items():
        block.get_ifd(GPS_IFD)[tag] = value
    return block


def photo(path: Path, block: Image.Exif | None, pil_format: str = "JPEG") -> Path:
    """A real 48×32 picture with ``block`` as its EXIF, modified at FILE_TIME."""
    image = Image.new("RGB", (48, 32), (200, 120, 40))
    image.save(path, pil_format, **({"exif": block} if block is not None else {}))
    os.utime(path, (FILE_TIME, FILE_TIME))
    return path


def read(path: Path, kind: str = "image") -> Capture:
    with open_beneath(path, [path.parent]) as source:
        return read_capture(source, kind)


PARIS = {1: "N", 2: (IFDRational(48, 1), IFDRational(51, 1), IFDRational(2940, 100)),
         3: "E", 4: (IFDRational(2, 1), IFDRational(17, 1), IFDRational(4020, 100))}


# -- photos --------------------------------------------------------------------------------------------
def test_a_phone_photo_gives_time_with_offset_camera_lens_and_position(tmp_path):
    block = exif({MAKE: "Canon", MODEL: "Canon EOS R5"},
                 {ORIGINAL: "2024:03:10 15:22:05", ORIGINAL_OFFSET: "+01:00", LENS: "RF24-105mm F4 L IS USM\x00"},
                 PARIS)
    capture = read(photo(tmp_path / "a.jpg", block))
    assert capture == Capture(taken_at=epoch(2024, 3, 10, 14, 22, 5), taken_offset=60, taken_at_source="exif",
                              camera="Canon EOS R5", lens="RF24-105mm F4 L IS USM",
                              gps_lat=pytest.approx(48 + 51 / 60 + 29.4 / 3600),
                              gps_lon=pytest.approx(2 + 17 / 60 + 40.2 / 3600))


def test_south_and_west_are_negative(tmp_path):
    gps = {**PARIS, 1: "S", 3: "W"}
    capture = read(photo(tmp_path / "a.jpg", exif(details={ORIGINAL: "2024:03:10 15:22:05"}, gps=gps)))
    assert capture.gps_lat == pytest.approx(-48.858167, abs=1e-6)
    assert capture.gps_lon == pytest.approx(-2.294500, abs=1e-6)


def test_without_an_offset_the_wall_clock_is_stored_as_utc_and_the_offset_is_unknown(tmp_path):
    capture = read(photo(tmp_path / "a.jpg", exif({MAKE: "Apple", MODEL: "iPhone 12"},
                                                  {ORIGINAL: "2019:08:04 07:05:00"})))
    assert (capture.taken_at, capture.taken_offset, capture.taken_at_source) == (epoch(2019, 8, 4, 7, 5), None, "exif")
    assert capture.camera == "Apple iPhone 12"
    assert capture.gps_lat is None and capture.lens is None


@pytest.mark.parametrize("pil_format, suffix", [("PNG", "png"), ("WEBP", "webp"), ("HEIF", "heic"), ("AVIF", "avif")])
def test_every_format_with_exif_is_read(tmp_path, pil_format, suffix):
    block = exif({MAKE: "samsung", MODEL: "SM-G991B"}, {ORIGINAL: "2022:12:24 18:00:00", ORIGINAL_OFFSET: "-05:00"},
                 PARIS)
    capture = read(photo(tmp_path / f"a.{suffix}", block, pil_format))
    assert (capture.taken_at, capture.taken_offset) == (epoch(2022, 12, 24, 23, 0), -300)
    assert capture.camera == "samsung SM-G991B"
    assert capture.gps_lat == pytest.approx(48.858167, abs=1e-6)


def test_a_tiff_keeps_its_exif_and_gps_blocks(tmp_path):
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[MAKE], tags[MODEL] = "NIKON CORPORATION", "NIKON D750"
    tags[EXIF_IFD] = {ORIGINAL: "2015:05:17 10:11:12", ORIGINAL_OFFSET: "+05:30", LENS: "50.0 mm f/1.8"}
    tags[GPS_IFD] = {1: "S", 2: (33.0, 52.0, 7.68), 3: "E", 4: (151.0, 12.0, 33.48)}
    path = tmp_path / "scan.tif"
    Image.new("RGB", (16, 16)).save(path, "TIFF", tiffinfo=tags)
    capture = read(path)
    assert (capture.taken_at, capture.taken_offset) == (epoch(2015, 5, 17, 10, 11, 12, offset_minutes=330), 330)
    assert (capture.camera, capture.lens) == ("NIKON D750", "50.0 mm f/1.8")
    assert (capture.gps_lat, capture.gps_lon) == (pytest.approx(-33.8688), pytest.approx(151.2093))


def test_digitized_then_the_plain_date_stand_in_for_a_broken_original(tmp_path):
    digitized = exif(details={ORIGINAL: "2001:12:00 00:00:00", DIGITIZED: "2001:12:05 10:00:00"})
    assert read(photo(tmp_path / "a.jpg", digitized)).taken_at == epoch(2001, 12, 5, 10)
    plain = exif({DATE_TIME: "2003:01:02 03:04:05"}, {ORIGINAL: "0000:00:00 00:00:00"})
    capture = read(photo(tmp_path / "b.jpg", plain))
    assert (capture.taken_at, capture.taken_at_source) == (epoch(2003, 1, 2, 3, 4, 5), "exif")


def tomorrow_noon() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y:%m:%d 12:00:00")


def day_after_tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).strftime("%Y:%m:%d 00:00:00")


@pytest.mark.parametrize("broken", [
    "2001:12:00 00:00:00",  # day 0
    "2001:00:10 00:00:00",  # month 0
    "0000:00:00 00:00:00",
    "    :  :     :  :  ",
    "",
    "\x00" * 20,
    "garbage",
    "2001:02:30 10:00:00",  # no such day
    "2001:12:05 25:00:00",  # no such hour
    "2999:01:01 00:00:00",
    "1800:06:01 12:00:00",  # before photography
    "1970:01:01 00:00:00",  # a clock never set
    "2001:12:05 10:00:00 and more",
])
def test_a_broken_date_falls_back_to_the_file_time_and_never_raises(tmp_path, broken):
    block = exif({DATE_TIME: broken}, {ORIGINAL: broken, DIGITIZED: broken})
    assert read(photo(tmp_path / "a.jpg", block)) == FILE_CAPTURE


def test_a_date_past_tomorrow_is_refused_but_tomorrow_is_believed(tmp_path):
    assert read(photo(tmp_path / "late.jpg", exif(details={ORIGINAL: day_after_tomorrow()}))) == FILE_CAPTURE
    capture = read(photo(tmp_path / "soon.jpg", exif(details={ORIGINAL: tomorrow_noon()})))
    assert capture.taken_at_source == "exif"


def test_a_date_without_a_time_is_midnight_with_no_offset(tmp_path):
    """Its offset tag is ignored: 00:00 at +02:00 would claim an instant the file never gave."""
    capture = read(photo(tmp_path / "a.jpg", exif(details={ORIGINAL: "2001:12:05", ORIGINAL_OFFSET: "+02:00"})))
    assert (capture.taken_at, capture.taken_offset, capture.taken_at_source) == (epoch(2001, 12, 5), None, "exif")


@pytest.mark.parametrize("offset", ["+25:00", "+01:75", "local", "", "\x00\x00"])
def test_a_broken_offset_keeps_the_time_as_a_wall_clock(tmp_path, offset):
    capture = read(photo(tmp_path / "a.jpg", exif(details={ORIGINAL: "2010:07:01 09:30:00", ORIGINAL_OFFSET: offset})))
    assert (capture.taken_at, capture.taken_offset) == (epoch(2010, 7, 1, 9, 30), None)


def test_no_exif_at_all_gives_the_file_time(tmp_path):
    assert read(photo(tmp_path / "a.jpg", None)) == FILE_CAPTURE


def test_unreadable_bytes_give_the_file_time(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00II*\x00garbage after")
    os.utime(path, (FILE_TIME, FILE_TIME))
    assert read(path) == FILE_CAPTURE


def test_an_unbelievable_file_time_leaves_the_time_unknown(tmp_path):
    path = photo(tmp_path / "a.jpg", exif({MAKE: "Canon", MODEL: "EOS 5D"}))
    os.utime(path, (0, 0))
    assert read(path) == Capture(camera="Canon EOS 5D")


@pytest.mark.parametrize("gps", [
    {**PARIS, 9: "V"},  # measurement void
    {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)},  # no fix written as 0, 0
    {2: PARIS[2], 4: PARIS[4]},  # no hemisphere
    {**PARIS, 1: "X"},
    {**PARIS, 2: (IFDRational(48, 0), IFDRational(0, 1), IFDRational(0, 1))},  # a zero denominator
    {**PARIS, 2: (95.0, 0.0, 0.0)},
    {1: "N", 3: "E"},
])
def test_a_gps_block_without_a_real_fix_gives_no_position(gps):
    assert exif_gps(gps) is None


@pytest.mark.parametrize("make, model, name", [
    ("Canon", "Canon EOS R5", "Canon EOS R5"),
    ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
    ("Apple", "iPhone 15 Pro", "Apple iPhone 15 Pro"),
    ("  FUJIFILM\x00", "X-T4\x00\x00", "FUJIFILM X-T4"),
    (None, "Pixel 7", "Pixel 7"),
    ("Google", "", "Google"),
    (b"OLYMPUS", b"E-M5", "OLYMPUS E-M5"),
    (None, None, None),
])
def test_camera_names(make, model, name):
    assert camera_name(make, model) == name


# -- videos -----------------------------------------------------------------------------------------------
def clip(path: Path, *metadata: str) -> Path:
    tags = [arg for pair in (("-metadata", item) for item in metadata) for arg in pair]
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-movflags", "use_metadata_tags", *tags, str(path))
    os.utime(path, (FILE_TIME, FILE_TIME))
    return path


def test_an_mp4_creation_time_is_an_instant_in_utc_with_its_iso6709_location(tmp_path):
    path = clip(tmp_path / "a.mp4", "creation_time=2023-07-14T09:30:00Z", "location=-33.8688+151.2093/")
    capture = read(path, "video")
    assert capture == Capture(taken_at=epoch(2023, 7, 14, 9, 30), taken_offset=0, taken_at_source="video",
                              gps_lat=-33.8688, gps_lon=151.2093)


def test_an_iphone_video_gives_its_local_time_offset_camera_and_position(tmp_path):
    path = clip(tmp_path / "IMG_0001.mov", "creation_time=2023-07-14T09:30:00Z",
                "com.apple.quicktime.creationdate=2023-07-14T11:30:00+0200",
                "com.apple.quicktime.location.ISO6709=+48.8584+002.2945+035.000/",
                "com.apple.quicktime.make=Apple", "com.apple.quicktime.model=iPhone 12")
    capture = read(path, "video")
    assert capture == Capture(taken_at=epoch(2023, 7, 14, 9, 30), taken_offset=120, taken_at_source="video",
                              camera="Apple iPhone 12", gps_lat=48.8584, gps_lon=2.2945)


@pytest.mark.parametrize("metadata", [(), ("creation_time=1970-01-01T00:00:00Z",),
                                      ("creation_time=2999-01-01T00:00:00Z",)])
def test_a_video_without_a_believable_date_gets_its_file_time(tmp_path, metadata):
    assert read(clip(tmp_path / "a.mp4", *metadata), "video") == FILE_CAPTURE


@pytest.mark.parametrize("text, point", [
    ("+48.8584+002.2945/", (48.8584, 2.2945)),
    ("+48.8584+002.2945+035.000/", (48.8584, 2.2945)),
    ("-33.8688+151.2093", (-33.8688, 151.2093)),
    ("+4851.504+00217.670/", (48.8584, 2.29450)),  # degrees and minutes
    ("+485130.24-0021740.20/", (48.858400, -2.294500)),  # and seconds
    ("+00.0000+000.0000/", None),
    ("+95.0+010.0/", None),
    ("somewhere", None),
    ("", None),
])
def test_iso6709_locations(text, point):
    found = iso6709(text)
    assert found == (None if point is None else (pytest.approx(point[0], abs=1e-6), pytest.approx(point[1], abs=1e-6)))


# -- in the worker: a child process of its own ------------------------------------------------------------
def test_the_worker_reads_in_a_child_and_a_child_that_fails_costs_only_the_metadata(tmp_path, monkeypatch):
    path = photo(tmp_path / "a.jpg", exif({MAKE: "Canon", MODEL: "Canon EOS R5"}, {ORIGINAL: "2024:03:10 15:22:05"}))
    settings = Settings(data_dir=tmp_path / "data")
    with open_beneath(path, [tmp_path]) as source:
        assert read_isolated(source, "image", settings) == read_capture(source, "image")
        monkeypatch.setattr("services.ingest_worker.metadata.READ_TIME_LIMIT_S", 0.0)  # killed at once
        assert read_isolated(source, "image", settings) == FILE_CAPTURE


def test_the_decoding_child_can_read_the_metadata_too_and_reads_the_same(tmp_path):
    from services.ingest_worker import staging
    from services.ingest_worker.isolation import Descriptor, run_isolated
    from services.ingest_worker.sniff import sniff

    path = photo(tmp_path / "a.jpg", exif({MAKE: "Canon", MODEL: "Canon EOS R5"}, {ORIGINAL: "2024:03:10 15:22:05"}))
    settings = Settings(data_dir=tmp_path / "data")
    with open_beneath(path, [tmp_path]) as source:
        media_type = sniff(source.read_at(0, 4096))
        args = (Descriptor(source.fd), media_type, "ab" * 32, settings)
        together = run_isolated(staging.stage, (*args, True), lambda _duration: 60)
        alone = run_isolated(staging.stage, args, lambda _duration: 60)
        assert together.capture == read_capture(source, "image") and together.capture.camera == "Canon EOS R5"
        assert alone.capture is None and alone.frames == together.frames
