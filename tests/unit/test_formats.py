"""The formats people's libraries hold, on real files made here: HEIC and AVIF (pillow-heif and Pillow,
with their rotation), camera RAW (a DNG written by the helper below and developed by LibRaw; CR3 and NEF
recognised by their container, never by name), rotated HEVC phone clips in MOV and MP4 (upright frames),
browser previews of videos browsers cannot play (H.264, same timeline), and Live Photos (a photo and its
clip are one media item). Decoders run as the worker runs them; the pipeline with the stand-in embedder."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from services.ingest_worker import preview
from services.ingest_worker.images import decode_image, perceptual_hash
from services.ingest_worker.isolation import Descriptor
from services.ingest_worker.pipeline import IngestContext, ingest_item
from services.ingest_worker.sniff import SNIFF_BYTES, BadInput, sniff
from services.ingest_worker.staging import sampling_policy
from services.ingest_worker.video import sample_video
from shared import catalog
from shared.catalog import phash_distance
from shared.live_photos import MAX_MOTION_BYTES, pair_live_photos
from shared.media_store import MediaStore
from shared.settings import Settings
from tests.conftest import free_port
from tests.samples import PHOTOS, codec_of, colour_change_clip, exif_orientation, phone_clip
from tests.stand_ins import StandInEmbedder

SETTINGS = Settings()
TENCH = Image.open(PHOTOS / "n01440764_tench.JPEG").convert("RGB")  # 500 × 375, a fish facing right
GOLDFISH = Image.open(PHOTOS / "n01443537_goldfish.JPEG").convert("RGB")
CLOCKWISE = Image.Transpose.ROTATE_270  # what EXIF orientation 6 asks for
CLOSE = SETTINGS.phash_max_distance


def head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)


def decode(path: Path, max_side: int = SETTINGS.frame_max_side):
    return decode_image(path, sniff(head(path)), SETTINGS.max_image_pixels, max_side)


def distance(a: Image.Image, b: Image.Image) -> int:
    return phash_distance(perceptual_hash(a), perceptual_hash(b))


# -- a DNG writer: TIFF directories with a colour filter array, as a camera or Adobe's converter writes --------
SHORT, LONG, ASCII, BYTE, RATIONAL, SRATIONAL = 3, 4, 2, 1, 5, 10
XYZ_TO_LINEAR_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]


def _values(kind: int, values) -> tuple[bytes, int]:
    if kind == ASCII:
        raw = values.encode() + b"\0"
        return raw, len(raw)
    if kind in (RATIONAL, SRATIONAL):
        pair = "<ii" if kind == SRATIONAL else "<II"
        return b"".join(struct.pack(pair, round(v * 10000), 10000) for v in values), len(values)
    fmt = {BYTE: "B", SHORT: "H", LONG: "I"}[kind]
    return struct.pack(f"<{len(values)}{fmt}", *values), len(values)


def _directory(entries: dict, at: int) -> bytes:
    """One image directory written at offset ``at``, with the values that do not fit in an entry after it."""
    data_at = at + 2 + 12 * len(entries) + 4
    table, tail = struct.pack("<H", len(entries)), b""
    for tag in sorted(entries):
        kind, values = entries[tag]
        raw, count = _values(kind, values)
        inline = raw.ljust(4, b"\0") if len(raw) <= 4 else struct.pack("<I", data_at + len(tail))
        table += struct.pack("<HHI", tag, kind, count) + inline
        if len(raw) > 4:
            tail += raw + b"\0" * (len(raw) % 2)
    return table + struct.pack("<I", 0) + tail


def _with_strip(entries: dict, strip: bytes, at: int) -> bytes:
    """A directory at ``at`` followed by its one strip of image data."""
    entries = {**entries, 273: (LONG, [0]), 279: (LONG, [len(strip)])}
    entries[273] = (LONG, [at + len(_directory(entries, at))])
    return _directory(entries, at) + strip


def dng(photo: Image.Image, orientation: int = 1, preview_jpeg: Image.Image | None = None) -> bytes:
    """A DNG whose sensor data is ``photo`` seen through an RGGB Bayer filter (12-bit linear, camera colour =
    linear sRGB), with the camera's ``orientation`` and, if given, an embedded JPEG preview in IFD0 (the raw
    image then in a SubIFD, as DNG converters lay them out)."""
    rgb = np.asarray(photo, dtype=np.float64) / 255.0
    height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    linear = (rgb[:height, :width] ** 2.2 * 4095).astype(np.uint16)
    mosaic = np.empty((height, width), np.uint16)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = linear[0::2, 0::2, 0], linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = linear[1::2, 0::2, 1], linear[1::2, 1::2, 2]
    sensor = {254: (LONG, [0]), 256: (LONG, [width]), 257: (LONG, [height]), 258: (SHORT, [16]), 259: (SHORT, [1]),
              262: (SHORT, [32803]), 277: (SHORT, [1]), 278: (LONG, [height]), 284: (SHORT, [1]),
              33421: (SHORT, [2, 2]), 33422: (BYTE, [0, 1, 1, 2]), 50714: (LONG, [0]), 50717: (LONG, [4095])}
    camera = {271: (ASCII, "MediaSearch"), 272: (ASCII, "Test Camera"), 274: (SHORT, [orientation]),
              50706: (BYTE, [1, 4, 0, 0]), 50707: (BYTE, [1, 1, 0, 0]), 50708: (ASCII, "MediaSearch Test Camera"),
              50721: (SRATIONAL, XYZ_TO_LINEAR_SRGB), 50728: (RATIONAL, [1, 1, 1]), 50778: (SHORT, [21])}
    header = b"II*\0" + struct.pack("<I", 8)
    if preview_jpeg is None:
        return header + _with_strip({**camera, **sensor}, mosaic.tobytes(), 8)
    jpeg = io.BytesIO()
    preview_jpeg.save(jpeg, "JPEG", quality=90)
    ifd0 = {**camera, 254: (LONG, [1]), 256: (LONG, [preview_jpeg.width]), 257: (LONG, [preview_jpeg.height]),
            258: (SHORT, [8, 8, 8]), 259: (SHORT, [7]), 262: (SHORT, [6]), 277: (SHORT, [3]),
            278: (LONG, [preview_jpeg.height]), 330: (LONG, [0])}
    first = len(_with_strip(ifd0, jpeg.getvalue(), 8))
    ifd0[330] = (LONG, [8 + first])
    return header + _with_strip(ifd0, jpeg.getvalue(), 8) + _with_strip(sensor, mosaic.tobytes(), 8 + first)


def tiff_header(ifd0: dict, sub_ifd: dict | None = None) -> bytes:
    """The directories of a TIFF-based file and a little data: enough for sniffing."""
    header = b"II*\0" + struct.pack("<I", 8)
    if sub_ifd is None:
        return header + _with_strip(ifd0, bytes(64), 8)
    ifd0 = {**ifd0, 330: (LONG, [0])}
    first = len(_with_strip(ifd0, bytes(64), 8))
    ifd0[330] = (LONG, [8 + first])
    return header + _with_strip(ifd0, bytes(64), 8) + _with_strip(sub_ifd, bytes(64), 8 + first)


NIKON = {271: (ASCII, "NIKON CORPORATION"), 272: (ASCII, "NIKON D750")}
RGB_IMAGE = {256: (LONG, [4]), 257: (LONG, [4]), 258: (SHORT, [8, 8, 8]), 262: (SHORT, [2]), 277: (SHORT, [3])}
NIKON_SENSOR = {256: (LONG, [6016]), 257: (LONG, [4016]), 258: (SHORT, [14]), 259: (SHORT, [34713]),
                262: (SHORT, [32803]), 277: (SHORT, [1])}


# -- sniffing: by content and container brand, whatever the name ----------------------------------------------
def test_heic_and_avif_are_recognised_by_their_brand_whatever_the_name(tmp_path):
    heic, avif = tmp_path / "holiday.jpg", tmp_path / "clip.mp4"
    TENCH.save(heic, "HEIF", quality=60)
    TENCH.save(avif, "AVIF", quality=60)
    assert (sniff(head(heic)).mime, sniff(head(heic)).extension) == ("image/heic", ".heic")
    assert (sniff(head(avif)).mime, sniff(head(avif)).extension) == ("image/avif", ".avif")


@pytest.mark.parametrize("content, name", [
    (struct.pack(">I", 24) + b"ftypcrx " + struct.pack(">I", 1) + b"crx isom", "Canon CR3 raw"),
    (b"II*\0\x10\0\0\0CR\x02\0" + bytes(40), "Canon CR2 raw"),
    (tiff_header({**NIKON, **RGB_IMAGE, 254: (LONG, [1])}, NIKON_SENSOR), "Nikon NEF raw"),
    (tiff_header({271: (ASCII, "SONY"), **RGB_IMAGE}, {**NIKON_SENSOR, 259: (SHORT, [32767])}), "Sony ARW raw"),
    (b"FUJIFILMCCD-RAW 0201FF383501" + bytes(40), "Fujifilm RAF raw"),
    (b"IIRO\x08\0\0\0" + bytes(40), "Olympus ORF raw"),
    (b"IIU\0\x08\0\0\0" + bytes(40), "Panasonic RW2 raw"),
    # A TIFF exported from a raw keeps the camera's name but holds RGB: still a TIFF.
    (tiff_header({**NIKON, **RGB_IMAGE}), "TIFF"),
    (struct.pack(">I", 28) + b"ftypmif1" + bytes(4) + b"mif1heic" + b"miaf", "HEIC"),
    (struct.pack(">I", 28) + b"ftypmif1" + bytes(4) + b"mif1avif" + b"miaf", "AVIF"),
    (struct.pack(">I", 20) + b"ftypqt  " + bytes(4) + b"qt  ", "QuickTime"),
])
def test_raw_and_heif_containers_are_told_apart_by_content(content, name):
    assert sniff(content[:SNIFF_BYTES]).name == name


def test_a_generated_dng_is_a_dng_not_a_tiff(tmp_path):
    path = tmp_path / "IMG_0001.tif"
    path.write_bytes(dng(TENCH))
    assert sniff(head(path)).name == "Adobe DNG raw"


# -- HEIC and AVIF ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pil_format, save", [
    ("HEIF", {"quality": 70}),
    ("HEIF", {"quality": 70, "tile_size": 256}),  # a grid of tiles, as iPhones store photos
    ("AVIF", {"quality": 70}),
])
def test_heic_and_avif_decode_upright_with_their_rotation(tmp_path, pil_format, save):
    path = tmp_path / "photo"
    TENCH.resize((1000, 750)).save(path, pil_format, exif=exif_orientation(6), **save)  # stored sideways, shown upright
    decoded = decode(path)
    assert (decoded.width, decoded.height) == (750, 1000)
    assert decoded.frame.size == (384, 512)
    upright = TENCH.transpose(CLOCKWISE)
    assert distance(decoded.frame, upright) <= CLOSE < distance(decoded.frame, TENCH.resize((375, 500)))


@pytest.mark.parametrize("pil_format, name", [("HEIF", "HEIC"), ("AVIF", "AVIF")])
@pytest.mark.parametrize("kept", [0.5, 0.9])
def test_a_truncated_heic_or_avif_fails_with_a_reason_naming_the_format(tmp_path, pil_format, name, kept):
    whole = io.BytesIO()
    TENCH.save(whole, pil_format, quality=70)
    path = tmp_path / "cut"
    path.write_bytes(whole.getvalue()[: int(len(whole.getvalue()) * kept)])
    with pytest.raises(BadInput, match=rf"^truncated or corrupt {name} image"):
        decode(path)


# -- camera RAW -------------------------------------------------------------------------------------------------
def test_a_dng_without_a_preview_is_developed_with_its_orientation(tmp_path):
    path = tmp_path / "raw"
    path.write_bytes(dng(TENCH, orientation=6))
    decoded = decode(path)
    assert (decoded.width, decoded.height) == (374, 500)  # the sensor, as displayed
    assert distance(decoded.frame, TENCH.transpose(CLOCKWISE)) <= CLOSE < distance(decoded.frame, TENCH)
    colours = np.asarray(decoded.frame, dtype=np.float64).mean(axis=(0, 1))
    assert np.abs(colours - np.asarray(TENCH, dtype=np.float64).mean(axis=(0, 1))).max() < 40  # developed, not grey


@pytest.mark.parametrize("orientation, shown", [(1, GOLDFISH), (6, GOLDFISH.transpose(CLOCKWISE))])
def test_a_dng_with_a_large_preview_is_read_from_the_preview_with_the_orientation(tmp_path, orientation, shown):
    path = tmp_path / "raw"
    path.write_bytes(dng(TENCH, orientation, preview_jpeg=GOLDFISH.resize((800, 600))))  # preview ≠ sensor: we see which
    decoded = decode(path)
    assert distance(decoded.frame, shown) <= CLOSE
    assert max(decoded.frame.size) == SETTINGS.frame_max_side


def test_a_preview_smaller_than_a_frame_is_not_used(tmp_path):
    path = tmp_path / "raw"
    path.write_bytes(dng(TENCH, preview_jpeg=GOLDFISH.resize((160, 120))))
    assert distance(decode(path).frame, TENCH) <= CLOSE


def test_raw_that_cannot_be_read_fails_with_a_reason_naming_the_format(tmp_path):
    cr3 = tmp_path / "IMG_0001.CR3"
    cr3.write_bytes(struct.pack(">I", 24) + b"ftypcrx " + struct.pack(">I", 1) + b"crx isom"
                    + struct.pack(">I", 16) + b"moov" + bytes(range(256)) * 8)
    with pytest.raises(BadInput, match=r"^unsupported format: Canon CR3 raw could not be decoded: \w"):
        decode(cr3)
    cut = tmp_path / "cut.dng"
    cut.write_bytes(dng(TENCH)[:60_000])
    with pytest.raises(BadInput, match=r"^truncated or corrupt Adobe DNG raw \("):
        decode(cut)


def test_a_raw_sensor_over_the_pixel_limit_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "raw"
    path.write_bytes(dng(TENCH))
    with pytest.raises(BadInput, match=r"image too large: its sensor has 500 × 374 pixels"):
        decode_image(path, sniff(head(path)), 150_000, SETTINGS.frame_max_side)


# -- phone videos: rotation ------------------------------------------------------------------------------------
def red_on_top(frame: Image.Image) -> bool:
    pixels = np.asarray(frame.convert("RGB"), dtype=np.float64)
    band = max(1, pixels.shape[0] // 8)
    top, bottom = pixels[:band].mean(axis=(0, 1)), pixels[-band:].mean(axis=(0, 1))
    return top[0] > 200 and top[1] < 60 and top[2] < 60 and not (bottom[0] > 200 and bottom[1] < 60)


@pytest.mark.parametrize("name, rotation, codec", [
    ("portrait.mov", -90, "libx265"), ("portrait.mp4", -90, "libx265"), ("left.mp4", 90, "libx265"),
    ("upside-down.mov", 180, "libx264"),
])
def test_rotated_phone_clips_give_upright_frames(tmp_path, name, rotation, codec):
    clip = phone_clip(tmp_path, name, rotation, codec)
    kept: list[Image.Image] = []
    info = sample_video(clip, sampling_policy(SETTINGS), lambda image, timestamp: kept.append(image))
    assert (info.width, info.height) == (180, 320) and kept
    assert all(frame.size == (180, 320) and red_on_top(frame) for frame in kept)


# -- browser previews --------------------------------------------------------------------------------------------
def frame_at(path: Path, seconds: float) -> Image.Image:
    png = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(path), "-frames:v", "1", "-f",
                          "image2pipe", "-vcodec", "png", "-"], check=True, capture_output=True).stdout
    return Image.open(io.BytesIO(png)).convert("RGB")


@pytest.mark.parametrize("name, output, playable", [
    ("h264.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"], True),
    ("vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"], True),
    ("hevc.mov", ["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error", "-c:a", "aac"], False),
    ("h264.mkv", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"], False),
    ("mpeg4.avi", ["-c:v", "mpeg4", "-c:a", "mp3"], False),
    ("pcm.mov", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le"], False),
    ("10bit.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-c:a", "aac"], False),
])
def test_which_videos_browsers_play_as_they_are(tmp_path, name, output, playable):
    clip = tmp_path / name
    colour_change_clip(clip, "-t", "1", *output)
    assert preview.browser_playable(preview.probe(clip)) is playable


def test_a_preview_is_h264_upright_at_most_720p_and_keeps_the_timeline(tmp_path):
    hevc = tmp_path / "hevc.mov"
    colour_change_clip(hevc, "-s", "1920x1080", "-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error",
                       "-c:a", "aac")
    made = tmp_path / "preview.mp4"
    preview.make_preview(hevc, made, 120)
    assert codec_of(made) == "h264" and frame_at(made, 0.2).size == (1280, 720)
    assert preview.browser_playable(preview.probe(made))
    for seconds, colour in [(1.2, (0, 0, 255)), (1.8, (255, 255, 0))]:  # either side of the cut at 1.5 s
        seen = np.asarray(frame_at(made, seconds), dtype=np.float64).mean(axis=(0, 1))
        assert np.abs(seen - colour).max() < 40, (seconds, seen)
    assert abs(preview.probe(made).duration - preview.probe(hevc).duration) < 0.1
    portrait = phone_clip(tmp_path, "portrait.mov", -90)
    upright = tmp_path / "upright.mp4"
    preview.make_preview(portrait, upright, 120)
    assert frame_at(upright, 0.5).size == (180, 320) and red_on_top(frame_at(upright, 0.5))


# -- Live Photos: pairing --------------------------------------------------------------------------------------
def test_live_photos_pair_by_folder_and_stem_whatever_the_case():
    files = [("DCIM/100APPLE/IMG_0001.HEIC", 2_500_000), ("DCIM/100APPLE/IMG_0001.MOV", 3_100_000),
             ("DCIM/100APPLE/img_0002.jpg", 900_000), ("DCIM/100APPLE/IMG_0002.mov", 2_000_000),
             ("DCIM/100APPLE/IMG_0003.HEIC", 2_000_000),  # a photo alone
             ("DCIM/100APPLE/IMG_0004.MOV", 80_000_000),  # a video alone
             ("DCIM/100APPLE/IMG_0005.JPG", 1), ("DCIM/100APPLE/IMG_0005.MOV", MAX_MOTION_BYTES + 1),  # too long
             ("a/IMG_0006.HEIC", 1), ("b/IMG_0006.MOV", 1),  # not in the same folder
             ("IMG_0007.HEIC", 1), ("IMG_0007.JPG", 1), ("IMG_0007.MOV", 1),  # two stills: which one?
             ("IMG_0008.PNG", 1), ("IMG_0008.MOV", 1)]  # not a Live Photo still
    assert pair_live_photos(files) == {"DCIM/100APPLE/IMG_0001.HEIC": "DCIM/100APPLE/IMG_0001.MOV",
                                       "DCIM/100APPLE/img_0002.jpg": "DCIM/100APPLE/IMG_0002.mov"}
    assert pair_live_photos(iter(files[:2])) == {files[0][0]: files[1][0]}  # any iterable, consumed once


# -- through the pipeline ---------------------------------------------------------------------------------------
@pytest.fixture
def ctx(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", ingest_roots=[tmp_path / "library"], disk_reserve_bytes=0,
                        index_urls=[f"http://127.0.0.1:{free_port()}"])
    context = IngestContext(settings, catalog.connect(settings.catalog_path), MediaStore(settings.data_path),
                            StandInEmbedder(), httpx.Client(timeout=1))
    yield context
    context.close()


def upload_job(ctx: IngestContext, files: dict[str, bytes]) -> dict[str, int]:
    """An upload job whose files wait in the uploads folder as the gateway leaves them: {name: item id}."""
    job_id = catalog.new_job_id()
    folder = ctx.settings.uploads_dir / job_id
    folder.mkdir(parents=True)
    for index, data in enumerate(files.values()):
        (folder / str(index)).write_bytes(data)
    stored = [f"uploads/{job_id}/{index}" for index in range(len(files))]
    _, item_ids = catalog.create_job(ctx.conn, "upload", "phone", list(zip(files, stored)), job_id=job_id)
    return dict(zip(files, item_ids))


def heic_bytes(image: Image.Image, **save) -> bytes:
    data = io.BytesIO()
    image.save(data, "HEIF", quality=70, **save)
    return data.getvalue()


def test_a_live_photo_is_one_photo_with_its_motion_clip(ctx, tmp_path):
    clip = phone_clip(tmp_path, "IMG_0001.MOV", -90, seconds=2.5)
    items = upload_job(ctx, {"IMG_0001.HEIC": heic_bytes(TENCH, exif=exif_orientation(6))})
    job_id = catalog.get_item(ctx.conn, items["IMG_0001.HEIC"])["job_id"]
    waiting = ctx.settings.uploads_dir / job_id / "1"
    shutil.copyfile(clip, waiting)  # the clip, uploaded beside its photo, rides with the photo's item
    catalog.set_item_motions(ctx.conn, {items["IMG_0001.HEIC"]: f"uploads/{job_id}/1"})
    outcome = ingest_item(items["IMG_0001.HEIC"], ctx)
    assert outcome.status == "indexed", outcome
    media = catalog.get_media(ctx.conn, outcome.media_id)
    assert (media["kind"], media["mime"], media["width"], media["height"]) == ("image", "image/heic", 375, 500)
    assert ctx.store.resolve(media["motion_path"]).read_bytes() == clip.read_bytes()
    assert media["path"].endswith(".heic") and ctx.store.resolve(media["path"]).is_file()
    assert catalog.counts(ctx.conn)["media"] == 1 and not waiting.exists()  # one item; the upload folder is cleared
    deleted = catalog.delete_media(ctx.conn, media["id"])
    assert media["motion_path"] in deleted.paths  # removed with its photo


def test_a_motion_clip_that_is_not_a_video_leaves_the_photo_alone(ctx):
    items = upload_job(ctx, {"IMG_0002.JPG": (PHOTOS / "n01440764_tench.JPEG").read_bytes(),
                             "IMG_0002.MOV": b"not a video at all, just text\n"})
    job_id = catalog.get_item(ctx.conn, items["IMG_0002.JPG"])["job_id"]
    catalog.set_item_motions(ctx.conn, {items["IMG_0002.JPG"]: f"uploads/{job_id}/1"})
    outcome = ingest_item(items["IMG_0002.JPG"], ctx)
    assert outcome.status == "indexed" and catalog.get_media(ctx.conn, outcome.media_id)["motion_path"] is None


def test_a_truncated_heic_fails_alone_and_the_others_are_indexed(ctx):
    whole = heic_bytes(TENCH)
    items = upload_job(ctx, {"cut.heic": whole[: len(whole) // 2], "fine.heic": heic_bytes(GOLDFISH),
                             "photo.dng": dng(TENCH, orientation=6)})
    outcomes = {name: ingest_item(item, ctx) for name, item in items.items()}
    assert outcomes["cut.heic"].status == "failed"
    assert outcomes["cut.heic"].reason.startswith("truncated or corrupt HEIC image")
    assert outcomes["fine.heic"].status == "indexed" and outcomes["photo.dng"].status == "indexed"
    raw = catalog.get_media(ctx.conn, outcomes["photo.dng"].media_id)
    assert (raw["mime"], raw["width"], raw["height"]) == ("image/x-adobe-dng", 374, 500)
    assert raw["path"].endswith(".dng")


def test_a_video_browsers_cannot_play_gets_an_h264_preview_and_one_they_play_does_not(ctx, tmp_path):
    hevc, h264 = tmp_path / "hevc.mov", tmp_path / "h264.mp4"
    colour_change_clip(hevc, "-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error", "-c:a", "aac")
    colour_change_clip(h264, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac")
    items = upload_job(ctx, {"hevc.mov": hevc.read_bytes(), "h264.mp4": h264.read_bytes()})
    outcomes = {name: ingest_item(item, ctx) for name, item in items.items()}
    assert {o.status for o in outcomes.values()} == {"indexed"}
    converted = catalog.get_media(ctx.conn, outcomes["hevc.mov"].media_id)
    assert converted["mime"] == "video/quicktime" and codec_of(ctx.store.resolve(converted["path"])) == "hevc"
    assert codec_of(ctx.store.resolve(converted["preview_path"])) == "h264"
    assert catalog.get_media(ctx.conn, outcomes["h264.mp4"].media_id)["preview_path"] is None
    frames = catalog.frames_of_media(ctx.conn, converted["id"])
    assert frames and all(0 <= f["timestamp"] < 3.1 for f in frames)  # the preview seeks to these moments


def test_stage_preview_reads_the_open_descriptor_and_writes_into_the_store(ctx, tmp_path):
    clip = phone_clip(tmp_path, "portrait.mov", -90)
    with open(clip, "rb") as handle:
        relative = preview.stage_preview(Descriptor(handle.fileno()), "ab" * 32, ctx.settings)
    assert relative == preview.preview_path("ab" * 32)
    made = ctx.store.resolve(relative)
    assert codec_of(made) == "h264" and red_on_top(frame_at(made, 0.5))
    assert not list(made.parent.glob("*.tmp"))
