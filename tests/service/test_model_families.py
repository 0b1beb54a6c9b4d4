"""Models of each family load through transformers' Auto classes at their own input size, embedding width and
text handling (services/embedder/model.py, shared/model_families.py); tiny random models, no download."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from services.embedder.model import ClipEmbedder, ModelUnavailable
from shared.model_families import FAMILIES, calibration, model_type_of, record_model
from shared.settings import INT8_MIN_COSINE, Settings
from tests.conftest import PHOTOS
from tests.tiny_clip import (
    MULTILINGUAL_SAMPLE,
    TINY_DIM,
    TINY_SIGLIP_DIM,
    TINY_SIGLIP_IMAGE,
    TINY_SIGLIP_TOKENS,
)

PHOTO = sorted(PHOTOS.iterdir())[0]


@pytest.fixture(scope="module")
def siglip(tiny_siglip_dir) -> ClipEmbedder:
    return ClipEmbedder(str(tiny_siglip_dir), random_weights=True, text_runtime="onnxruntime", int8=True)


def test_siglip_runs_at_its_own_size_and_width_with_texts_padded_to_its_length(siglip):
    assert siglip.family.name == "siglip" and siglip.dim == TINY_SIGLIP_DIM
    pixels = siglip.preprocess(PHOTO.read_bytes())
    assert pixels.shape == (3, TINY_SIGLIP_IMAGE, TINY_SIGLIP_IMAGE)  # squashed whole, not cropped
    image = siglip.embed_pixels(pixels[None])
    assert image.shape == (1, TINY_SIGLIP_DIM) and np.isclose(np.linalg.norm(image), 1, atol=1e-5)
    assert siglip.onnx_text is None  # the ONNX export is CLIP's; SigLIP's text tower stays on torch
    tokens = siglip.tokenizer(["a dog"], padding="max_length", max_length=siglip.max_text_tokens)["input_ids"]
    assert len(tokens[0]) == TINY_SIGLIP_TOKENS


def test_a_multilingual_tokenizer_gives_each_language_its_own_vector(siglip):
    vectors = siglip.embed_texts(MULTILINGUAL_SAMPLE)
    assert vectors.shape == (len(MULTILINGUAL_SAMPLE), TINY_SIGLIP_DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    similarities = vectors @ vectors.T
    assert (similarities[~np.eye(len(vectors), dtype=bool)] < 0.9999).all()  # no two texts collapse into one
    # a text embeds alike alone or in a batch (int8 quantises activations per batch): padded to the full
    # length, it needs no mask
    assert siglip.embed_texts([MULTILINGUAL_SAMPLE[12]])[0] @ vectors[12] >= INT8_MIN_COSINE


def test_each_family_has_its_own_calibration_and_settings_override_it(tiny_clip_dir, tiny_siglip_dir):
    assert model_type_of(str(tiny_clip_dir)) == "clip" and model_type_of(str(tiny_siglip_dir)) == "siglip"
    assert model_type_of("no-such/model-anywhere") is None
    clip, siglip = (calibration(Settings(clip_model=str(path))) for path in (tiny_clip_dir, tiny_siglip_dir))
    assert clip == FAMILIES["clip"].calibration and siglip == FAMILIES["siglip"].calibration
    assert siglip.text_match < clip.text_match  # SigLIP's matching pairs sit at lower cosines
    assert calibration(Settings(clip_model=str(tiny_siglip_dir), cluster_threshold=0.5)).cluster == 0.5
    # SigLIP's learned bias and scale say where a text matches an image: sigmoid(scale * cosine + bias) = 0.5
    learned = FAMILIES["siglip"].calibrated(logit_scale=117.33, logit_bias=-12.93)
    assert learned.text_match == pytest.approx(12.93 / 117.33, abs=1e-4) and learned.logit_scale == 117.33
    assert FAMILIES["clip"].calibrated(logit_scale=120.0, logit_bias=None).logit_scale == 100.0  # CLIP's clamp


def test_a_checkpoint_of_another_family_is_refused_in_one_line(tmp_path, tiny_clip_dir):
    other = shutil.copytree(tiny_clip_dir, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ModelUnavailable) as refused:
        ClipEmbedder(str(other), random_weights=True)
    message = str(refused.value)
    assert "'bert'" in message and "clip, siglip" in message and "\n" not in message


def test_clip_keeps_its_size_and_width(tiny_clip_dir):
    clip = ClipEmbedder(str(tiny_clip_dir), random_weights=True)
    assert clip.family.name == "clip" and clip.dim == TINY_DIM and clip.preprocess.crop == 224
    assert not clip.preprocess.squash


def test_every_service_reads_the_calibration_the_embedder_recorded(tmp_path):
    """The gateway and the workers may not have the model (compose gives the model cache to the embedder
    alone): they read what the embedder recorded beside the vectors, learned values included."""
    settings = Settings(data_dir=tmp_path, clip_model="/models/clip")  # a folder only the embedder sees
    assert model_type_of(settings.clip_model) is None and calibration(settings) == FAMILIES["clip"].calibration
    learned = FAMILIES["siglip"].calibrated(logit_scale=117.33, logit_bias=-12.93)
    record_model(settings.vectors_dir, "google/siglip-base-patch16-224", "siglip", learned)
    assert calibration(settings) == learned
    overridden = Settings(data_dir=tmp_path, clip_model="/models/clip", duplicate_visual_threshold=0.9)
    assert calibration(overridden) == replace(learned, duplicate_visual=0.9)
