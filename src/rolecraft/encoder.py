"""Sentence embeddings from the embedded all-MiniLM-L6-v2 (or another sentence-transformers folder):
near-duplicate questions, fact retrieval, confusable characters. Computed on the OpenMP thread."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rolecraft.compute import on_compute_thread


def embed(texts: Sequence[str], encoder: str | Path | None = None) -> np.ndarray:
    """Unit-length sentence embeddings (rows), by default from the embedded all-MiniLM-L6-v2."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = _encoder(str(encoder) if encoder else "")
    return on_compute_thread(model.encode, list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)


@lru_cache(maxsize=2)
def _encoder(path: str):
    from sentence_transformers import SentenceTransformer

    from rolecraft.llm.embedded import embedded_encoder
    from rolecraft.weights import LOAD_LOCK

    with LOAD_LOCK:
        return SentenceTransformer(path or str(embedded_encoder()), device="cpu")
