"""Album labels without any cloud service: a cluster's centroid scored against a built-in vocabulary of
everyday concepts (vocabulary.txt) embedded with the CLIP text encoder, as in CLIP's zero-shot
classification. The cluster is labelled, not each image, and only again once its centroid has moved.

The vocabulary's vectors are computed once per model and kept in the data dir, keyed by the model id,
the prompt and the vocabulary itself.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared import catalog
from shared.model_families import calibration
from shared.organise.clustering import decode
from shared.settings import Settings
from shared.vectors import OnZero, unit

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.txt")
PROMPT = "a photo of {}."
LABEL_MAX_TERMS = 3
# The model turns cosines into zero-shot probabilities as softmax(logit_scale * cosine) (its family's
# calibration: 100 for CLIP); a term joins the label while its probability is at least half the best term's.
LABEL_PROBABILITY_RATIO = 0.5
EMBED_BATCH = 256  # texts per POST /embed/text (EmbedTextRequest's limit)

EmbedTexts = Callable[[list[str]], np.ndarray]


def read_vocabulary(path: Path = VOCABULARY_FILE) -> list[str]:
    """The concepts, one per line; blank lines and ``#`` comments are skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class Vocabulary:
    model_id: str
    concepts: list[str]
    vectors: np.ndarray  # (len(concepts), dim) unit text vectors of PROMPT.format(concept)


def vocabulary_cache_path(settings: Settings, model_id: str, concepts: list[str]) -> Path:
    key = hashlib.sha256("\n".join([model_id, PROMPT, *concepts]).encode()).hexdigest()[:20]
    return settings.data_path / "organise" / f"vocabulary-{key}.npy"


def load_vocabulary(settings: Settings, model_id: str, embed_texts: EmbedTexts,
                    concepts: list[str] | None = None) -> Vocabulary:
    """The vocabulary with its vectors: from the cache, else embedded (in batches) and cached."""
    concepts = read_vocabulary() if concepts is None else concepts
    path = vocabulary_cache_path(settings, model_id, concepts)
    if path.exists():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(concepts):
            return Vocabulary(model_id, concepts, vectors)
    prompts = [PROMPT.format(concept) for concept in concepts]
    vectors = np.concatenate([np.asarray(embed_texts(prompts[start:start + EMBED_BATCH]), dtype=np.float32)
                              for start in range(0, len(prompts), EMBED_BATCH)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, vectors, allow_pickle=False)
    os.replace(tmp, path)  # two workers racing write the same content; either rename wins
    return Vocabulary(model_id, concepts, vectors)


def display(concept: str) -> str:
    for article in ("a ", "an "):
        if concept.startswith(article):
            return concept[len(article):]
    return concept


def label_for(centroid: np.ndarray, vocabulary: Vocabulary, logit_scale: float) -> str:
    """The best few concepts for a centroid, best first, e.g. ``"seashore, sandbar"``."""
    scores = vocabulary.vectors @ unit(centroid, OnZero.KEEP)
    order = np.argsort(-scores)[:LABEL_MAX_TERMS]
    cutoff = scores[order[0]] + math.log(LABEL_PROBABILITY_RATIO) / logit_scale
    return ", ".join(display(vocabulary.concepts[i]) for i in order if scores[i] >= cutoff)


def needs_label(cluster: sqlite3.Row, model_id: str, settings: Settings) -> bool:
    """Never labelled, labelled with another model, or its centroid moved since it was labelled."""
    if cluster["label"] is None or cluster["label_centroid"] is None or cluster["label_model"] != model_id:
        return True
    return float(unit(decode(cluster["centroid"]), OnZero.KEEP) @ unit(decode(cluster["label_centroid"]), OnZero.KEEP)) \
        < calibration(settings).relabel


def relabel_clusters(conn: sqlite3.Connection, settings: Settings, vocabulary: Vocabulary) -> int:
    """Label every cluster that needs it; returns how many. A user-given name is a separate column and
    is left alone: labelling never renames an album the user named."""
    logit_scale = calibration(settings).logit_scale
    labels = [(cluster["id"], label_for(decode(cluster["centroid"]), vocabulary, logit_scale), cluster["centroid"])
              for cluster in catalog.clusters_with_sizes(conn) if needs_label(cluster, vocabulary.model_id, settings)]
    with catalog.transaction(conn):
        for cluster_id, label, centroid in labels:
            catalog.set_cluster_label(conn, cluster_id, label, centroid, vocabulary.model_id)
    return len(labels)
