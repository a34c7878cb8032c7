"""The student a trainer fine-tunes: its local weights, a LoRA configuration, a trainable adapter.

Training needs the weights themselves, so a student is `embedded` (the converted SmolLM2 checkpoint)
or `hf:PATH` (a folder or an HF id already in the cache), optionally `@ADAPTER` to continue training
an adapter (DPO on top of SFT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rolecraft.errors import RolecraftError


def student_path(spec: str) -> str:
    """The local weights a student spec names."""
    from rolecraft.llm import parse_spec

    provider, name = parse_spec(spec)
    if provider == "embedded":
        from rolecraft.llm.embedded import embedded_checkpoint

        return str(embedded_checkpoint())
    if provider != "hf":
        raise RolecraftError(
            f"cannot fine-tune '{spec}': training needs local weights",
            "pass the student as hf:PATH (a folder or a cached HF id) or 'embedded'",
        )
    from rolecraft.llm.hf import HFChatModel

    return HFChatModel(name.partition("@")[0]).local_path()


def spec_adapter(spec: str) -> str | None:
    """The adapter named in `hf:PATH@ADAPTER`, if any."""
    provider, _, name = spec.partition(":")
    return name.partition("@")[2] or None if provider == "hf" else None


def lora_config(r: int = 16, **overrides: Any):
    """LoRA on every linear layer, alpha = 2 × rank; any LoraConfig field can be overridden."""
    from peft import LoraConfig

    defaults: dict[str, Any] = dict(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    return LoraConfig(**{**defaults, **overrides})


def load_trainable(spec: str, adapter: str | Path | None = None):
    """(model, tokenizer) of a student for training; with an adapter, the adapter is loaded trainable
    (PEFT's `is_trainable`) on top of the frozen base."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rolecraft.weights import LOAD_LOCK

    adapter = adapter or spec_adapter(spec)
    if adapter and not (Path(adapter) / "adapter_config.json").exists():
        raise RolecraftError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)",
                             "pass the folder `rolecraft train` wrote, e.g. WORKSPACE/adapters/sft")
    path = student_path(spec)
    gpu = torch.cuda.is_available()
    with LOAD_LOCK:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if gpu else torch.float32)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
