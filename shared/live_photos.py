"""iPhone Live Photos: a still (HEIC or JPEG) and a short QuickTime clip saved side by side with the same
name (``IMG_0001.HEIC`` + ``IMG_0001.MOV``) are one item, the photo with its motion attached, not a
photo and a video.

Pairing is by name only, as phones and their exports lay the files out: it decides which file rides
along with which, never what a file is (the worker still sniffs the clip's content before keeping it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

STILL_SUFFIXES = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
MOTION_SUFFIXES = frozenset({".mov"})
# A Live Photo's clip is about 3 s: a few MB. A larger .mov beside a photo is a video of its own.
MAX_MOTION_BYTES = 30 * 1024**2


def pair_live_photos(files: Iterable[tuple[str, int]]) -> dict[str, str]:
    """The Live Photo pairs among ``files``, given as ``(relative path, size in bytes)`` with forward
    slashes: ``{still path: motion path}``.

    A pair is a still (.heic, .heif, .jpg, .jpeg) and a clip (.mov, under MAX_MOTION_BYTES) in the same
    folder whose names differ only in the suffix, the stems compared case-insensitively. A stem with more
    than one still or more than one clip (``a.heic`` and ``a.jpg`` beside ``a.mov``) is ambiguous: no pair.
    """
    stills: dict[tuple[str, str], list[str]] = {}
    clips: dict[tuple[str, str], list[str]] = {}
    for path, size in files:
        name = PurePosixPath(path)
        suffix = name.suffix.lower()
        key = (str(name.parent), name.stem.lower())
        if suffix in STILL_SUFFIXES:
            stills.setdefault(key, []).append(path)
        elif suffix in MOTION_SUFFIXES and size <= MAX_MOTION_BYTES:
            clips.setdefault(key, []).append(path)
    return {still[0]: clips[key][0] for key, still in stills.items()
            if len(still) == 1 and len(clips.get(key, ())) == 1}


def stored_motion_path(photo_sha256: str) -> str:
    """Where the motion clip of the photo with this content is kept, relative to the data dir. Named by the
    photo: the same clip ingested as a video of its own is another file, removed with its own media."""
    return f"media/motion/{photo_sha256[:2]}/{photo_sha256}.mov"
