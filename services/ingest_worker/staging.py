"""Decoding one file into its normalised frames and thumbnails on disk: the part of ingesting that runs
foreign native code (libjpeg, libpng, libav, a plugin's decoder), so the part the worker runs in a decoder
process, one file at a time (isolation.py), under a hard time limit scaled to the file.

Frames are written atomically to the media store under content-addressed names, so a killed attempt
leaves at most temporary files (``discard_partial``) and the next attempt writes the same names again.
They are not fsynced one by one: the worker syncs the file system once before their rows are recorded.
Nothing here touches the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from services.ingest_worker import metadata, plugins
from services.ingest_worker.images import DecodedImage, decode_image, encode_jpeg, fit, perceptual_hash
from services.ingest_worker.isolation import Descriptor
from services.ingest_worker.metadata import Capture
from services.ingest_worker.sniff import BadInput, MediaType
from services.ingest_worker.video import SamplingPolicy, sample_video
from shared.media_store import MediaStore
from shared.safe_open import descriptor_path
from shared.settings import Settings


@dataclass
class StagedFrame:
    path: str
    thumb_path: str
    width: int
    height: int
    timestamp: float | None


@dataclass
class StagedMedia:
    width: int
    height: int
    duration: float | None = None
    fps: float | None = None
    phash: str | None = None
    frames: list[StagedFrame] = field(default_factory=list)
    capture: Capture | None = None  # when asked for: when, where and with what it was taken


def sampling_policy(settings: Settings) -> SamplingPolicy:
    return SamplingPolicy(sample_fps=settings.video_sample_fps, min_spacing_s=settings.video_min_spacing_s,
                          hist_threshold=settings.video_hist_threshold, max_frames=settings.video_max_frames,
                          max_side=settings.frame_max_side, max_pixels=settings.max_image_pixels)


def time_limit(settings: Settings, size: int, duration: float | None = None) -> float:
    """How long decoding a file of ``size`` bytes (and ``duration`` seconds of video) may take."""
    limit = (settings.ingest_time_limit_base_s + settings.ingest_time_limit_per_mb_s * size / 2**20
             + settings.ingest_time_limit_per_video_s * (duration or 0.0))
    return min(limit, settings.ingest_time_limit_max_s)


def stage(source: Descriptor, media_type: MediaType, sha256: str, settings: Settings, read_metadata: bool = False,
          on_duration: Callable[[float], None] | None = None) -> StagedMedia:
    """Decode the open file ``source`` and write its frames and thumbnails (with ``read_metadata``, read its
    capture metadata too: one child process instead of two); ``on_duration`` hears a video's length as soon
    as its container tells it (the time limit grows with it). Raises BadInput for unusable files. Decoders
    read it by its descriptor path (/proc/self/fd/N), never by its name."""
    store = MediaStore(settings.data_path)
    path = Path(descriptor_path(source.fd))
    capture = metadata.read_descriptor(source, media_type.kind) if read_metadata else None
    if media_type.kind == "image":
        decoded = _decode_image(path, media_type, settings)
        return StagedMedia(decoded.width, decoded.height, phash=perceptual_hash(decoded.frame),
                           frames=[_store_frame(decoded.frame, sha256, 0, None, store, settings)], capture=capture)
    frames: list[StagedFrame] = []
    info = sample_video(path, sampling_policy(settings),
                        lambda image, timestamp: frames.append(
                            _store_frame(image, sha256, len(frames), timestamp, store, settings)),
                        on_duration=on_duration)
    return StagedMedia(info.width, info.height, duration=info.duration, fps=info.fps, frames=frames,
                       capture=capture)


def _decode_image(source: Path, media_type: MediaType, settings: Settings) -> DecodedImage:
    plugin = plugins.decoder_for(media_type, plugins.load(settings.decoder_plugins))
    if plugin is None:
        return decode_image(source, media_type, settings.max_image_pixels, settings.frame_max_side)
    image = plugin.decode(source, settings.max_image_pixels, settings.frame_max_side)
    if image.width * image.height > settings.max_image_pixels:
        raise BadInput(f"image too large: {image.width} × {image.height} pixels, over the limit of "
                       f"{settings.max_image_pixels} pixels")
    return DecodedImage(image.width, image.height, fit(image.convert("RGB"), settings.frame_max_side))


def _store_frame(image: Image.Image, sha256: str, index: int, timestamp: float | None, store: MediaStore,
                 settings: Settings) -> StagedFrame:
    path, thumb_path = store.frame_path(sha256, index), store.thumb_path(sha256, index)
    store.write_atomic(path, encode_jpeg(image, settings.jpeg_quality))
    store.write_atomic(thumb_path, encode_jpeg(fit(image, settings.thumb_max_side), settings.jpeg_quality))
    return StagedFrame(path, thumb_path, image.width, image.height, timestamp)


def discard_partial(store: MediaStore, sha256: str) -> None:
    """Remove the temporary files an attempt killed while writing frames left behind (the frames it
    finished stay: the next attempt writes the same names)."""
    for first in (store.frame_path(sha256, 0), store.thumb_path(sha256, 0)):
        folder = store.resolve(first).parent
        for leftover in folder.glob(f".{sha256}-*.tmp"):
            leftover.unlink(missing_ok=True)

