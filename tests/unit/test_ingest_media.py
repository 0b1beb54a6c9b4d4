"""The ingest worker's media functions on real files, without any service: type sniffing, image decoding
(formats, EXIF orientation, bombs, truncation), perceptual hashes, and video frame sampling."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.ingest_worker.images import decode_image, fit, perceptual_hash
from services.ingest_worker.sniff import SNIFF_BYTES, BadInput, sniff
from services.ingest_worker.staging import sampling_policy
from services.ingest_worker.video import SamplingPolicy, frames_at, sample_video
from shared.catalog import phash_distance
from shared.settings import Settings
from tests.samples import PHOTOS, VIDEOS, bomb_png, ffmpeg, jpeg, phone_clip

SETTINGS = Settings()
PHOTO = PHOTOS / "n01440764_tench.JPEG"
OTHER_PHOTO = PHOTOS / "n01443537_goldfish.JPEG"
ASL = VIDEOS / "asl_gestures"
DEFAULT_POLICY = sampling_policy(SETTINGS)


def frame_times(path: Path) -> list[float]:
    """Every frame's presentation time according to ffprobe, from the start of the stream (as players
    show it): the reference for "true" timestamps."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    times = [float(line.strip(",")) for line in out.split() if line.strip(",") not in ("", "N/A")]
    return [t - times[0] for t in times]


def container_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def sample(path: Path, policy: SamplingPolicy = DEFAULT_POLICY):
    kept: list[tuple[Image.Image, float]] = []
    info = sample_video(path, policy, lambda image, timestamp: kept.append((image, timestamp)))
    return info, kept


def head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)


# -- sniffing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pil_format, mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"),
                                              ("GIF", "image/gif"), ("BMP", "image/bmp"), ("TIFF", "image/tiff")])
def test_sniff_finds_the_real_image_type_whatever_the_name(tmp_path, pil_format, mime):
    with Image.open(PHOTO) as photo:
        path = tmp_path / "named-like-a-video.mp4"
        photo.save(path, pil_format)
    found = sniff(head(path))
    assert (found.kind, found.mime) == ("image", mime)


