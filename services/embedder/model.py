"""The model loaded once: image preprocessing, image and text forward passes, L2-normalised float32 output.

Any checkpoint of a family in shared/model_families.py (CLIP, SigLIP, SigLIP 2), through transformers' Auto
classes, at its own input size and embedding width.

Weights come from a local directory or the Hugging Face cache (services/embedder/download.py fills it
first), never from the network here. With ``random_weights`` the real architecture is built from its
config under a fixed seed, so every restart produces the same vectors (tests, benchmarks, development
without weights).
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from services.embedder.onnx_text import OnnxTextTower, TextTower
from shared.model_families import UnsupportedModel, family

log = logging.getLogger("mediasearch.embedder")

RANDOM_WEIGHTS_PREFIX = "random-weights:"
RANDOM_WEIGHTS_SEED = 0
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded; the message is one line saying where we looked and what to do."""


class BadImage(ValueError):
    """Bytes that are not a decodable image."""


@dataclass(frozen=True)
class Preprocess:
    """The checkpoint's image preprocessing (its preprocessor_config.json): CLIP's shortest side to ``resize``
    (bicubic) and a centre crop, or SigLIP's whole image squashed to ``crop`` x ``crop``; then normalise."""

    resize: int
    crop: int
    mean: np.ndarray
    std: np.ndarray
    squash: bool = False

    @classmethod
    def from_config(cls, config: dict) -> Preprocess:
        size = config.get("size", {})
        mean, std = (np.asarray(config[name], dtype=np.float32) for name in ("image_mean", "image_std"))
        if isinstance(size, dict) and "shortest_edge" not in size:  # {"height", "width"}: no crop
            if size.get("height") != size.get("width"):
                raise ValueError(f"preprocessor_config.json: a {size} input is not square")
            return cls(int(size["height"]), int(size["height"]), mean, std, squash=True)
        resize = size["shortest_edge"] if isinstance(size, dict) else size
        crop = config.get("crop_size", {})
        crop = crop.get("height", resize) if isinstance(crop, dict) else crop
        return cls(int(resize), int(crop), mean, std)

    def __call__(self, data: bytes) -> np.ndarray:
        """Encoded image bytes -> float32 ``(3, crop, crop)`` model input. Raises BadImage."""
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise BadImage("not an image (unknown format or corrupt header)") from None
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BadImage(f"not a readable image ({exc})") from None
        limit = Image.MAX_IMAGE_PIXELS
        if limit and image.width * image.height > limit:
            raise BadImage(f"{image.width}x{image.height} pixels is more than the limit of {limit} "
                           "(MEDIASEARCH_MAX_IMAGE_PIXELS)")
        try:
            # JPEG can decode straight at a reduced scale; it never goes below the size we resize to.
            image.draft("RGB", _size_for_shortest_side(image.size, self.resize))
            image = image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise BadImage(f"not a readable image ({exc})") from None
        if self.squash:
            image = image.resize((self.crop, self.crop), Image.Resampling.BICUBIC)
        else:
            width, height = image.size
            scale = self.resize / min(width, height)
            new_size = (max(self.crop, round(width * scale)), max(self.crop, round(height * scale)))
            image = image.resize(new_size, Image.Resampling.BICUBIC)
            left, top = (new_size[0] - self.crop) // 2, (new_size[1] - self.crop) // 2
            image = image.crop((left, top, left + self.crop, top + self.crop))
        pixels = np.asarray(image, dtype=np.float32) * (1 / 255)
        pixels = (pixels - self.mean) / self.std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _size_for_shortest_side(size: tuple[int, int], shortest: int) -> tuple[int, int]:
    width, height = size
    scale = shortest / max(1, min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share one core's FPU, so count cores)."""
    allowed = os.sched_getaffinity(0)
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return len(allowed)
    return max(1, len(cores))


def pick_device(wanted: str) -> torch.device:
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ModelUnavailable("MEDIASEARCH_DEVICE=cuda but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


class ClipEmbedder:
    """The loaded model. Not thread-safe: one inference thread calls ``embed_*``."""

    def __init__(self, source: str, random_weights: bool = False, device: str = "auto", threads: int = 0,
                 int8: bool = False, text_int8: bool = False, text_runtime: str = "torch"):
        """``text_runtime`` "onnxruntime": on a CPU, texts go through ONNX Runtime (services/embedder/onnx_text.py),
        in int8 when ``int8`` or ``text_int8``; images stay on torch."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import cached_file

        self.device = pick_device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(threads or physical_cores())
        local = Path(source).expanduser()
        name = local.name if local.is_dir() else source
        self.real_weights = not random_weights
        self.model_id = name if self.real_weights else RANDOM_WEIGHTS_PREFIX + name
        path = str(local) if local.is_dir() else source
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            self.family = family(config.model_type)
            if random_weights:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(RANDOM_WEIGHTS_SEED)
                    model = AutoModel.from_config(config)
            else:
                model = AutoModel.from_pretrained(path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.preprocess = Preprocess.from_config(json.loads(Path(cached_file(
                path, "preprocessor_config.json", local_files_only=True)).read_text()))
        except UnsupportedModel as exc:
            raise ModelUnavailable(f"{source}: {exc}") from None
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailable(_missing_weights_line(source, local, random_weights, exc)) from None
        self.calibration = self.family.calibrated(*_learned_logit(model)) if self.real_weights else \
            self.family.calibration  # random weights learned nothing
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)
        model.eval()
        self.dtype = torch.float32
        self.onnx_text: OnnxTextTower | None = None
        if self.device.type == "cpu" and text_runtime == "onnxruntime" and not self.family.onnx_text:
            log.info("the %s text tower runs on torch (the ONNX export covers CLIP's)", self.family.name)
        elif self.device.type == "cpu" and text_runtime == "onnxruntime":
            try:
                self.onnx_text = OnnxTextTower(model, int8=int8 or text_int8, threads=torch.get_num_threads())
                model.text_model = torch.nn.Identity()  # its weights live in the ONNX session now
            except Exception as exc:  # noqa: BLE001 (export, quantiser and runtime raise their own kinds)
                log.warning("the text tower stays on torch: ONNX Runtime could not take it (%s: %s)",
                            type(exc).__name__, str(exc)[:300])
        if self.device.type == "cuda":
            self.dtype = torch.float16
            model = model.half()
        elif int8:
            model = _quantized(model)
        elif text_int8 and self.onnx_text is None:  # a query waits on the text tower alone: int8 reads a quarter
            # of the fp32 weights
            model.text_model = _quantized(model.text_model)
            if hasattr(model, "text_projection"):
                model.text_projection = _quantized(torch.nn.Sequential(model.text_projection))[0]
        self.model = model.to(self.device)
        self.text_tower = TextTower(self.model, self.family.text_attention_mask)
        self.dim = int(self.embed_pixels(self._blank_pixels()).shape[1])  # the width, whatever the config calls it
        self.precision = "int8" if int8 and self.device.type == "cpu" else str(self.dtype).removeprefix("torch.")
        self.text_precision = "int8" if (int8 or text_int8) and self.device.type == "cpu" else self.precision
        if self.onnx_text is not None:
            self.text_precision += " onnxruntime"

    @property
    def device_name(self) -> str:
        precision = self.precision if self.text_precision == self.precision else \
            f"{self.precision} images, {self.text_precision} texts"
        return f"{self.device.type} ({precision}, {torch.get_num_threads()} threads)" \
            if self.device.type == "cpu" else f"cuda:{torch.cuda.get_device_name()} ({precision})"

    @torch.inference_mode()
    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """``(n, 3, h, w)`` preprocessed images -> ``(n, dim)`` unit vectors."""
        tensor = torch.from_numpy(pixels).to(self.device, dtype=self.dtype, non_blocking=True)
        return _normalised(_features(self.model.get_image_features(pixel_values=tensor)))

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts, padding="max_length" if self.family.pad_texts_to_max else True,
                                truncation=True, max_length=self.max_text_tokens, return_tensors="np")
        if self.onnx_text is not None:
            return _normalised(torch.from_numpy(self.onnx_text(tokens["input_ids"], tokens["attention_mask"])))
        ids, mask = (torch.from_numpy(tokens[name]).to(self.device) for name in ("input_ids", "attention_mask"))
        return _normalised(self.text_tower(ids, mask))

    def _blank_pixels(self) -> np.ndarray:
        return np.zeros((1, 3, self.preprocess.crop, self.preprocess.crop), dtype=np.float32)

    def warm_up(self) -> None:
        """A dummy forward of the text tower so the first real request does not pay for lazy set-up (the
        image tower's ran when the width was measured)."""
        self.embed_texts(["a photo"])


def _quantized(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of the Linear layers (weights int8, activations quantised per batch)."""
    return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def _features(output) -> torch.Tensor:
    """get_*_features' answer: the projected features (transformers 5 wraps them as pooler_output)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _learned_logit(model: torch.nn.Module) -> tuple[float | None, float | None]:
    """The checkpoint's learned logit scale (exp of the stored log) and bias (SigLIP), when it has them."""
    scale, bias = getattr(model, "logit_scale", None), getattr(model, "logit_bias", None)
    return (float(scale.exp()) if scale is not None else None), (float(bias) if bias is not None else None)


def _normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy()


def _missing_weights_line(source: str, local: Path, random_weights: bool, exc: Exception) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    wanted = "its config" if random_weights else "its weights"
    if local.is_dir():
        where = f"the local directory {local}"
        if not random_weights and not any((local / name).exists() for name in _WEIGHT_FILES):
            where += f", which has no {' or '.join(_WEIGHT_FILES)}"
        else:  # the files are there but do not load: say why
            where += f" ({' '.join(str(exc).split())[:300] or type(exc).__name__})"
    elif source.startswith(("/", ".", "~")):
        where = f"{source}, which is not a directory"
    else:
        where = f"the Hugging Face cache {HF_HUB_CACHE}, which has no offline copy of {source!r}"
    hub_id = source if not source.startswith(("/", ".", "~")) else "openai/clip-vit-base-patch32"
    return (f"CLIP model not available: looked for {wanted} in {where}. To provide it, set "
            "MEDIASEARCH_CLIP_MODEL to a local directory with the weights, or download the model into the "
            f"model cache on a machine with internet (huggingface-cli download {hub_id}), or set "
            "MEDIASEARCH_CLIP_RANDOM_WEIGHTS=1 for development (meaningless vectors).")
