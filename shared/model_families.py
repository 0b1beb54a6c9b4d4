"""The model families the embedder loads (MEDIASEARCH_CLIP_MODEL) and what differs between them: how texts
are fed to the text tower and the similarity thresholds the product uses with their vectors.

A family is named by the checkpoint's ``model_type`` (its config.json); transformers' Auto classes load any
checkpoint of one. SigLIP covers SigLIP and SigLIP 2 at a fixed resolution (``google/siglip2-base-patch16-224``
and its sizes; SigLIP 2's Gemma tokenizer makes it multilingual); SigLIP 2's NaFlex checkpoints
(``model_type`` siglip2, variable resolution) are not supported yet.

Thresholds (``Calibration``) are cosines between the family's vectors:
- ``text_match``: where a text and an image start to match. SigLIP learns it: its logit is
  ``scale * cosine + bias`` and a pair matches from probability 0.5, so at ``-bias / scale`` (the embedder
  reads both from the checkpoint; the default is google/siglip-base-patch16-224's, 12.9 / 117.3 = 0.11).
  CLIP learns no bias; ViT-B/32's matching text-image pairs sit around 0.25-0.35 (its zero-shot prompts
  score there), so 0.2. The UI's similarity slider spans twice it.
- ``logit_scale``: the temperature that turns cosines into zero-shot probabilities (album labels):
  CLIP's learned scale, clamped at 100; SigLIP's (read from the checkpoint, 117.3 by default).
- ``cluster``, ``relabel``, ``duplicate_visual``: image-to-image cosines (albums, visual duplicates),
  tuned on ViT-B/32. SigLIP's are CLIP's until measured on its real weights (our build machines have
  none); the MEDIASEARCH_CLUSTER_THRESHOLD and MEDIASEARCH_DUPLICATE_VISUAL_THRESHOLD settings override.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

MODEL_FILE = "model.json"


class UnsupportedModel(ValueError):
    """A checkpoint of a family the embedder cannot run; the message says which families it can."""


@dataclass(frozen=True)
class Calibration:
    text_match: float
    logit_scale: float
    cluster: float
    relabel: float
    duplicate_visual: float


@dataclass(frozen=True)
class ModelFamily:
    name: str
    max_logit_scale: float  # CLIP clamps its learned scale at 100 in training; SigLIP does not
    pad_texts_to_max: bool  # SigLIP was trained on texts padded to its full length, without a mask
    text_attention_mask: bool
    onnx_text: bool  # services/embedder/onnx_text.py exports this family's text tower
    calibration: Calibration

    def calibrated(self, logit_scale: float | None, logit_bias: float | None) -> Calibration:
        """The calibration with what this checkpoint learned: its logit scale and, where it learns one (SigLIP),
        its bias, which puts the text match at sigmoid(scale * cosine + bias) = 0.5."""
        found = self.calibration
        if logit_scale is not None:
            found = replace(found, logit_scale=min(logit_scale, self.max_logit_scale))
            if logit_bias is not None:
                found = replace(found, text_match=round(-logit_bias / logit_scale, 4))
        return found


FAMILIES = {
    "clip": ModelFamily("clip", max_logit_scale=100.0, pad_texts_to_max=False, text_attention_mask=True, onnx_text=True,
                        calibration=Calibration(text_match=0.2, logit_scale=100.0, cluster=0.72, relabel=0.95,
                                                duplicate_visual=0.95)),
    "siglip": ModelFamily("siglip", max_logit_scale=float("inf"), pad_texts_to_max=True, text_attention_mask=False, onnx_text=False,
                          calibration=Calibration(text_match=0.11, logit_scale=117.3, cluster=0.72, relabel=0.95,
                                                  duplicate_visual=0.95)),
}


def family(model_type: str) -> ModelFamily:
    """The family of a checkpoint's ``model_type``; UnsupportedModel for any other."""
    found = FAMILIES.get(model_type)
    if found is None:
        raise UnsupportedModel(f"model_type {model_type!r} is not a family mediasearch runs; it runs "
                               f"{', '.join(sorted(FAMILIES))} checkpoints (OpenAI CLIP, SigLIP, SigLIP 2 at a fixed "
                               "resolution)")
    return found


def model_type_of(source: str) -> str | None:
    """The ``model_type`` of MEDIASEARCH_CLIP_MODEL's config.json (a local directory, or a hub id in the model
    cache), without loading transformers; None when the config is not there or cannot be read."""
    local = Path(source).expanduser()
    try:
        if local.is_dir():
            path: object = local / "config.json"
        else:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(source, "config.json")
        if not isinstance(path, (str, Path)) or not Path(path).is_file():
            return None
        return json.loads(Path(path).read_text()).get("model_type")
    except (OSError, ValueError):  # not a hub id either (HFValidationError is a ValueError), unreadable
        return None


def record_model(directory: Path, model_id: str, family_name: str, calibration: Calibration) -> None:
    """What the embedder runs, beside the vectors it makes (MODEL_FILE): every service reads its calibration
    there, including what the checkpoint learned (SigLIP's bias) and whether or not it has the model."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{MODEL_FILE}.partial"
    partial.write_text(json.dumps({"model_id": model_id, "family": family_name, "calibration": asdict(calibration)}))
    partial.replace(directory / MODEL_FILE)


def calibration(settings) -> Calibration:
    """The thresholds for the model the embedder runs (its MODEL_FILE), else for the configured model's family
    (CLIP's when its config cannot be read here), with the settings that override them."""
    try:
        found = Calibration(**json.loads((settings.vectors_dir / MODEL_FILE).read_text())["calibration"])
    except (OSError, ValueError, KeyError, TypeError):
        model_type = _model_type_cached(settings.clip_model)
        found = FAMILIES.get(model_type or "clip", FAMILIES["clip"]).calibration
    overrides = {"cluster": settings.cluster_threshold, "relabel": settings.cluster_relabel_cosine,
                 "duplicate_visual": settings.duplicate_visual_threshold}
    return replace(found, **{name: value for name, value in overrides.items() if value is not None})


_model_types: dict[str, str] = {}


def _model_type_cached(source: str) -> str | None:
    """model_type_of, remembered once found (a model downloaded later is found then)."""
    if source not in _model_types and (found := model_type_of(source)) is not None:
        _model_types[source] = found
    return _model_types.get(source)
