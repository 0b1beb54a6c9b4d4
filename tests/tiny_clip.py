"""A tiny randomly initialised CLIP model directory for tests: the real tokenizer and preprocessor of
ViT-B/32 (from ../shared/models) with a config small enough to run in milliseconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REAL_MODEL_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "clip-vit-base-patch32"
TINY_DIM = 64
_COPIED = ("merges.txt", "vocab.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
           "preprocessor_config.json")


def make_tiny_clip_dir(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        shutil.copy(REAL_MODEL_DIR / name, target / name)
    real = json.loads((REAL_MODEL_DIR / "config.json").read_text())
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": TINY_DIM,
        "logit_scale_init_value": real["logit_scale_init_value"],
        "text_config": {**small, "vocab_size": real["text_config"]["vocab_size"], "max_position_embeddings": 77,
                        "bos_token_id": real["text_config"].get("bos_token_id", 49406),
                        "eos_token_id": real["text_config"].get("eos_token_id", 49407)},
        "vision_config": {**small, "image_size": 224, "patch_size": 32},
    }
    (target / "config.json").write_text(json.dumps(config, indent=1))
    return target
