"""Weights in this process: one lock for loading them, and where converted weights are kept.

transformers and sentence-transformers build a model under process-wide patches (meta-device
initialisation), so two loads in different threads, such as a student loading in a generation worker
while a discriminator loads on the event loop, can leave one model's parameters on the meta device
("Cannot copy out of meta tensor"). Every lazy load takes this lock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

LOAD_LOCK = threading.RLock()


def cache_root() -> Path:
    """Where converted weights live (the embedded checkpoint, its GGUF copy, GGUF LoRAs, the sentence
    encoder's ONNX export)."""
    return Path(os.environ.get("ROLECRAFT_CACHE", Path.home() / ".cache" / "rolecraft"))
