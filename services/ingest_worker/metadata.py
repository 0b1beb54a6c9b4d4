"""When and where a photo or video was taken, and with what: read from the file's own metadata (EXIF in
JPEG, TIFF, PNG's eXIf, HEIC/AVIF and WebP; the container's tags in a video), falling back to the file's
modification time.

What is stored (the media columns of catalog step 7):

- ``taken_at``: the capture time as UTC epoch seconds. When the file gives a wall-clock time without a UTC
  offset (most EXIF before 2016), that wall-clock time is read *as if it were UTC*: it orders correctly
  among photos of the same place, and its date and time read back exactly as the camera wrote them.
- ``taken_offset``: minutes east of UTC of the time as given, or NULL when the file does not say. EXIF's
  ``OffsetTimeOriginal`` (and Apple's ``com.apple.quicktime.creationdate``) give the local offset; a
  QuickTime/MP4 ``creation_time`` and a file's modification time are instants in UTC, stored with offset 0.
- ``taken_at_source``: ``exif`` (DateTimeOriginal, else DateTimeDigitized, else DateTime), ``video`` (the
  container's creation date), or ``file`` (the file's modification time: a fallback, not a capture
  time). NULL with ``taken_at`` NULL when not even the file's time is believable.
- A date without a time of day is stored as 00:00 of that day with ``taken_offset`` NULL: no instant is
  claimed (not midnight in some zone), and the API shows it without an offset.
- ``camera``: "Make Model", the make left out when the model already starts with it ("Canon" + "Canon EOS
  R5" is "Canon EOS R5"); ``lens``: EXIF LensModel; ``gps_lat``/``gps_lon``: decimal degrees, south and
  west negative, from the EXIF GPS block or a video's ISO 6709 location string.

Real files carry broken values: day or month 0 (``2001:12:00``), all zeros, blanks, garbage, clocks never
set (1970-01-01 or 1904-01-01 at midnight), dates past tomorrow or before photography (1826). Such a value
is skipped for the next candidate, never repaired; a GPS fix at exactly 0, 0, marked void, or out of range
is no fix. Nothing here raises for a file's content: a file whose metadata cannot be read gets its
modification time.

Reading parses untrusted bytes with native code (libheif, libav), so the worker runs it in a decoder
process (isolation.py): with the file's decoding on a first attempt, alone after one died (read_isolated).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

from PIL import Image

from services.ingest_worker.isolation import ChildDied, Descriptor, run_isolated
from shared.safe_open import OpenedFile
from shared.settings import Settings

log = logging.getLogger("mediasearch.ingest")

EARLIEST_YEAR = 1826  # the oldest surviving photograph
UNSET_CLOCKS = (datetime(1970, 1, 1), datetime(1904, 1, 1))  # Unix and QuickTime zero: a clock never set
MAX_TEXT = 200
READ_TIME_LIMIT_S = 60.0

# EXIF tags (IFD0, the Exif IFD, the GPS IFD)
_MAKE, _MODEL, _DATE_TIME, _OFFSET_TIME = 0x010F, 0x0110, 0x0132, 0x9010
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_DATE_TIME_DIGITIZED, _OFFSET_TIME_DIGITIZED = 0x9004, 0x9012
_LENS_MODEL = 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_STATUS = 1, 2, 3, 4, 9

# "2024:03:10 15:22:05" as EXIF spells it, and the ISO forms video tags use ("2024-03-10T15:22:05.000000Z",
# "2024-03-10T15:22:05+0100"); the time of day may be missing.
_DATE_TIME_TEXT = re.compile(r"(\d{4})[:/-](\d{1,2})[:/-](\d{1,2})"
                        r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_ISO6709_NUMBER = r"[+-]\d+(?:\.\d+)?"
_ISO6709 = re.compile(rf"({_ISO6709_NUMBER})({_ISO6709_NUMBER})(?:{_ISO6709_NUMBER})?(?:CRS[^/]*)?/?")


@dataclass(frozen=True)
class Capture:
    """The step-7 media columns this module fills (see the module's docstring)."""

    taken_at: float | None = None
    taken_offset: int | None = None
    taken_at_source: str | None = None  # 'exif' | 'video' | 'file'
    camera: str | None = None
    lens: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None

    def columns(self) -> dict[str, float | int | str | None]:
        """As keyword arguments of catalog.insert_media."""
        return asdict(self)


@dataclass(frozen=True)
class CaptureTime:
    taken_at: float  # UTC epoch seconds (a wall clock read as UTC when ``offset`` is None)
    offset: int | None  # minutes east of UTC


# -- reading a file ---------------------------------------------------------------------------------
def read_capture(source: OpenedFile, kind: str, now: float | None = None) -> Capture:
    """What ``source`` says about when, where and with what it was taken (``kind``: 'image' or 'video');
    the file's modification time when it says no believable time. Never raises for bad metadata."""
    now = time.time() if now is None else now
    try:
        found = (video_tags if kind == "video" else image_tags)(source.path, now)
    except Exception as exc:  # noqa: BLE001 (metadata is optional: an unreadable block costs only itself)
        log.info("no capture metadata in %s: %s: %s", source.real_path or source.path, type(exc).__name__, exc)
        found = Capture()
    if found.taken_at is not None:
        return found
    fallback = file_time(source, now)
    return replace(found, taken_at=fallback.taken_at, taken_offset=fallback.taken_offset,
                   taken_at_source=fallback.taken_at_source)


def file_time(source: OpenedFile, now: float | None = None) -> Capture:
    """The fallback: the file's modification time (an instant: offset 0), when believable."""
    try:
        written = datetime.fromtimestamp(os.fstat(source.fd).st_mtime, UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):  # a time outside any calendar
        return Capture()
    moment = _believable(written, 0, time.time() if now is None else now)
    if moment is None:
        return Capture()
    return Capture(taken_at=moment.taken_at, taken_offset=moment.offset, taken_at_source="file")


def read_isolated(source: OpenedFile, kind: str, settings: Settings) -> Capture:
    """read_capture in a decoder process, alone (after an attempt died); a decoder that crashes or hangs costs
    only the metadata: the file's modification time stands in."""
    limit = min(READ_TIME_LIMIT_S, settings.ingest_time_limit_max_s)
    try:
        return run_isolated(_read_in_child, (Descriptor(source.fd), kind), lambda _duration: limit)
    except ChildDied as death:
        log.warning("reading the capture metadata of %s failed (%s); using its file time", source.real_path, death)
        return file_time(source)


def _read_in_child(source: Descriptor, kind: str, on_duration=None) -> Capture:  # run_isolated passes on_duration
    return read_descriptor(source, kind)


def read_descriptor(source: Descriptor, kind: str) -> Capture:
    """read_capture of a file handed to a child process (by descriptor)."""
    return read_capture(OpenedFile(source.fd, "", os.fstat(source.fd).st_size), kind)


# -- photos: EXIF -------------------------------------------------------------------------------------
def image_tags(path: str, now: float) -> Capture:
    """EXIF of a still image that Pillow opens (with pillow-heif's opener registered: HEIC and AVIF too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Corrupt EXIF data": what is left of it is still read
        with Image.open(path) as image:
            exif = image.getexif()
            main = dict(exif)
            details = _ifd(exif, _EXIF_IFD)
            gps = _ifd(exif, _GPS_IFD)
    candidates = ((details.get(_DATE_TIME_ORIGINAL), details.get(_OFFSET_TIME_ORIGINAL)),
                  (details.get(_DATE_TIME_DIGITIZED), details.get(_OFFSET_TIME_DIGITIZED)),
                  (main.get(_DATE_TIME), details.get(_OFFSET_TIME)))
    taken = next(filter(None, (exif_time(value, offset, now) for value, offset in candidates)), None)
    position = exif_gps(gps)
    return Capture(taken_at=taken and taken.taken_at, taken_offset=taken and taken.offset,
                   taken_at_source="exif" if taken else None,
                   camera=camera_name(main.get(_MAKE), main.get(_MODEL)), lens=clean_text(details.get(_LENS_MODEL)),
                   gps_lat=position and position[0], gps_lon=position and position[1])


def _ifd(exif: Image.Exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # noqa: BLE001 (a broken pointer to a sub-block loses that block only)
        return {}


def exif_time(value: object, offset: object = None, now: float | None = None) -> CaptureTime | None:
    """A capture time from an EXIF date ("YYYY:MM:DD HH:MM:SS") and its offset tag ("+01:00"); None for
    anything broken (see the module's docstring). An offset in the value itself wins over the tag."""
    parsed = _parse_date_time(clean_text(value))
    if parsed is None:
        return None
    moment, has_time, own_offset = parsed
    minutes = own_offset if own_offset is not None else parse_offset(clean_text(offset))
    return _believable(moment, minutes if has_time else None, time.time() if now is None else now)


def parse_offset(text: str | None) -> int | None:
    """Minutes east of UTC from "+01:00", "-0530" or "Z"; None when missing or out of range."""
    if not text:
        return None
    if text == "Z":
        return 0
    found = _OFFSET.fullmatch(text)
    if found is None:
        return None
    sign, hours, minutes = found.group(1), int(found.group(2)), int(found.group(3))
    if hours > 14 or minutes >= 60:
        return None
    return (-1 if sign == "-" else 1) * (hours * 60 + minutes)


def _parse_date_time(text: str | None) -> tuple[datetime, bool, int | None] | None:
    """(wall clock, whether it has a time of day, the offset written in it) or None."""
    found = _DATE_TIME_TEXT.fullmatch(text or "")
    if found is None:
        return None
    year, month, day, hour, minute, second, offset = found.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:  # month 0, day 0, 2001:02:30, hour 24 ...
        return None
    own_offset = parse_offset(offset)
    if offset and own_offset is None:
        return None
    return moment, hour is not None, own_offset


def _believable(moment: datetime, offset: int | None, now: float) -> CaptureTime | None:
    """The wall clock ``moment`` (at ``offset``) as a CaptureTime, or None if no camera took it then."""
    if moment.year < EARLIEST_YEAR or moment in UNSET_CLOCKS:
        return None
    latest = datetime.fromtimestamp(now, UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    if moment >= latest + timedelta(days=2):  # later than the end of tomorrow, wherever it was taken
        return None
    zone = UTC if offset is None else timezone(timedelta(minutes=offset))
    return CaptureTime(moment.replace(tzinfo=zone).timestamp(), offset)


def exif_gps(gps: dict) -> tuple[float, float] | None:
    """(lat, lon) in decimal degrees from an EXIF GPS block, south and west negative; None without a fix."""
    if clean_text(gps.get(_GPS_STATUS)) == "V":  # "measurement void"
        return None
    lat = _degrees(gps.get(_GPS_LAT), clean_text(gps.get(_GPS_LAT_REF)), "N", "S", 90)
    lon = _degrees(gps.get(_GPS_LON), clean_text(gps.get(_GPS_LON_REF)), "E", "W", 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return None
    return lat, lon


def _degrees(value: object, ref: str | None, positive: str, negative: str, limit: float) -> float | None:
    """Degrees, minutes, seconds (rationals) and a hemisphere letter as signed decimal degrees."""
    if ref is None or ref.upper() not in (positive, negative):
        return None
    parts = value if isinstance(value, tuple | list) else (value,)
    try:
        numbers = [float(part) for part in parts[:3]]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not numbers or not all(math.isfinite(n) and n >= 0 for n in numbers):
        return None
    degrees = sum(n / 60**i for i, n in enumerate(numbers))
    if degrees > limit:
        return None
    return -degrees if ref.upper() == negative else degrees


# -- videos: the container's tags ---------------------------------------------------------------------
_VIDEO_TIMES = (("com.apple.quicktime.creationdate", None),  # local time with its offset
                ("creation_time", 0))  # QuickTime/MP4 store it in UTC
_VIDEO_LOCATIONS = ("com.apple.quicktime.location.iso6709", "location", "location-eng")
_VIDEO_MAKES = ("com.apple.quicktime.make", "make", "com.android.manufacturer")
_VIDEO_MODELS = ("com.apple.quicktime.model", "model", "com.android.model")


def video_tags(path: str, now: float) -> Capture:
    """The container's metadata (format tags, then the first video stream's) as PyAV reads them."""
    import av  # here, not at the top: a photo's child process need not load FFmpeg's libraries (50 ms)

    with av.open(path, metadata_errors="ignore") as container:
        tags = {key.lower(): value for key, value in container.metadata.items()}
        for stream in container.streams.video[:1]:
            for key, value in stream.metadata.items():
                tags.setdefault(key.lower(), value)
    taken = next(filter(None, (video_time(tags.get(key), assumed_offset, now)
                               for key, assumed_offset in _VIDEO_TIMES)), None)
    position = next(filter(None, (iso6709(tags.get(key)) for key in _VIDEO_LOCATIONS)), None)
    make = next(filter(None, (clean_text(tags.get(key)) for key in _VIDEO_MAKES)), None)
    model = next(filter(None, (clean_text(tags.get(key)) for key in _VIDEO_MODELS)), None)
    return Capture(taken_at=taken and taken.taken_at, taken_offset=taken and taken.offset,
                   taken_at_source="video" if taken else None, camera=camera_name(make, model),
                   lens=clean_text(tags.get("com.apple.quicktime.camera.lens_model")),
                   gps_lat=position and position[0], gps_lon=position and position[1])


def video_time(value: object, assumed_offset: int | None, now: float | None = None) -> CaptureTime | None:
    """A video tag's date-time; one without an offset of its own is at ``assumed_offset`` (None: unknown)."""
    parsed = _parse_date_time(clean_text(value))
    if parsed is None:
        return None
    moment, has_time, own_offset = parsed
    offset = own_offset if own_offset is not None else assumed_offset
    return _believable(moment, offset if has_time else None, time.time() if now is None else now)


def iso6709(text: object) -> tuple[float, float] | None:
    """(lat, lon) from an ISO 6709 point ("+48.8584+002.2945+035.000/"; degrees, or ±DDMM(SS) forms)."""
    found = _ISO6709.fullmatch(clean_text(text) or "")
    if found is None:
        return None
    lat, lon = _iso6709_degrees(found.group(1), 2, 90), _iso6709_degrees(found.group(2), 3, 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return None
    return lat, lon


def _iso6709_degrees(number: str, degree_digits: int, limit: float) -> float | None:
    sign = -1 if number[0] == "-" else 1
    whole, _, fraction = number[1:].partition(".")
    value = float(f"{whole}.{fraction or 0}")
    extra = len(whole) - degree_digits  # 0: degrees, 2: degrees and minutes, 4: and seconds
    if extra == 2:
        value = int(whole[:degree_digits]) + float(f"{whole[degree_digits:]}.{fraction or 0}") / 60
    elif extra == 4:
        value = (int(whole[:degree_digits]) + int(whole[degree_digits:degree_digits + 2]) / 60
                 + float(f"{whole[degree_digits + 2:]}.{fraction or 0}") / 3600)
    elif extra != 0:
        return None
    return sign * value if value <= limit else None


# -- names ----------------------------------------------------------------------------------------------
def camera_name(make: object, model: object) -> str | None:
    """ "Make Model"; the model alone when it already names the make ("Canon" + "Canon EOS R5", "NIKON
    CORPORATION" + "NIKON D750")."""
    make, model = clean_text(make), clean_text(model)
    if not make or not model:
        return make or model
    if model.lower().startswith(make.lower()) or model.split()[0].lower() == make.split()[0].lower():
        return model
    return f"{make} {model}"[:MAX_TEXT]


def clean_text(value: object) -> str | None:
    """A tag's text without padding, NULs and control characters; None when nothing is left."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = "".join(char for char in value if char.isprintable()).strip()
    return text[:MAX_TEXT] or None
