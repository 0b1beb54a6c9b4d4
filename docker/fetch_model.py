"""Runs before the embedder in its container: puts the CLIP model into the model cache (HF_HOME) when
MEDIASEARCH_CLIP_MODEL names a Hugging Face hub repository and HF_HUB_OFFLINE=0.

The embedder itself only loads from a local directory or the cache, never from the network. This step
downloads once (weights about 600 MB; only the config and tokenizer with random weights) and is a quick
check afterwards. It never blocks the start: when the download fails, the embedder starts anyway and its
/health says in one line what is missing and how to provide it.
"""

import os
import sys

from huggingface_hub import HfApi, snapshot_download

from shared.settings import Settings

CONFIG_FILES = ["*.json", "*.txt"]  # config, preprocessor and tokenizer files
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the first the repository has


def files_to_fetch(repo: str, random_weights: bool) -> list[str]:
    if random_weights:
        return CONFIG_FILES
    present = set(HfApi().list_repo_files(repo))
    weights = next((name for name in WEIGHT_FILES if name in present), None)
    if weights is None:
        raise FileNotFoundError(f"{repo} has none of {', '.join(WEIGHT_FILES)}")
    return [*CONFIG_FILES, weights]


def main() -> None:
    settings = Settings()
    source = settings.clip_model
    if os.environ.get("HF_HUB_OFFLINE", "1").lower() not in ("0", "false", "no", "off"):
        return
    if source.startswith(("/", ".", "~")):  # a local directory: nothing to fetch
        return
    try:
        print(f"fetch_model: making sure {source} is in the model cache {os.environ.get('HF_HOME')}", flush=True)
        snapshot_download(source, allow_patterns=files_to_fetch(source, settings.clip_random_weights))
    except Exception as exc:  # noqa: BLE001  (no network, unknown repo, disk full...: the embedder says so)
        print(f"fetch_model: could not download {source}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)


if __name__ == "__main__":
    main()