@pytest.mark.parametrize("content, reason", [
    (b"hello, this is a shopping list\nmilk\neggs\n", "not an image or video (content looks like text)"),
    ("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \u2014 menu".encode(), "not an image or video (content looks like text)"),
    (bytes(range(7, 71)) + os.urandom(64), "not an image or video (unrecognised content)"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not an image or video (content looks like a PDF document)"),
    (b"PK\x03\x04" + bytes(40), "an archive or compressed file: archives are not expanded; upload the files in it"),
    (b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00", "not an image or video (content looks like audio)"),
])
def test_sniff_explains_what_a_non_media_file_is(content, reason):
    with pytest.raises(BadInput) as caught:
        sniff(content[:SNIFF_BYTES])
    assert str(caught.value) == reason


# -- still images ----------------------------------------------------------------------------------
def _converted(tmp_path: Path, pil_format: str, **save) -> Path:
    path = tmp_path / f"photo.{pil_format.lower()}"
    with Image.open(PHOTO) as photo:
        photo.convert(save.pop("mode", "RGB")).save(path, pil_format, **save)
    return path


@pytest.mark.parametrize("pil_format, save", [
    ("JPEG", {}), ("PNG", {"mode": "RGBA"}), ("WEBP", {"quality": 80}), ("BMP", {}), ("TIFF", {"compression": "tiff_lzw"}),
    ("GIF", {"mode": "P"}),
])
def test_every_image_format_decodes_to_a_bounded_rgb_frame(tmp_path, pil_format, save):
    path = _converted(tmp_path, pil_format, **save)
    decoded = decode_image(path, sniff(head(path)), SETTINGS.max_image_pixels, max_side=128)
    assert (decoded.width, decoded.height) == (500, 375)
    assert decoded.frame.mode == "RGB"
    assert max(decoded.frame.size) == 128
    with Image.open(PHOTO) as original:
        reference = fit(original.convert("RGB"), 128)
    assert phash_distance(perceptual_hash(decoded.frame), perceptual_hash(reference)) <= SETTINGS.phash_max_distance


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    with Image.open(PHOTO) as first, Image.open(OTHER_PHOTO) as second:
        frames = [first.convert("RGB").resize((200, 150)), second.convert("RGB").resize((200, 150))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    decoded = decode_image(path, sniff(head(path)), SETTINGS.max_image_pixels, SETTINGS.frame_max_side)
    assert phash_distance(perceptual_hash(decoded.frame), perceptual_hash(frames[0])) < \
        phash_distance(perceptual_hash(decoded.frame), perceptual_hash(frames[1]))


def test_transparency_and_16_bit_greyscale_become_sensible_rgb(tmp_path):
    transparent = tmp_path / "clear.png"
    Image.new("RGBA", (40, 30), (0, 0, 0, 0)).save(transparent)
    decoded = decode_image(transparent, sniff(head(transparent)), SETTINGS.max_image_pixels, 512)
    assert decoded.frame.getpixel((0, 0)) == (255, 255, 255)  # on white, not black
    deep = tmp_path / "deep.tif"
    Image.frombytes("I;16", (64, 2), struct.pack("<128H", *([1000] * 64 + [3000] * 64))).save(deep)
    decoded = decode_image(deep, sniff(head(deep)), SETTINGS.max_image_pixels, 512)
    assert decoded.frame.getpixel((0, 0)) == (0, 0, 0) and decoded.frame.getpixel((0, 1)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "sideways.jpg"
    with Image.open(PHOTO) as photo:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90° clockwise to display"
        photo.save(path, "JPEG", exif=exif)
    decoded = decode_image(path, sniff(head(path)), SETTINGS.max_image_pixels, SETTINGS.frame_max_side)
    assert (decoded.width, decoded.height) == (375, 500)
    assert decoded.frame.size == (375, 500)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(100_000, 100_000))
    with pytest.raises(BadInput, match=r"image too large: it declares 10000000000 pixels, over the limit of 100000000"):
        decode_image(path, sniff(head(path)), SETTINGS.max_image_pixels, SETTINGS.frame_max_side)
    # Just over the limit (where Pillow would only warn) is refused too, with the declared size.
    with pytest.raises(BadInput, match=r"image too large: it declares 500 × 375 pixels"):
        decode_image(PHOTO, sniff(head(PHOTO)), 150_000, SETTINGS.frame_max_side)


def test_a_truncated_jpeg_is_reported_as_such(tmp_path):
    data = PHOTO.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match=r"^truncated or corrupt image$"):
        decode_image(path, sniff(head(path)), SETTINGS.max_image_pixels, SETTINGS.frame_max_side)


def test_a_resized_copy_has_a_close_perceptual_hash_and_another_photo_does_not():
    with Image.open(PHOTO) as photo, Image.open(OTHER_PHOTO) as other:
        original = fit(photo.convert("RGB"), SETTINGS.frame_max_side)
        copy = Image.open(io.BytesIO(jpeg(photo.convert("RGB").resize((300, 225)), 70))).convert("RGB")
        unrelated = fit(other.convert("RGB"), SETTINGS.frame_max_side)
    assert phash_distance(perceptual_hash(original), perceptual_hash(copy)) <= SETTINGS.phash_max_distance
    assert phash_distance(perceptual_hash(original), perceptual_hash(unrelated)) > SETTINGS.phash_max_distance


# -- videos ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(ASL.glob("*.mkv"))[:6] + [VIDEOS / "bottle-detection.mp4"],
                         ids=lambda p: p.name)
def test_real_clips_give_increasing_true_timestamps_within_their_duration(path):
    info, kept = sample(path)
    times = [t for _, t in kept]
    assert times and times[0] == 0.0
    assert all(a < b for a, b in pairwise(times))
    assert times[-1] < info.duration
    assert info.duration == pytest.approx(container_duration(path), abs=0.1)
    assert len(kept) <= info.duration * SETTINGS.video_sample_fps + 1
    true_times = frame_times(path)
    assert all(min(abs(t - true) for true in true_times) < 0.002 for t in times)
    assert all(max(image.size) <= SETTINGS.frame_max_side and image.mode == "RGB" for image, _ in kept)
    assert (info.width, info.height) == Image.open(io.BytesIO(_first_frame_png(path))).size


def _first_frame_png(path: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
                           "-c:v", "png", "-"], check=True, capture_output=True).stdout


