"""SFT's configuration: TRL SFTConfig defaults for this machine (CPU or GPU), the fields a user sets with
TRL's own flags, and QLoRA's 4-bit quantisation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rolecraft.errors import RolecraftError

Method = Literal["lora", "qlora", "full"]


def sft_config(output_dir: str | Path, method: Method = "lora", evaluate: bool = False, **overrides: Any):
    """A TRL SFTConfig with defaults for this machine; any field can be overridden.

    CPU (the embedded SmolLM2): fp32, no gradient checkpointing (it only costs time at this size).
    GPU (a 7B student on 24 GB): bf16, gradient checkpointing, batch 2 × 32 accumulation = the paper's
    effective batch of 64, cosine schedule with 4% warm-up, max length 2048. LoRA/QLoRA use lr 2e-4 for
    3 epochs; a full fine-tune uses the paper's lr 2e-5 for 10 epochs.
    """
    import torch
    from trl import SFTConfig

    gpu = torch.cuda.is_available()
    full = method == "full"
    defaults: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=2e-5 if full else 2e-4,
        num_train_epochs=10 if full else 3,
        lr_scheduler_type="cosine",
        warmup_steps=0.04,  # a float below 1 is a ratio of the total steps
        weight_decay=0.1 if full else 0.0,
        logging_steps=5,
        save_strategy="epoch",
        save_total_limit=2,
        eval_strategy="epoch" if evaluate else "no",
        report_to="none",
        assistant_only_loss=True,
    )
    if gpu:
        defaults.update(
            bf16=torch.cuda.is_bf16_supported(),
            activation_checkpointing=True,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=32,
            max_length=2048,
            model_init_kwargs={"dtype": "bfloat16"},
        )
    else:
        defaults.update(
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=1,
            max_length=1024,
            model_init_kwargs={"dtype": "float32"},
        )
    return SFTConfig(**{**defaults, **overrides})


def sft_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """TRL's own command-line flags (`--num_train_epochs 1 --lr_scheduler_type linear`, or `--config
    FILE.yaml`) → the SFTConfig fields they set, typed by TRL's parser; fields not named keep
    rolecraft's defaults."""
    import yaml
    from trl import SFTConfig, TrlParser

    parser = TrlParser(SFTConfig)
    # Parsing builds an SFTConfig, whose checks refuse TRL's GPU defaults on a CPU machine.
    parser.set_defaults(use_cpu=True, bf16=False, activation_checkpointing=False)
    config, unknown = parser.parse_args_and_config(list(argv), return_remaining_strings=True)
    if unknown:
        raise RolecraftError(
            f"not SFTConfig options: {' '.join(unknown)}", "see TRL's SFTConfig for the fields (e.g. --num_train_epochs 1)"
        )
    args = list(argv)
    named = {a[2:].split("=", 1)[0].replace("-", "_") for a in args if a.startswith("--")}
    for i, arg in enumerate(args):  # the fields a TRL config file sets count as named too
        if arg == "--config" and i + 1 < len(args) or arg.startswith("--config="):
            path = args[i + 1] if arg == "--config" else arg.partition("=")[2]
            named |= set(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    return {name: getattr(config, name) for name in named if name in SFTConfig.__dataclass_fields__}


def quantization(method: Method):
    if method != "qlora":
        return None
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        bitsandbytes = None
    if bitsandbytes is None or not torch.cuda.is_available():
        raise RolecraftError(
            "QLoRA needs bitsandbytes and a CUDA GPU", "install bitsandbytes on a GPU machine, or use --method lora"
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16
    )


