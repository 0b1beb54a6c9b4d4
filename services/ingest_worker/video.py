"""Videos: keep frames at a sampling rate with a minimum spacing, drop frames that look like the last kept
one, and record each kept frame's true presentation time; decode with PyAV (FFmpeg's libraries) only what
that needs.

What is decoded: sampling keeps the first frame at or after each point of a grid (one a second by
default). Packets are read ahead of the decoder (reading is cheap, decoding is not), which says which
packet holds the first frame of each grid interval before any is decoded. Every other frame is decoded
only if another frame refers to it (the decoder skips non-reference frames), and not at all where a
keyframe at or before the next grid point follows: decoding restarts from that keyframe. So a clip with
keyframes every few seconds costs the reference frames up to the last grid point of each group of
pictures, and one with keyframes denser than the grid little more than a frame per grid point. The
decoder runs on its own threads.

A phone films portrait video as landscape frames with a rotation in the container (the display matrix,
once the ``rotate`` tag): each frame carries it, and kept frames are turned upright.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from services.ingest_worker.sniff import BadInput

_HIST_SIDE = 160  # frames are compared at this width: plenty for a colour histogram, and cheap
_HIST_BINS = [16, 16, 8]
_HIST_RANGES = [0, 180, 0, 256, 0, 256]
_EPSILON_S = 1e-6
_READ_AHEAD_BYTES = 64 * 2**20  # packets held ahead of the decoder, at most (a few seconds of 4K)
# The display matrix's counter-clockwise rotation and the turn that makes the frame upright.
_UPRIGHT = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_270,
            180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180}


@dataclass(frozen=True)
class SamplingPolicy:
    sample_fps: float
    min_spacing_s: float
    hist_threshold: float
    max_frames: int
    max_side: int
    max_pixels: int  # per frame: the same decompression-bomb limit as for images


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float | None
    duration: float
    decoded_frames: int
    kept_frames: int


# Receives each kept frame: RGB, upright, longest side at most ``max_side``, and its timestamp in seconds.
FrameSink = Callable[[Image.Image, float], None]
# Hears the video's duration in seconds as its container declares it, before decoding starts.
DurationSink = Callable[[float], None]


def sample_video(path: Path, policy: SamplingPolicy, on_frame: FrameSink,
                 on_duration: DurationSink | None = None) -> VideoInfo:
    """Decode ``path`` and hand every kept frame to ``on_frame``; raises BadInput for unreadable videos."""
    with _opened(path) as (container, stream):
        return _sample(container, stream, policy, on_frame, on_duration)


@contextmanager
def _opened(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The video's container and its first video stream; BadInput when it cannot be opened or has none."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise BadInput(f"not a readable video ({_reason(exc)})") from exc
    with container:
        if not container.streams.video:
            raise BadInput("not a readable video (no video stream)")
        yield container, container.streams.video[0]


def _sample(container: av.container.InputContainer, stream: av.video.stream.VideoStream, policy: SamplingPolicy,
            on_frame: FrameSink, on_duration: DurationSink | None) -> VideoInfo:
    decoder = stream.codec_context
    _check_pixels(decoder.width * decoder.height, policy.max_pixels)
    stream.thread_type = "AUTO"  # frame and slice threads, as many as there are cores
    time_base = stream.time_base
    start = stream.start_time or 0  # timestamps count from the stream's start, as players show them
    container_duration = _declared_duration(container, stream)
    if container_duration and on_duration is not None:
        on_duration(container_duration)
    period = 1.0 / policy.sample_fps
    if container_duration:
        # Spread the frame budget over the whole video rather than spending it on the beginning.
        period = max(period, container_duration / policy.max_frames)

    def seconds(pts: int | None) -> float | None:
        return None if pts is None else float((pts - start) * time_base)

    packets = _Packets(container.demux(stream), seconds)
    next_due = 0.0
    last_timestamp = -1e-9  # frames before zero are pre-roll (edit lists), not part of the video
    kept_timestamp: float | None = None
    kept_hist: np.ndarray | None = None
    width = height = decoded = kept = 0
    for frame in _frames(decoder, _to_decode(packets, period)):
        timestamp = seconds(frame.pts)
        if timestamp is None or timestamp <= last_timestamp:
            continue  # pre-roll, or a frame without a usable timestamp of its own
        last_timestamp = timestamp
        decoded += 1
        if timestamp + _EPSILON_S < next_due:
            continue
        while next_due <= timestamp + _EPSILON_S:
            next_due += period
        if kept_timestamp is not None and timestamp - kept_timestamp < policy.min_spacing_s:
            continue
        _check_pixels(frame.width * frame.height, policy.max_pixels)  # the size a stream declares may change midway
        hist = _hsv_histogram(frame)
        if kept_hist is not None and cv2.compareHist(kept_hist, hist, cv2.HISTCMP_BHATTACHARYYA) < policy.hist_threshold:
            continue
        on_frame(_upright_rgb(frame, policy.max_side), timestamp)
        width, height = (frame.height, frame.width) if frame.rotation in (90, -90, 270) else (frame.width, frame.height)
        kept, kept_timestamp, kept_hist = kept + 1, timestamp, hist
        if kept >= policy.max_frames:
            break
    if decoded == 0 or kept == 0:
        raise BadInput("not a readable video (no frame could be decoded)")
    # Every packet was read unless the frame budget stopped it; then trust the container.
    duration = max(packets.end, container_duration if kept >= policy.max_frames else 0.0)
    fps = stream.average_rate or stream.guessed_rate
    return VideoInfo(width, height, float(fps) if fps else None, duration, decoded, kept)


_SEEK_AHEAD_S = 2.0  # a frame this far past the last one decoded is reached by seeking, nearer by decoding on


def frames_at(path: Path, timestamps: list[float], max_side: int, max_pixels: int) -> Iterator[tuple[int, Image.Image]]:
    """The frames that sample_video kept at ``timestamps`` (seconds, as it gave them), decoded again at up to
    ``max_side`` pixels on the longest side, upright: ``(index in timestamps, frame)`` in time order. Each is
    reached by seeking to the keyframe before it (or by decoding on, when it is near), then decoding up to
    it. Raises BadInput for a video that cannot be read."""
    with _opened(path) as (container, stream):
        _check_pixels(stream.codec_context.width * stream.codec_context.height, max_pixels)
        stream.thread_type = "AUTO"
        start, time_base = stream.start_time or 0, stream.time_base
        decoded: Iterator[av.VideoFrame] = iter(())
        position = math.inf  # the time of the last frame decoded: none yet
        try:
            for index, wanted in sorted(enumerate(timestamps), key=lambda pair: pair[1]):
                if not position <= wanted <= position + _SEEK_AHEAD_S:
                    container.seek(start + int(wanted / time_base), stream=stream, backward=True, any_frame=False)
                    decoded = container.decode(stream)
                for frame in decoded:
                    if frame.pts is None:
                        continue
                    position = float((frame.pts - start) * time_base)
                    if position + _EPSILON_S >= wanted:
                        yield index, _upright_rgb(frame, max_side)
                        break
        except av.FFmpegError as exc:
            raise BadInput(f"not a readable video ({_reason(exc)})") from exc


def _check_pixels(pixels: int, max_pixels: int) -> None:
    if pixels > max_pixels:
        raise BadInput(f"video frames of {pixels} pixels exceed the limit of {max_pixels} "
                       "(MEDIASEARCH_MAX_IMAGE_PIXELS)")


def _declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration and container.duration > 0 else 0.0


class _Packets:
    """The video stream's packets in decoding order, each with its presentation time, and where the last
    one read ends."""

    def __init__(self, demuxed: Iterator[av.Packet], seconds: Callable[[int | None], float | None]):
        self._demuxed, self._seconds = demuxed, seconds
        self.end = 0.0

    def __iter__(self) -> Iterator[tuple[av.Packet, float | None]]:
        while True:
            try:
                packet = next(self._demuxed)
            except StopIteration:
                return
            except av.FFmpegError:
                return  # a damaged or truncated file: what was read so far is all there is
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            time = self._seconds(packet.pts)
            if time is not None:
                self.end = max(self.end, time + float((packet.duration or 0) * packet.time_base))
            yield packet, time


def _to_decode(packets: _Packets, period: float) -> Iterator[tuple[av.Packet, bool]]:
    """The packets worth decoding, in decoding order, each with whether its frame may be kept: the first
    frame of a grid interval (or one without a timestamp). Packets that nothing kept can need (those
    followed by a keyframe at or before the next grid point, and those after the last possible keep)
    are left out."""

    def interval(time: float) -> int:
        return math.floor((time + _EPSILON_S) / period)

    earliest: dict[int, float] = {}  # grid interval -> the earliest presentation time read in it

    def may_be_kept(time: float | None) -> bool:
        return time is None or (time >= -_EPSILON_S and earliest[interval(time)] == time)

    source = iter(packets)
    ahead: deque[tuple[av.Packet, float | None]] = deque()
    ahead_bytes, latest, exhausted = 0, -math.inf, False

    def read_until(horizon: float) -> None:
        """Read ahead until a packet shown after ``horizon`` (at least one packet; none past the end)."""
        nonlocal ahead_bytes, latest, exhausted
        while not exhausted and (not ahead or latest <= horizon and ahead_bytes < _READ_AHEAD_BYTES):
            item = next(source, None)
            if item is None:
                exhausted = True
                return
            packet, time = item
            ahead.append(item)
            ahead_bytes += packet.size
            if time is not None:
                latest = max(latest, time)
                slot = interval(time)
                earliest[slot] = min(earliest.get(slot, math.inf), time)

    def pop() -> av.Packet:
        nonlocal ahead_bytes
        packet, _ = ahead.popleft()
        ahead_bytes -= packet.size
        return packet

    while True:
        read_until(-math.inf)
        if not ahead:
            return
        head_time = ahead[0][1]
        if head_time is not None:
            # Read past the next grid point: what comes before it says whether the head may be kept
            # (the first frame of its interval may be decoded after it) and whether a keyframe follows.
            next_point = (interval(head_time) + 1) * period + _EPSILON_S
            read_until(next_point)
        if may_be_kept(head_time):
            yield pop(), True
            continue
        restart = None
        for index in range(1, len(ahead)):
            packet, time = ahead[index]
            if packet.is_keyframe and time is not None and time <= next_point:
                restart = index  # decoding can start over here, whether or not this frame is kept
                break
            if may_be_kept(time):
                break
        else:
            if exhausted:
                restart = len(ahead)  # nothing after the head may be kept
        if restart is not None:
            for _ in range(restart):
                pop()  # nothing kept refers to these
        else:
            # The packets up to the needed one in the head's interval have the same next grid point, so
            # the same answer: decode them.
            yield pop(), False
            while ahead and ahead[0][1] is not None and interval(ahead[0][1]) == interval(head_time) \
                    and not may_be_kept(ahead[0][1]):
                yield pop(), False


def _frames(decoder: av.VideoCodecContext, plan: Iterator[tuple[av.Packet, bool]]) -> Iterator[av.VideoFrame]:
    """The decoded frames of the planned packets, in presentation order; a damaged packet gives none."""
    for packet, may_be_kept in plan:
        # A frame that may be kept is decoded whatever it is; any other only if a later one refers to it.
        decoder.skip_frame = "DEFAULT" if may_be_kept else "NONREF"
        try:
            frames = decoder.decode(packet)
        except av.FFmpegError:
            continue
        yield from frames
    yield from decoder.decode(None)  # the frames still held for reordering or by the decoder's threads


def _reason(exc: av.FFmpegError) -> str:
    return (exc.strerror or type(exc).__name__)[:200]


def _hsv_histogram(frame: av.VideoFrame) -> np.ndarray:
    small = frame.to_ndarray(width=_HIST_SIDE, height=max(1, round(frame.height * _HIST_SIDE / frame.width)),
                             format="rgb24", interpolation="AREA")
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, _HIST_BINS, _HIST_RANGES)
    return cv2.normalize(hist, hist).flatten()


def _upright_rgb(frame: av.VideoFrame, max_side: int) -> Image.Image:
    width, height = frame.width, frame.height
    scale = min(1.0, max_side / max(width, height))
    image = frame.to_image(width=max(1, round(width * scale)), height=max(1, round(height * scale)),
                           interpolation="AREA")
    turn = _UPRIGHT.get(frame.rotation)
    return image.transpose(turn) if turn is not None else image
