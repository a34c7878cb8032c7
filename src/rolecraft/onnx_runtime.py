"""Models exported once from PyTorch and run on ONNX Runtime on CPU, without importing torch.

The discriminators (rolecraft.faithfulness.engines) and the sentence encoder (rolecraft.encoder) both
run this way. Each keys its cached export by `weights_key`, a digest of the weight and config files,
so changed weights are exported afresh. `export` makes one export with torch.onnx and checks it against
PyTorch on a probe batch before it is moved into place: only a checked export is ever used. Exporting
needs only the weights and torch.onnx (no hub, no network).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rolecraft.errors import RolecraftError

EXPORT_TOLERANCE = 1e-4  # max |difference| between an export's checked numbers and PyTorch's on the probe
WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
EXPORT_LOCK = threading.Lock()  # one export at a time in a process (temporary names carry the pid)


def onnx_runtime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def weights_key(folder: Path) -> str:
    """A digest of the files that define the model's numbers."""
    digest = hashlib.sha256()
    for name in WEIGHT_FILES:
        path = folder / name
        if path.exists():
            digest.update(name.encode())
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


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
    """The first output for the inputs the model takes (a batch may name more, e.g. token_type_ids)."""
    return session.run(None, {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()})[0]


def export(module, probe: dict[str, np.ndarray], target: Path, output: str, gap: Callable[[np.ndarray], float],
           source: object, fix: str, unit: str = "") -> None:
    """torch.onnx (TorchScript exporter) of `module`, which takes probe's arrays positionally in probe's
    order; batch and length are dynamic. Eager attention exports as plain MatMul and Softmax, which
    ONNX Runtime fuses. `gap(ONNX output on the probe)` measures it against PyTorch: over
    EXPORT_TOLERANCE raises a RolecraftError (with `fix`); within it, the export moves to `target`."""
    import torch

    names = list(probe)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module.eval(),  # a new module is in training mode, and the exporter restores the mode
                # afterwards: on a wrapper and so on the model inside it, turning dropout on
                tuple(torch.from_numpy(probe[n].astype(np.int64)) for n in names),
                str(partial),
                input_names=names,
                output_names=[output],
                dynamic_axes={n: {0: "batch", 1: "length"} for n in names},
                opset_version=17,
                dynamo=False,
            )
        found = gap(run_session(onnx_session(partial), probe))
        if found > EXPORT_TOLERANCE:
            raise RolecraftError(f"the ONNX export of {source} differs from PyTorch by {found:.1e}{unit}", fix)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)  # a failed or refused export
