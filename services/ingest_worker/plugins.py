"""Decoder plugins: more still-image file types, recognised by their first bytes and decoded by a function
of the plugin's own (MEDIASEARCH_DECODER_PLUGINS names the modules; each defines ``DECODERS``).

A plugin's decoder runs where every decoder runs: in the child process that decodes one file
(isolation.py), under the same hard time limit; if it crashes, only that file's attempt dies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from services.ingest_worker.sniff import MediaType


@dataclass(frozen=True)
class DecoderPlugin:
    media_type: MediaType  # kind "image"; its mime names the plugin, its extension the stored original
    magic: bytes  # the first bytes of every file of this type (at most sniff.SNIFF_BYTES)
    # (path, max_pixels, max_side) -> the picture as displayed, any size or mode; raises sniff.BadInput.
    # The path names the open file (/proc/self/fd/N): open it, and judge nothing by its name.
    decode: Callable[[Path, int, int], Image.Image]


def load(names: str) -> tuple[DecoderPlugin, ...]:
    """The decoders of the plugin modules named, comma separated, in ``names`` (the decoder_plugins setting)."""
    return _load(tuple(name.strip() for name in names.split(",") if name.strip()))


@lru_cache(maxsize=8)
def _load(modules: tuple[str, ...]) -> tuple[DecoderPlugin, ...]:
    decoders: list[DecoderPlugin] = []
    for name in modules:
        found = getattr(importlib.import_module(name), "DECODERS", None)
        if not isinstance(found, (list, tuple)) or not all(isinstance(d, DecoderPlugin) for d in found):
            raise ValueError(f"decoder plugin {name!r} must define DECODERS, a list of DecoderPlugin")
        if any(d.media_type.kind != "image" or not d.magic for d in found):
            raise ValueError(f"decoder plugin {name!r}: plugins decode still images with a non-empty magic")
        decoders.extend(found)
    return tuple(decoders)


def sniff_plugin(head: bytes, decoders: tuple[DecoderPlugin, ...]) -> MediaType | None:
    """The media type of the first plugin whose magic starts ``head``, else None."""
    return next((d.media_type for d in decoders if head.startswith(d.magic)), None)


def decoder_for(media_type: MediaType, decoders: tuple[DecoderPlugin, ...]) -> DecoderPlugin | None:
    return next((d for d in decoders if d.media_type == media_type), None)
