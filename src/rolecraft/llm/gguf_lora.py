"""A PEFT LoRA adapter as llama.cpp reads it: a GGUF of `lora_a` / `lora_b` tensors, converted once.

PEFT names a layer by its transformers module (`model.layers.3.self_attn.q_proj`), llama.cpp by its
GGUF tensor (`blk.3.attn_q.weight`); the gguf package's tensor-name map translates. Two details make
the adapted model compute what transformers + PEFT compute:

- llama.cpp's Llama GGUFs store the query and key projections with their rows permuted for its rotary
  layout (transformers undoes that when it loads a GGUF, so adapters are trained on unpermuted
  weights). The update B·A must be permuted like the weight it adds to: that permutes the rows of B.
- PEFT scales the update by alpha / r (alpha / √r with rsLoRA). The scale is folded into B and the
  file's alpha left at 0, which llama.cpp reads as "scale 1".

And one that keeps outputs independent of batching (rolecraft.llm.llamacpp_engine): llama.cpp's CPU
matrix product takes another kernel for float weights once a batch has two or more tokens, which
rounds differently. A is therefore stored in Q8_0, whose kernels agree bit for bit at any batch size
(as the base model's do), and B keeps float32 with an odd inner size (the rank, padded with a zero
component when even), which the batched float kernel never takes.

Anything else PEFT can express (DoRA, trained biases or extra modules, per-module alphas, layers the
GGUF does not have) raises `UnsupportedAdapter`; the embedded model then runs that adapter on
transformers instead. Converted files live under the rolecraft cache, named by a digest of the
adapter's files and the base model, so retraining converts again and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from rolecraft.errors import RolecraftError
from rolecraft.llm.gguf_header import model_facts, read_header

FORMAT = 2  # bump when the conversion changes, so stale converted files are not reused
PEFT_PREFIX = "base_model.model."
PERMUTED = {"llama": {"attn_q": "head_count", "attn_k": "head_count_kv"}}  # arch → rows permuted like convert_hf_to_gguf


class UnsupportedAdapter(RolecraftError):
    pass


def gguf_lora(adapter: Path, base: Path, cache: Path) -> Path:
    """The GGUF form of the PEFT adapter folder `adapter` for the GGUF model `base`, converting once."""
    digest = _digest(adapter, base)
    target = cache / "lora" / f"{adapter.name}-{digest}.gguf"
    if target.exists():
        return target
    config = json.loads((adapter / "adapter_config.json").read_text())
    header = read_header(base)
    arch, facts = model_facts(header)
    tensors = _convert(config, _load(adapter), arch, facts, set(header.tensors))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        _write(Path(tmp), arch, tensors)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _digest(adapter: Path, base: Path) -> str:
    h = hashlib.sha256(f"{FORMAT}:{base.name}:{base.stat().st_size}".encode())
    for f in sorted(adapter.glob("adapter_config.json")) + sorted(adapter.glob("*.safetensors")) + sorted(adapter.glob("*.bin")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _load(adapter: Path) -> dict[str, np.ndarray]:
    """The adapter's tensors in float32 (torch reads every dtype PEFT saves, bfloat16 included)."""
    import torch

    files = sorted(adapter.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        state = {k: v for f in files for k, v in load_file(f).items()}
    else:
        state = {k: v for f in sorted(adapter.glob("*.bin")) for k, v in torch.load(f, weights_only=True).items()}
    return {k: v.float().numpy() for k, v in state.items()}


def _convert(config: dict, state: dict[str, np.ndarray], arch: str, facts: dict[str, int], names: set[str]) -> dict[str, np.ndarray]:
    import gguf

    for key, refused in (("use_dora", "DoRA"), ("alpha_pattern", "per-module alphas"), ("modules_to_save", "extra trained modules")):
        if config.get(key):
            raise UnsupportedAdapter(f"llama.cpp cannot run an adapter with {refused}", "run it on transformers (hf:)")
    if config.get("bias", "none") != "none":
        raise UnsupportedAdapter("llama.cpp cannot run an adapter that trains biases", "run it on transformers (hf:)")
    arch_id = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch), None)
    if arch_id is None:
        raise UnsupportedAdapter(f"the gguf package does not know the architecture '{arch}'", "run it on transformers (hf:)")
    name_map = gguf.get_tensor_name_map(arch_id, facts["block_count"])
    alpha = float(config.get("lora_alpha", 8))
    out: dict[str, np.ndarray] = {}
    for key, a in state.items():
        if not key.endswith(".lora_A.weight"):
            if not key.endswith(".lora_B.weight"):
                raise UnsupportedAdapter(f"the adapter holds '{key}', which is not a LoRA matrix", "run it on transformers (hf:)")
            continue
        module = key.removeprefix(PEFT_PREFIX).removesuffix(".lora_A.weight")
        b = state[key.replace(".lora_A.", ".lora_B.")]
        target = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None or target not in names:
            raise UnsupportedAdapter(f"the adapter changes '{module}', which the GGUF model has no tensor for", "run it on transformers (hf:)")
        rank = a.shape[0]
        scale = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
        kind = target.split(".")[-2]  # blk.3.attn_q.weight → attn_q
        heads = PERMUTED.get(arch, {}).get(kind)
        if heads:
            b = _permute_rows(b, facts[heads])
        if rank % 2 == 0:  # a zero component: B·A unchanged, the inner size odd (see the module's note)
            a = np.vstack([a, np.zeros((1, a.shape[1]), dtype=a.dtype)])
            b = np.hstack([b, np.zeros((b.shape[0], 1), dtype=b.dtype)])
        out[f"{target}.lora_a"] = np.ascontiguousarray(a, dtype=np.float32)
        out[f"{target}.lora_b"] = np.ascontiguousarray(b * scale, dtype=np.float32)
    if not out:
        raise UnsupportedAdapter("the adapter holds no LoRA matrices", "pass the folder `rolecraft train` wrote")
    return out


def _permute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from transformers' rotary layout (halves) to llama.cpp's (pairs)."""
    return rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _write(path: Path, arch: str, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    Q8_0 = gguf.GGMLQuantizationType.Q8_0
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # 0: llama.cpp applies B·A as is (scale folded into B)
    for name, tensor in tensors.items():
        if name.endswith(".lora_a") and tensor.shape[1] % 32 == 0:
            writer.add_tensor(name, gguf.quants.quantize(tensor, Q8_0), raw_dtype=Q8_0)
        else:
            writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
