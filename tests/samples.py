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