def test_a_still_scene_keeps_far_fewer_frames_than_its_duration(tmp_path):
    still = tmp_path / "still.mp4"
    ffmpeg("-loop", "1", "-i", str(PHOTO), "-t", "6", "-r", "10", "-vf", "scale=320:-2", "-pix_fmt", "yuv420p",
           "-c:v", "libx264", str(still))
    info, kept = sample(still)
    assert info.duration == pytest.approx(6, abs=0.2)
    assert len(kept) == 1  # six samples due, five of them identical to the first


def test_timestamps_come_from_the_decoder_not_from_frame_counting(tmp_path):
    # Variable frame rate: 20 fps for the first second, then 10 fps. Counting frames at the container's
    # nominal rate would put the frame shown at 2.0 s at 3.0 s.
    vfr = tmp_path / "vfr.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "4",
           "-vf", "settb=1/1000,setpts='if(lt(N,20),N*0.05,1+(N-20)*0.1)/TB'",
           "-fps_mode", "passthrough", "-enc_time_base", "1:1000", "-c:v", "mjpeg", str(vfr))
    everything = replace(DEFAULT_POLICY, sample_fps=1, min_spacing_s=0.4, hist_threshold=0, max_frames=100, max_side=512)
    info, kept = sample(vfr, everything)
    assert [round(t, 3) for _, t in kept] == [0.0, 1.0, 2.0, 3.0]
    assert info.duration == pytest.approx(4.0, abs=0.01)


# A clip that shows its own frame number (nine black or white blocks along the bottom half, lowest bit on
# the left) under a colour that changes every second (the top half), so the diversity filter keeps one
# frame a second and each kept frame says which frame it is.
NUMBERED_FPS, NUMBERED_BITS = 30, 9
_BIT = f"if(gt(Y,H/2),if(mod(floor(N/pow(2,floor(X*{NUMBERED_BITS}/W))),2),235,16),"


def numbered_clip(path: Path, seconds: int, *codec: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"color=black:size=288x160:rate={NUMBERED_FPS}:duration={seconds}",
           "-vf", f"geq=r='{_BIT}255*mod(floor(T),2))':g='{_BIT}255*mod(floor(T/2),2))'"
                  f":b='{_BIT}255*mod(floor(T/4),2))'", *codec, str(path))
    return path


