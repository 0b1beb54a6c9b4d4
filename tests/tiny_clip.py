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


# A few sentences in several scripts: the tiny SigLIP's tokenizer is trained on them, so it is multilingual
# the way SigLIP 2's Gemma tokenizer is (a byte fallback covers anything else).
MULTILINGUAL_SAMPLE = [
    "a dog jumps into the lake", "a photo of a parking sign in Lisbon", "the beach at sunset",
    "un chien saute dans le lac", "une photo d'un panneau de stationnement", "la plage au coucher du soleil",
    "ein Hund springt in den See", "der Strand bei Sonnenuntergang", "un perro salta al lago",
    "um cão salta para o lago", "собака прыгает в озеро", "пляж на закате", "狗跳进湖里", "日落时的海滩",
    "犬が湖に飛び込む", "夕暮れのビーチ", "كلب يقفز في البحيرة", "कुत्ता झील में कूदता है", "개가 호수에 뛰어든다",
]
TINY_SIGLIP_DIM = 48
TINY_SIGLIP_IMAGE = 96  # its own input size (CLIP's is 224), squashed, not cropped
TINY_SIGLIP_TOKENS = 16


def make_tiny_siglip_dir(target: Path) -> Path:
    """A tiny randomly initialised SigLIP (the architecture of SigLIP and SigLIP 2 at a fixed resolution)
    with a small multilingual tokenizer trained here: no download."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    target.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    specials = ["<pad>", "</s>", "<unk>"]
    tokenizer.train_from_iterator(MULTILINGUAL_SAMPLE, trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials + [f"<0x{byte:02X}>" for byte in range(256)]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=TINY_SIGLIP_TOKENS)
    fast.save_pretrained(target)
    ids = {token: tokenizer.token_to_id(token) for token in specials}
    small = {"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = {
        "architectures": ["SiglipModel"],
        "model_type": "siglip",
        "text_config": {**small, "hidden_size": 32, "projection_size": TINY_SIGLIP_DIM,
                        "vocab_size": tokenizer.get_vocab_size(), "max_position_embeddings": TINY_SIGLIP_TOKENS,
                        "pad_token_id": ids["<pad>"], "eos_token_id": ids["</s>"], "bos_token_id": ids["</s>"]},
        "vision_config": {**small, "hidden_size": TINY_SIGLIP_DIM, "image_size": TINY_SIGLIP_IMAGE, "patch_size": 16},
    }
    (target / "config.json").write_text(json.dumps(config, indent=1))
    (target / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "do_resize": True, "resample": 3,
        "size": {"height": TINY_SIGLIP_IMAGE, "width": TINY_SIGLIP_IMAGE}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        indent=1))
    return target
