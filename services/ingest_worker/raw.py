"""Camera RAW (DNG, CR2, CR3, NEF, ARW, RAF, ORF, ...) through LibRaw (rawpy): the preview JPEG the camera
embedded when it is large enough for a frame (fast: no demosaicing), else the sensor data developed at
half size. Either way the camera's orientation is applied, as EXIF orientation is for a JPEG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

from services.ingest_worker.sniff import BadInput, MediaType

# LibRaw's flip (0 none, 3 half turn, 5 quarter turn counter-clockwise, 6 clockwise) as a transpose.
_TRANSPOSES = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def decode_raw(path: Path, media_type: MediaType, max_pixels: int, max_side: int) -> tuple[int, int, Image.Image]:
    """``(width, height, picture)``: the size of the developed image as displayed and an upright RGB
    picture of it, at least ``max_side`` on its longest side when the file allows. Refuses sensors over
    ``max_pixels`` before unpacking them; raises BadInput naming the format when LibRaw cannot read it."""
    try:
        with rawpy.RawPy() as raw:
            raw.open_file(str(path))
            sizes = raw.sizes
            if sizes.raw_width * sizes.raw_height > max_pixels:
                raise BadInput(f"image too large: its sensor has {sizes.raw_width} × {sizes.raw_height} pixels, "
                               f"over the limit of {max_pixels} pixels (refused without decoding)")
            width, height = (sizes.height, sizes.width) if sizes.flip in (5, 6) else (sizes.width, sizes.height)
            picture = _preview(raw, max_side, max_pixels)
            if picture is not None:
                transpose = _TRANSPOSES.get(sizes.flip)
                return width, height, picture.transpose(transpose) if transpose is not None else picture
            raw.unpack()
            developed = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)  # flip applied
            return width, height, Image.fromarray(np.ascontiguousarray(developed), "RGB")
    except rawpy.LibRawFileUnsupportedError as exc:
        raise BadInput(f"unsupported format: {media_type.name} could not be decoded: {_detail(exc)}") from None
    except (rawpy.LibRawError, OSError) as exc:
        raise BadInput(f"truncated or corrupt {media_type.name} ({_detail(exc)})") from None


def _detail(exc: Exception) -> str:
    """LibRaw's message (rawpy hands it over as bytes)."""
    message = exc.args[0] if exc.args else ""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return (text or type(exc).__name__)[:200]


def _preview(raw: rawpy.RawPy, max_side: int, max_pixels: int) -> Image.Image | None:
    """The embedded preview as RGB when its longest side reaches ``max_side``; None when there is none,
    it is smaller, or it cannot be read (the sensor data is developed instead)."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError, rawpy.LibRawDataError,
            rawpy.LibRawIOError):
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            with Image.open(io.BytesIO(thumb.data), formats=["JPEG"]) as preview:
                if max(preview.size) < max_side or preview.width * preview.height > max_pixels:
                    return None
                preview.draft("RGB", (max_side, max_side))
                return preview.convert("RGB")
        bitmap = np.ascontiguousarray(thumb.data)
        if bitmap.dtype != np.uint8 or bitmap.ndim != 3 or bitmap.shape[2] != 3 or max(bitmap.shape[:2]) < max_side:
            return None
        return Image.fromarray(bitmap, "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
