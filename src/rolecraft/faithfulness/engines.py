"""What runs a discriminator's forward pass: PyTorch, or ONNX Runtime on CPU (1.3–2× faster, same numbers).

Both take one padded batch (numpy arrays named as the tokenizer names them) and return the logits.

ONNX Runtime runs the classifier exported once from the folder's weights: the export is cached in
`<folder>/onnx/<key>.onnx`, where the key is a digest of the weight and config files, so retrained
weights are exported afresh and stale exports are removed. Each export is checked against PyTorch on a
probe batch before it is used (probabilities within `EXPORT_TOLERANCE`). Exporting needs only the
folder and torch.onnx (no hub, no network).

`onnx-int8` is an approximate option: dynamic int8 quantisation of the exported weights (MatMuls
in int8 with VNNI where the CPU has it); bench/apc_scoring.py reports its deviation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import threading
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.tokenizer import padded_batch
from rolecraft.weights import LOAD_LOCK

ENGINES = ("auto", "onnx", "onnx-int8", "torch")
EXPORT_TOLERANCE = 1e-4  # max |probability difference| between an export and PyTorch on the probe
WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
EXPORT_LOCK = threading.Lock()  # one export at a time in a process (temporary names carry the pid)


def onnx_runtime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


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


def weights_key(folder: Path) -> str:
    """A digest of the files that define the classifier's numbers."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        path = folder / name
        if path.exists():
            digest.update(name.encode())
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


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


def onnx_session(path: Path):
    """Threads = the cores this process may use, without spinning: the cores are shared with whatever
    else the process (and the machine) does, and spinning workers only take them away."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session, batch: dict[str, np.ndarray]) -> np.ndarray:
    return session.run(None, {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()})[0]


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
            export(folder, plain, probe_batch(tokenizer))
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


def export(folder: Path, target: Path, probe: dict[str, np.ndarray]) -> None:
    """torch.onnx (TorchScript exporter), batch and length dynamic, eager attention (plain MatMul and
    Softmax, which ONNX Runtime fuses). Checked against PyTorch on `probe`, then moved into place."""
    import torch

    reference = TorchClassifier(folder, device="cpu", attention="eager")
    names = list(probe)

    class Logits(torch.nn.Module):  # positional inputs in `names` order, logits out
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            Logits(reference.model).eval(),  # a new module is in training mode, and the exporter
            # restores that mode afterwards: on the wrapper and so on the model, turning dropout on
            tuple(torch.from_numpy(probe[n].astype(np.int64)) for n in names),
            str(partial),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "length"} for n in names},
            opset_version=17,
            dynamo=False,
        )
    gap = float(np.abs(softmax(run_session(onnx_session(partial), probe)) - softmax(reference.logits(probe))).max())
    if gap > EXPORT_TOLERANCE:
        partial.unlink(missing_ok=True)
        raise RolecraftError(
            f"the ONNX export of {folder} differs from PyTorch by {gap:.1e} in probability",
            "use engine='torch' for this discriminator",
        )
    partial.replace(target)