def frame_number(image: Image.Image) -> int:
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    height, width = pixels.shape
    row = pixels[height * 5 // 8: height * 7 // 8]
    return sum(1 << bit for bit in range(NUMBERED_BITS)
               if row[:, (2 * bit + 1) * width // (2 * NUMBERED_BITS)].mean() > 128)


X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-sc_threshold", "0", "-crf", "18"]


@pytest.mark.parametrize("name, codec", [
    ("gop-4s-b-frames.mp4", [*X264, "-g", "120", "-bf", "3"]),
    ("gop-10s-sparse-keyframes.mp4", [*X264, "-g", "300", "-bf", "3"]),
    ("keyframes-twice-a-second.mp4", [*X264, "-g", "15", "-bf", "2"]),
    ("hevc-b-frames.mov", ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
                           "-x265-params", "keyint=120:bframes=4:log-level=error"]),
    ("every-frame-a-keyframe.mkv", ["-c:v", "mjpeg", "-q:v", "3"]),
])
def test_every_second_of_the_grid_keeps_its_own_frame_at_its_true_time(tmp_path, name, codec):
    clip = numbered_clip(tmp_path / name, 12, *codec)
    info, kept = sample(clip)
    assert info.duration == pytest.approx(12, abs=0.05)
    assert [round(t) for _, t in kept] == list(range(12))  # one frame a second, none lost
    for image, timestamp in kept:
        assert abs(timestamp - round(timestamp)) < 1 / NUMBERED_FPS  # at or just after its grid point
        assert frame_number(image) == round(timestamp * NUMBERED_FPS)  # the frame shown at that time, intact
    assert info.decoded_frames < 12 * NUMBERED_FPS  # not every frame was decoded


def test_a_truncated_video_fails_alone(tmp_path):
    whole = numbered_clip(tmp_path / "whole.mp4", 4, *X264, "-g", "120", "-bf", "3")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the index (moov) comes last
    with pytest.raises(BadInput, match=r"^not a readable video"):
        sample(truncated)
    _, kept = sample(whole)  # the next video is read as if nothing happened
    assert [round(t) for _, t in kept] == [0, 1, 2, 3]


def test_a_video_damaged_in_the_middle_keeps_the_frames_before_the_damage(tmp_path):
    clip = numbered_clip(tmp_path / "clip.mkv", 8, *X264, "-g", "30", "-bf", "3")
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle: middle + len(data) // 10] = os.urandom(len(data) // 10)
    clip.write_bytes(bytes(data))
    info, kept = sample(clip)
    times = [round(t) for _, t in kept]
    assert times[:3] == [0, 1, 2] and all(a < b for a, b in pairwise(times))
    assert all(frame_number(image) == round(t * NUMBERED_FPS) for image, t in kept if t < 3)


def test_the_frame_budget_is_spread_over_the_whole_video():
    path = VIDEOS / "bottle-detection.mp4"
    info, kept = sample(path, replace(DEFAULT_POLICY, sample_fps=1, min_spacing_s=0.4, hist_threshold=0, max_frames=5,
                                             max_side=128))
    times = [t for _, t in kept]
    assert len(times) == 5 and times[-1] > 0.75 * info.duration
    assert info.duration == pytest.approx(container_duration(path), abs=0.1)


@pytest.mark.parametrize("extension, codec, mime", [
    (".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], "video/mp4"),
    (".mov", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], "video/quicktime"),
    (".webm", ["-c:v", "libvpx", "-b:v", "300k"], "video/webm"),
    (".avi", ["-c:v", "mpeg4"], "video/x-msvideo"),
    (".mkv", ["-c:v", "mjpeg"], "video/x-matroska"),
])
def test_every_container_is_recognised_and_sampled(tmp_path, extension, codec, mime):
    path = tmp_path / f"clip{extension}"
    ffmpeg("-i", str(ASL / "again.mkv"), "-an", "-vf", "scale=160:-2", *codec, str(path))
    assert sniff(head(path)).mime == mime
    info, kept = sample(path)
    assert kept and info.duration == pytest.approx(2.6, abs=0.15)
    assert all(a < b for a, b in pairwise(t for _, t in kept))


def test_a_file_that_only_looks_like_a_video_is_refused(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(4096))
    assert sniff(head(path)).kind == "video"
    with pytest.raises(BadInput, match=r"^not a readable video"):
        sample(path)


def test_ffmpeg_is_installed():
    assert shutil.which("ffmpeg"), "these tests make their videos with the ffmpeg CLI (make system-deps)"


def test_a_video_with_frames_over_the_pixel_limit_is_refused():
    with pytest.raises(BadInput, match="exceed the limit"):
        sample_video(ASL / "book.mkv", replace(DEFAULT_POLICY, max_pixels=100), lambda image, timestamp: None)


def test_kept_frames_are_decoded_again_at_their_timestamps_for_reading_their_text(tmp_path):
    """ocr.py reads a video's kept frames again, larger, from the original (frames_at): the same pictures,
    upright, in any order of timestamps."""
    clip = VIDEOS / "car-detection.mp4"
    kept: list[tuple[Image.Image, float]] = []
    sample_video(clip, DEFAULT_POLICY, lambda image, at: kept.append((image, at)))
    assert len(kept) >= 3
    wanted = [at for _, at in kept][::-1]  # asked for newest first: answered in time order, with their index
    again = list(frames_at(clip, wanted, max_side=4096, max_pixels=10**8))
    assert sorted(index for index, _ in again) == list(range(len(wanted)))
    for index, frame in again:
        sampled = next(image for image, at in kept if at == wanted[index])
        assert max(frame.size) > max(sampled.size) or frame.size == sampled.size
        difference = np.abs(np.asarray(frame.resize(sampled.size), dtype=np.int16) - np.asarray(sampled, dtype=np.int16))
        assert difference.mean() < 4, (wanted[index], difference.mean())
    portrait = phone_clip(tmp_path, "portrait.mp4", rotation=90, codec="libx264")
    (_, upright), = frames_at(portrait, [0.5], max_side=4096, max_pixels=10**8)
    assert upright.height > upright.width
    with pytest.raises(BadInput, match="not a readable video"):
        list(frames_at(Path(__file__), [0.0], max_side=512, max_pixels=10**8))
    with pytest.raises(BadInput, match="exceed the limit"):
        list(frames_at(clip, [0.0], max_side=512, max_pixels=1000))
