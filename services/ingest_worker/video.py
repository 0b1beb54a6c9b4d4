"""Videos: decode with OpenCV (ffmpeg CLI as fallback), keep frames at a sampling rate with a minimum
spacing, drop frames that look like the last kept one, and record each kept frame's true timestamp.

A phone films portrait video as landscape frames with a rotation in the container (the display matrix,
once the ``rotate`` tag): both decoders apply it, so frames and thumbnails come out upright.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from services.ingest_worker.sniff import BadInput
from shared.safe_open import passed_fds

_HIST_SIDE = 160  # frames are compared at this width: plenty for a colour histogram, and cheap
_HIST_BINS = [16, 16, 8]
_HIST_RANGES = [0, 180, 0, 256, 0, 256]


@dataclass(frozen=True)
class SamplingPolicy:
    sample_fps: float
    min_spacing_s: float
    hist_threshold: float
    max_frames: int
    max_side: int
    max_pixels: int  # per frame: the same decompression-bomb limit as for images
    convert_timeout_s: float  # for the ffmpeg fallback; below the task's visibility timeout


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float | None
    duration: float
    decoded_frames: int
    kept_frames: int


# Receives each kept frame: RGB, longest side at most ``max_side``, and its timestamp in seconds.
FrameSink = Callable[[Image.Image, float], None]
# Hears the video's duration in seconds as its container declares it, before decoding starts.
DurationSink = Callable[[float], None]


def sample_video(path: Path, policy: SamplingPolicy, on_frame: FrameSink,
                 on_duration: DurationSink | None = None) -> VideoInfo:
    """Decode ``path`` and hand every kept frame to ``on_frame``; raises BadInput for unreadable videos."""
    capture = _open(path)
    if capture is None:
        if on_duration is not None and (declared := probe_duration(path)):
            on_duration(declared)  # before the conversion, the slow part
        with transcoded_for_opencv(path, policy.convert_timeout_s) as copy:
            capture = _open(copy)
            if capture is None:
                raise BadInput("not a readable video (no frame could be decoded)")
            return _sample(capture, policy, on_frame, on_duration)
    return _sample(capture, policy, on_frame, on_duration)


def probe_duration(path: Path) -> float | None:
    """A video's duration as ffprobe reads it from the container; None without ffprobe or an answer."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    try:
        out = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              str(path)], check=False, capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL, pass_fds=passed_fds(path)).stdout
        return float(out.strip())
    except (subprocess.TimeoutExpired, ValueError):
        return None


def _open(path: Path) -> cv2.VideoCapture | None:
    """A capture positioned before its first frame, or None when OpenCV cannot decode the file."""
    capture = _capture(path)
    if not capture.isOpened():
        return None
    if not capture.grab():
        capture.release()
        return None
    capture.release()  # the probe consumed a frame: reopen to start from the first one
    capture = _capture(path)
    return capture if capture.isOpened() else None


def _capture(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # upright frames for rotated phone clips (OpenCV's default)
    return capture


@contextmanager
def transcoded_for_opencv(path: Path, timeout_s: float):
    """The video stream re-encoded by the ffmpeg CLI as MJPEG in Matroska, keeping every original
    timestamp (no frame rate conversion), for codecs or containers OpenCV's own build cannot read."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BadInput("not a readable video (OpenCV cannot decode it and no ffmpeg is installed)")
    with tempfile.TemporaryDirectory(prefix="mediasearch-video-") as tmp:
        target = Path(tmp) / "video.mkv"
        try:
            done = subprocess.run(
                [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn",
                 "-fps_mode", "passthrough", "-c:v", "mjpeg", "-q:v", "3", str(target)],
                check=False, capture_output=True, text=True, timeout=timeout_s, pass_fds=passed_fds(path))
        except subprocess.TimeoutExpired as exc:
            raise BadInput(f"video could not be converted for decoding within {timeout_s:.0f} s") from exc
        if done.returncode != 0 or not target.exists():
            detail = (done.stderr.strip().splitlines() or ["no video stream"])[-1][:200]
            raise BadInput(f"not a readable video ({detail})")
        yield target


def _sample(capture: cv2.VideoCapture, policy: SamplingPolicy, on_frame: FrameSink,
            on_duration: DurationSink | None = None) -> VideoInfo:
    try:
        declared = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) * int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if declared > policy.max_pixels:
            raise BadInput(f"video frames of {declared} pixels exceed the limit of {policy.max_pixels} "
                           "(MEDIASEARCH_MAX_IMAGE_PIXELS)")
        fps = capture.get(cv2.CAP_PROP_FPS) or None
        frame_count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        container_duration = frame_count / fps if fps and frame_count > 0 else 0.0
        if container_duration and on_duration is not None:
            on_duration(container_duration)
        period = 1.0 / policy.sample_fps
        if container_duration:
            # Spread the frame budget over the whole video rather than spending it on the beginning.
            period = max(period, container_duration / policy.max_frames)
        next_due = 0.0
        last_timestamp = -1e-9  # frames before zero are pre-roll (edit lists), not part of the video
        kept_timestamp: float | None = None
        kept_hist: np.ndarray | None = None
        width = height = decoded = kept = 0
        while kept < policy.max_frames and capture.grab():
            timestamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if timestamp <= last_timestamp:
                continue  # pre-roll, or a frame without a usable timestamp of its own
            last_timestamp = timestamp
            decoded += 1
            if timestamp + 1e-6 < next_due:
                continue
            while next_due <= timestamp + 1e-6:
                next_due += period
            if kept_timestamp is not None and timestamp - kept_timestamp < policy.min_spacing_s:
                continue
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                continue
            height, width = bgr.shape[:2]
            hist = _hsv_histogram(bgr)
            if kept_hist is not None and cv2.compareHist(kept_hist, hist, cv2.HISTCMP_BHATTACHARYYA) < policy.hist_threshold:
                continue
            on_frame(_normalised_rgb(bgr, policy.max_side), timestamp)
            kept, kept_timestamp, kept_hist = kept + 1, timestamp, hist
        if decoded == 0 or kept == 0:
            raise BadInput("not a readable video (no frame could be decoded)")
        # Decoding ran to the end unless the frame budget stopped it; then trust the container.
        frame_time = 1.0 / fps if fps else 0.0
        duration = max(last_timestamp + frame_time, container_duration if kept >= policy.max_frames else 0.0)
        return VideoInfo(width, height, fps, duration, decoded, kept)
    finally:
        capture.release()


def _hsv_histogram(bgr: np.ndarray) -> np.ndarray:
    small = cv2.resize(bgr, (_HIST_SIDE, max(1, round(bgr.shape[0] * _HIST_SIDE / bgr.shape[1]))),
                       interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, _HIST_BINS, _HIST_RANGES)
    return cv2.normalize(hist, hist).flatten()


def _normalised_rgb(bgr: np.ndarray, max_side: int) -> Image.Image:
    height, width = bgr.shape[:2]
    if max(height, width) > max_side:
        scale = max_side / max(height, width)
        bgr = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
