"""Browser-playable previews: a video no browser plays (HEVC from phones, MPEG-4 Part 2 or MJPEG from old
cameras, anything in AVI, H.264 in Matroska, PCM sound) gets an H.264/AAC MP4 copy at ingest, at most
720p, with its moov atom first (faststart) so that it streams and seeks at once. GET /video/{id} serves it
instead of the original, which stays at /media/{id}/original.

The copy keeps the original's timeline (every frame's time passes through, the start is the original's
start), so a matched moment's timestamp seeks to the same picture in it. ffmpeg applies the rotation of a
phone clip while converting: the preview is stored upright.

Made at ingest rather than on demand: a phone video plays at once the first time it is found, and the
cost (measured in the README) is paid once per video by the worker, not by a request waiting for it.
Runs in a decoder process (isolation.py); a video whose preview cannot be made is still
indexed, and its original is served.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.ingest_worker import staging
from services.ingest_worker.isolation import Descriptor
from services.ingest_worker.sniff import BadInput
from shared.media_store import MediaStore
from shared.safe_open import descriptor_path, passed_fds
from shared.settings import Settings

PLAYABLE_VIDEO_CODECS = {"h264", "vp8", "vp9", "av1"}
PLAYABLE_AUDIO_CODECS = {"aac", "mp3", "opus", "vorbis", "flac"}
WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis"}  # what Matroska may hold and still play as WebM
PLAYABLE_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}  # 10-bit and 4:2:2 H.264 do not play in browsers
PREVIEW_SHORT_SIDE = 720
# The shorter side at most 720 (never enlarged), both sides even as yuv420p needs.
_SHORT = f"trunc(min({{side}},{PREVIEW_SHORT_SIDE})/2)*2"
_SCALE = (f"scale=w='if(gte(iw,ih),-2,{_SHORT.format(side='iw')})'"
          f":h='if(gte(iw,ih),{_SHORT.format(side='ih')},-2)'")


def preview_path(sha256: str) -> str:
    """Where the preview of the video with this content is kept, relative to the data dir."""
    return f"media/previews/{sha256[:2]}/{sha256}.mp4"


@dataclass
class Probe:
    """What ffmpeg says of a file's container and streams."""
    container: set[str] = field(default_factory=set)  # the demuxer's names: {"mov", "mp4", ...}, {"matroska", "webm"}
    video: str = ""  # the first video stream's codec ("" without one)
    pixel_format: str = ""
    audio: set[str] = field(default_factory=set)
    duration: float | None = None


def probe(path: Path) -> Probe:
    """Read from ``ffmpeg -i``'s report (ffprobe is not in the image: its static ffmpeg comes alone)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return Probe()
    try:
        report = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)], check=False,
                                capture_output=True, text=True, errors="replace", timeout=60,
                                pass_fds=passed_fds(path)).stderr
    except subprocess.TimeoutExpired:
        return Probe()
    found = Probe()
    for line in report.splitlines():
        line = line.strip()
        if (match := _INPUT.match(line)) is not None:
            found.container = set(match.group(1).split(","))
        elif (match := _DURATION.match(line)) is not None:
            hours, minutes, seconds = match.groups()
            found.duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        elif (match := _STREAM.match(line)) is not None:
            kind, codec, rest = match.groups()
            if kind == "Audio":
                found.audio.add(codec)
            elif not found.video and "(attached pic)" not in rest:  # cover art is not the video
                found.video, found.pixel_format = codec, rest.split(",")[0].split("(")[0].strip()
    return found


_INPUT = re.compile(r"^Input #0, (.+), from ")
_DURATION = re.compile(r"^Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^Stream #0:\d+\S*: (Video|Audio): (\w+)[^,]*,?(.*)$")


def browser_playable(found: Probe) -> bool:
    """Whether browsers play the video as it is: H.264 (8-bit 4:2:0), VP8, VP9 or AV1 in MP4/QuickTime,
    or VP8, VP9 or AV1 in WebM/Matroska; sound, if any, that browsers decode in that container."""
    if found.video not in PLAYABLE_VIDEO_CODECS or not found.audio <= PLAYABLE_AUDIO_CODECS:
        return False
    if found.video == "h264" and found.pixel_format not in PLAYABLE_PIXEL_FORMATS:
        return False
    if "mp4" in found.container:
        return True
    return "matroska" in found.container and {found.video, *found.audio} <= WEBM_CODECS


def make_preview(path: Path, target: Path, timeout_s: float) -> None:
    """Convert ``path`` into a browser-playable MP4 at ``target`` (see the module's notes); BadInput when
    ffmpeg cannot."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BadInput("no ffmpeg is installed to make a browser preview")
    try:
        done = subprocess.run(
            [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(path), "-map", "0:v:0", "-map", "0:a:0?",
             "-sn", "-dn", "-map_metadata", "-1", "-fps_mode", "passthrough", "-vf", _SCALE,
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-movflags", "+faststart", "-f", "mp4", str(target)],
            check=False, capture_output=True, text=True, timeout=timeout_s, pass_fds=passed_fds(path))
    except subprocess.TimeoutExpired as exc:
        raise BadInput(f"the browser preview could not be made within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["ffmpeg failed"])[-1][:200]
        raise BadInput(f"the browser preview could not be made ({detail})")


def stage_preview(source: Descriptor, sha256: str, settings: Settings,
                  on_duration: Callable[[float], None] | None = None) -> str | None:
    """The preview of the open video ``source``, written to the media store, if browsers cannot play the
    original; returns its path relative to the data dir, or None when none is needed. Run by
    isolation.run_isolated: ``on_duration`` hears the video's length (the time limit grows with it)."""
    path = Path(descriptor_path(source.fd))
    found = probe(path)
    if browser_playable(found):
        return None
    if on_duration is not None and found.duration:
        on_duration(found.duration)
    store = MediaStore(settings.data_path)
    relative = preview_path(sha256)
    target = store.resolve(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{sha256}-preview-{uuid.uuid4().hex[:12]}.tmp")
    try:
        make_preview(path, partial, settings.ingest_time_limit_max_s)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return relative


def time_limit(settings: Settings, size: int, duration: float | None = None) -> float:
    """How long making a preview may take: as long as decoding the file may (a conversion of 1080p HEVC
    to 720p H.264 costs well under a second per second of video here; see the README)."""
    return staging.time_limit(settings, size, duration)


def discard_partial(store: MediaStore, sha256: str) -> None:
    """Remove what a preview killed while it was written left behind."""
    folder = store.resolve(preview_path(sha256)).parent
    for leftover in folder.glob(f".{sha256}-preview-*.tmp"):
        leftover.unlink(missing_ok=True)
