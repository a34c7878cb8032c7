"""What runs a discriminator's forward pass: PyTorch, or ONNX Runtime on CPU (1.3–2× faster, same numbers).

Both take one padded batch (numpy arrays named as the tokenizer names them) and return the logits.

ONNX Runtime runs the classifier exported once from the folder's weights (rolecraft.onnx_runtime):
the export is cached in `<folder>/onnx/<key>.onnx`, where the key is a digest of the weight and config
files, so retrained weights are exported afresh and stale exports are removed. Each export is checked
against PyTorch on a probe batch before it is used (probabilities within `EXPORT_TOLERANCE`).

`onnx-int8` is an approximate option: dynamic int8 quantisation of the exported weights (MatMuls
in int8 with VNNI where the CPU has it); bench/apc_scoring.py reports its deviation.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import cached_property
from pathlib import Path

import numpy as np

from rolecraft.faithfulness.tokenizer import padded_batch
from rolecraft.onnx_runtime import EXPORT_LOCK, export, onnx_runtime_installed, onnx_session, run_session, weights_key
from rolecraft.weights import LOAD_LOCK

ENGINES = ("auto", "onnx", "onnx-int8", "torch")


def resolve_engine(engine: str, device: str | None) -> str:
    """`auto`: ONNX Runtime when it is installed and the model runs on CPU, else PyTorch."""
    if engine != "auto":
        return engine
    if not onnx_runtime_installed():
        return "torch"
    if device is None:
        device = "cuda" if gpu_visible() else "cpu"
    return "onnx" if device == "cpu" else "torch"


def gpu_visible() -> bool:
    """Whether PyTorch would find a GPU, without importing torch (2 s) where there is no GPU device
    file to find: scoring on ONNX Runtime, and so `rolecraft chat`, never needs torch on a CPU."""
    if "torch" not in sys.modules and not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/kfd")):
        return False
    import torch

    return torch.cuda.is_available()


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class TorchClassifier:
    """PyTorch eager, on `device` (default: CUDA when available)."""

    def __init__(self, folder: Path, device: str | None = None, attention: str | None = None):
        self.folder, self.device, self.attention = folder, device, attention

    @cached_property
    def model(self):
        import torch
        from transformers import AutoModelForSequenceClassification

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        options = {"attn_implementation": self.attention} if self.attention else {}
        with LOAD_LOCK:
            return AutoModelForSequenceClassification.from_pretrained(self.folder, **options).to(device).eval()

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(self.model.device) for k, v in batch.items()}
            return self.model(**inputs).logits.float().cpu().numpy()


class OnnxClassifier:
    """ONNX Runtime on the folder's cached export (made on first use, see `cached_export`)."""

    def __init__(self, folder: Path, tokenizer, quantized: bool = False):
        self.folder, self.tokenizer, self.quantized = folder, tokenizer, quantized

    @cached_property
    def session(self):
        return onnx_session(cached_export(self.folder, self.tokenizer, self.quantized))

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return run_session(self.session, batch)


def probe_batch(tokenizer) -> dict[str, np.ndarray]:
    """Two text pairs of different lengths, so the check covers padding and both segments."""
    firsts = ["Name: a statement about the character.", "Name: short."]
    seconds = ["What do you do all day?\nName: I keep the lighthouse and play the violin at night.", "Hi?"]
    return padded_batch(tokenizer(firsts, seconds, truncation=True, max_length=512), range(2), tokenizer.pad_token_id)


def cached_export(folder: Path, tokenizer, quantized: bool = False) -> Path:
    """The folder's ONNX export for its current weights, made and checked on first use."""
    key = weights_key(folder)
    cache = folder / "onnx"
    plain, int8 = cache / f"{key}.onnx", cache / f"{key}.int8.onnx"
    with EXPORT_LOCK:
        if not plain.exists():
            cache.mkdir(exist_ok=True)
            for stale in cache.glob("*.onnx"):  # exports of earlier weights
                stale.unlink(missing_ok=True)
            export_classifier(folder, plain, probe_batch(tokenizer))
        if quantized and not int8.exists():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = int8.with_name(f"{int8.name}.{os.getpid()}.part")
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its advice to pre-process models for static quantisation
            try:
                quantize_dynamic(plain, partial, weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            partial.replace(int8)
    return int8 if quantized else plain


def export_classifier(folder: Path, target: Path, probe: dict[str, np.ndarray]) -> None:
    """The classifier's logits exported with eager attention, checked on `probe` in probability."""
    import torch

    reference = TorchClassifier(folder, device="cpu", attention="eager")
    names = list(probe)

    class Logits(torch.nn.Module):  # positional inputs in `names` order, logits out
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    expected = softmax(reference.logits(probe))

    def gap(logits: np.ndarray) -> float:
        return float(np.abs(softmax(logits) - expected).max())

    export(Logits(reference.model), probe, target, "logits", gap, folder, "use engine='torch' for this discriminator",
           " in probability")
