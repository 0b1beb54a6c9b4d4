"""The model fetched into the model cache on first start, as Immich and rclip do, with its progress.

When MEDIASEARCH_CLIP_MODEL names a Hugging Face hub repository (``openai/clip-vit-base-patch32``) that is
not in the model cache (``HF_HOME``) yet, the embedder downloads its config, preprocessor and tokenizer
files and one weights file (safetensors first) before loading it, from ``HF_ENDPOINT`` (the hub by
default). Progress goes to the log (every tenth) and to /health. Without internet (or with
MEDIASEARCH_MODEL_DOWNLOAD=false, or HF_HUB_OFFLINE=1) nothing is fetched and the embedder says in one
line what to do. A local directory is never downloaded into.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger("mediasearch.embedder")

SMALL_FILES = ("*.json", "*.txt", "*.model")  # config, preprocessor, tokenizer (spiece.model for SigLIP)
# The first the repository has; an index names the shards of a large checkpoint.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
MB = 1_000_000


def is_hub_id(source: str) -> bool:
    return not source.startswith(("/", ".", "~")) and not Path(source).expanduser().is_dir()


def in_cache(source: str, random_weights: bool) -> bool:
    """Whether the model cache already holds what loading ``source`` needs."""
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> str | None:
        found = try_to_load_from_cache(source, name)
        return found if isinstance(found, str) else None

    def weights_cached(name: str) -> bool:
        found = cached(name)
        return found is not None and (not name.endswith(".index.json")
                                      or all(cached(shard) for shard in _shards(Path(found))))

    return bool(cached("config.json")) and (random_weights or any(weights_cached(name) for name in WEIGHT_FILES))


def _shards(index: Path) -> list[str]:
    """The files a sharded checkpoint's index names."""
    return sorted(set(json.loads(index.read_text())["weight_map"].values()))


@dataclass
class DownloadProgress:
    """What /health shows while the model downloads; updated from the download's thread."""

    source: str
    bytes_total: int = 0
    bytes_done: int = 0
    files_total: int = 0
    files_done: int = 0

    def line(self) -> str:
        start = f"downloading the model {self.source} into the model cache: "
        if not self.files_total:
            return start + "asking the hub for its files"
        return (f"{start}{100 * self.bytes_done / max(1, self.bytes_total):.0f}% ({self.bytes_done / MB:.0f} of "
                f"{self.bytes_total / MB:.0f} MB, {self.files_done} of {self.files_total} files)")


def download(source: str, random_weights: bool, progress: DownloadProgress) -> None:
    """Fetch ``source``'s files into the model cache, counting bytes into ``progress``; raises what the hub
    client raises (no network, unknown repository, disk full)."""
    from huggingface_hub import HfApi, hf_hub_download

    siblings = {entry.rfilename: entry.size or 0
                for entry in HfApi().model_info(source, files_metadata=True).siblings or []}
    wanted = [name for name in siblings if "/" not in name and any(fnmatch.fnmatch(name, p) for p in SMALL_FILES)]
    if not random_weights:
        weights = next((name for name in WEIGHT_FILES if name in siblings), None)
        if weights is None:
            raise FileNotFoundError(f"{source} has none of {', '.join(WEIGHT_FILES)}")
        wanted.append(weights)
        if weights.endswith(".index.json"):
            wanted += _shards(Path(hf_hub_download(source, weights)))
    progress.files_total, progress.bytes_total = len(wanted), sum(siblings.get(name, 0) for name in wanted)
    log.info("%s", progress.line())
    counted = _counting_bar(progress)
    for name in wanted:
        hf_hub_download(source, name, tqdm_class=counted)
        progress.files_done += 1
    progress.bytes_done = progress.bytes_total  # files already in the cache were not streamed
    log.info("downloaded the model %s (%.0f MB)", source, progress.bytes_total / MB)


def _counting_bar(progress: DownloadProgress) -> type[tqdm]:
    """A silent progress bar class that adds the bytes streamed to ``progress`` and logs every tenth."""
    lock = threading.Lock()
    logged = [0]

    class Counting(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            with lock:
                progress.bytes_done += int(n or 0)
                tenth = 10 * progress.bytes_done // max(1, progress.bytes_total)
                if tenth > logged[0]:
                    logged[0] = tenth
                    log.info("%s", progress.line())
            return super().update(n)

    return Counting
