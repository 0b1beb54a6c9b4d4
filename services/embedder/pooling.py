"""One vector for a whole video from its frame vectors."""

from __future__ import annotations

import numpy as np

from shared.vectors import OnZero, ZeroVector, unit

VIDEO_POOL_TEMPERATURE = 0.08


def attention_pool(frames: np.ndarray, temperature: float = VIDEO_POOL_TEMPERATURE) -> np.ndarray:
    """Attention-weighted mean of unit frame vectors ``(n, dim)``, returned unit length.

    m = mean(frames); w = softmax(frames·m / temperature); v = normalise(sum_i w_i f_i). Frames close to
    the video's overall content weigh more, so a few odd frames (titles, black cuts) barely move it.

    The zero rule is OnZero.RAISE: frames that cancel out give no vector (the request is refused, 422),
    never a zero row in the store, which would match nothing and look like a stored video vector.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"expected a non-empty (n, dim) array of frame vectors, got shape {frames.shape}")
    scores = frames @ frames.mean(axis=0) / temperature
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    try:
        return unit(weights @ frames, OnZero.RAISE)
    except ZeroVector:
        raise ZeroVector("the frame vectors cancel out: no direction to pool to") from None
