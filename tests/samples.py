"""Sample data for the tests of every tier: the shared photos and videos (in ../shared/data), files
made on the spot, and random unit vectors. Plain helpers, no fixtures."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from shared.organise.labels import VOCABULARY_FILE

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTOS = SHARED_DATA / "photos" / "imagenet-sample"
VIDEOS = SHARED_DATA / "videos"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` × ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors of ``dim`` float32s."""
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


QUERY_TEMPLATES = ("a photo of a {}", "{} at night", "my {} and a {} on holiday", "the {} in the snow",
                   "a blurry picture of a {} next to a {}", "{}", "two {}s", "a {} jumping into the lake",
                   "an old photo of a {} near a {} in the city", "a close-up of a {}")


def varied_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` different search phrases of 1 to ~20 tokens: query templates filled with everyday concepts
    (the album vocabulary), for checking a text tower's agreement over many inputs."""
    words = [line.strip() for line in VOCABULARY_FILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    while len(texts) < n:
        template = QUERY_TEMPLATES[rng.integers(len(QUERY_TEMPLATES))]
        text = template.format(*(words[i] for i in rng.integers(len(words), size=template.count("{}"))))
        if text not in texts:
            texts.append(text)
    return texts


# -- phone formats (tests/unit/test_formats.py, tests/service/test_formats_serving.py) ----------------------
def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def display_rotation(path: Path) -> float | None:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream_side_data=rotation", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return next((float(v) for v in out.replace(",", "\n").split() if v), None)


# The display rotation (counter-clockwise degrees, as ffprobe says) and how the frames are stored for it.
STORED_FOR = {-90: "transpose=2", 90: "transpose=1", 180: "hflip,vflip"}


def phone_clip(tmp_path: Path, name: str, rotation: int, codec: str = "libx265", seconds: float = 2.0) -> Path:
    """A portrait clip (red band at the top) stored as a phone stores it: frames turned, plus a display matrix."""
    stored = tmp_path / f"stored-{name}"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=180x320:rate=30:duration={seconds}",
           "-vf", f"drawbox=x=0:y=0:w=180:h=60:color=red:t=fill,{STORED_FOR[rotation]}",
           "-c:v", codec, "-pix_fmt", "yuv420p", *(["-tag:v", "hvc1", "-x265-params", "log-level=error"]
                                                   if codec == "libx265" else []), str(stored))
    clip = tmp_path / name
    ffmpeg("-i", str(stored), "-c", "copy", "-metadata:s:v:0", f"rotate={rotation % 360}", str(clip))
    assert display_rotation(clip) % 360 == rotation % 360  # the clip is what the test says it is
    return clip


def codec_of(path: Path) -> str:
    return subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                           "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def colour_change_clip(path: Path, *output: str) -> None:
    """Blue for 1.5 s, then yellow for 1.5 s, with sound."""
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=320x240:r=30:d=1.5", "-f", "lavfi",
           "-i", "color=c=yellow:s=320x240:r=30:d=1.5", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a", *output, str(path))

# How far the int8 embedder may place an image's own stored vector below its best match when the image is
# embedded again: a query embedded alone and a frame embedded in a batch differ by ~1e-4 (an int8 pass
# scales its activations per batch), below the gap between frames of different scenes.
INT8_NOISE = 2e-3


# -- pictures of words (OCR): rendered with the fonts Debian ships (fonts-dejavu-core, fonts-liberation) ------
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Italic.ttf")


def text_picture(words: str, font: str, size: int, angle: float, seed: int,
                 canvas: tuple[int, int] = (1200, 900)) -> Image.Image:
    """``words`` in dark ink on a light plate, turned by ``angle`` degrees, on a noisy background."""
    from PIL import ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    background = rng.integers(60, 200, (canvas[1] // 8, canvas[0] // 8, 3), dtype=np.uint8)
    picture = Image.fromarray(background).resize(canvas, Image.Resampling.BILINEAR)
    face = ImageFont.truetype(font, size)
    left, top, right, bottom = face.getbbox(words)
    plate = Image.new("RGBA", (right - left + size, bottom - top + size), (245, 240, 225, 255))
    ImageDraw.Draw(plate).text((size // 2 - left, size // 2 - top), words, font=face, fill=(20, 20, 30, 255))
    plate = plate.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    x = int(rng.integers(0, max(1, canvas[0] - plate.width)))
    y = int(rng.integers(0, max(1, canvas[1] - plate.height)))
    picture.paste(plate, (x, y), plate)
    return picture


def text_clip(path: Path, captions: list[str | None], size: tuple[int, int] = (960, 540)) -> None:
    """A clip of one second per caption (None: no words), each second on a background of its own colour."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for second, caption in enumerate(captions):
            colour = ((second * 90) % 256, (80 + second * 50) % 256, (200 - second * 40) % 256)
            frame = Image.new("RGB", size, colour)
            if caption:
                plate = text_picture(caption, FONTS[0], 72, 0, second, canvas=size)
                frame = Image.blend(frame, plate, 0.85)
            frame.save(Path(folder) / f"{second:03d}.png")
        ffmpeg("-framerate", "1", "-i", str(Path(folder) / "%03d.png"), "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-r", "25", "-g", "50", str(path))
