"""DPO with LoRA over TRL's DPOTrainer: the last step of APC-based preference optimisation.

The student is a local hf: (or embedded) model, optionally with the adapter it starts from:
- no adapter: a fresh LoRA (`lora`) is trained; the reference model is the base with the adapter
  disabled, exactly the agent DPO started from;
- `hf:BASE@SFT_ADAPTER`: the SFT adapter itself is trained further, and TRL keeps a frozen copy of it
  as the reference, so the reference is again the agent DPO started from.

TRL's `DPOConfig` is passed through untouched (`dpo_config()` only fills in the paper's values and a
CPU-safe precision). The adapter lands in `out` with `training.json` describing what produced it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rolecraft.errors import RolecraftError
from rolecraft.workspace import folder_in_place
from rolecraft.synth.apc_records import PreferenceRecord

SETTINGS_FILE = "training.json"


def dpo_config(output_dir: str | Path = "dpo-trainer", **overrides: Any):
    """A TRL DPOConfig with the reference's values (β 0.1, lr 2e-4, effective batch 8); any field can
    be overridden. bf16 only where the GPU has it: on CPU it is slow and lossy. Gradient checkpointing
    (TRL's default) only on GPU: on CPU memory is not the limit and recomputing costs a third more time."""
    import torch
    from trl import DPOConfig

    cuda = torch.cuda.is_available()
    defaults: dict[str, Any] = dict(
        output_dir=str(output_dir),
        beta=0.1,
        learning_rate=2e-4,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=8,
        num_train_epochs=1,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=cuda,
        use_cpu=not cuda,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
    )
    return DPOConfig(**{**defaults, **overrides})


def lora_config(r: int = 32, **overrides: Any):
    """LoRA on every linear layer; the reference uses rank >= 32."""
    from peft import LoraConfig

    defaults: dict[str, Any] = dict(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    return LoraConfig(**{**defaults, **overrides})


class DPOResult(BaseModel):
    adapter: str
    rows: int
    metrics: dict[str, float]
    seconds: float


def _student(spec: str, adapter: str | Path | None):
    from rolecraft.llm import EMBEDDED, load_model
    from rolecraft.llm.embedded import embedded_hf_model
    from rolecraft.llm.hf import HFChatModel

    options = {"adapter": adapter} if adapter else {}
    # Training needs the weights on transformers; `embedded` generates on llama.cpp.
    student = embedded_hf_model(**options) if spec.strip() == EMBEDDED else load_model(spec, **options)
    if not isinstance(student, HFChatModel):
        raise RolecraftError(
            f"DPO trains a local model, and '{spec}' is not one",
            "pass the student as hf:PATH, hf:PATH@ADAPTER or 'embedded'",
        )
    return student


def train_dpo(
    student: str,
    rows: Sequence[PreferenceRecord],
    out: str | Path,
    config=None,
    lora=None,
    adapter: str | Path | None = None,
) -> DPOResult:
    """Train on `rows` and save the adapter to `out`. `student`: hf:PATH[@ADAPTER] or 'embedded';
    `adapter`: the adapter to start from (or in the spec); `config`: a trl.DPOConfig (default
    `dpo_config()`); `lora`: a peft.LoraConfig for a fresh adapter (default `lora_config()`; unused
    when starting from an adapter, which is then trained further)."""
    from datasets import Dataset
    from trl import DPOTrainer

    if not rows:
        raise RolecraftError(
            "no preference pairs to train on",
            "sample more queries or samples per query, or lower --margin (pairs need an APC gap above it)",
        )
    started = time.monotonic()
    hf = _student(student, adapter)
    model = hf.model
    peft_config = None
    if hf.adapter:
        # The loaded adapter is frozen for inference; DPO continues training it.
        for name, param in model.named_parameters():
            param.requires_grad = "lora_" in name
    else:
        peft_config = lora or lora_config()
    model.train()

    out = Path(out)
    with folder_in_place(out) as tmp:
        args = config or dpo_config()
        args.output_dir = str(tmp / "trainer")
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([r.to_trl() for r in rows]),
            processing_class=hf.tokenizer,
            peft_config=peft_config,
        )
        output = trainer.train()
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        trainer.model.save_pretrained(tmp, selected_adapters=["default"])
        result = DPOResult(
            adapter=str(out),
            rows=len(rows),
            metrics={k: float(v) for k, v in output.metrics.items()},
            seconds=round(time.monotonic() - started, 1),
        )
        settings = {
            "method": "dpo",
            "student": student,
            "base": hf.name,
            "start_adapter": str(hf.adapter) if hf.adapter else None,
            "rows": len(rows),
            "multi_turn_rows": sum((r.turns or 1) > 1 for r in rows),
            "dpo_config": args.to_dict(),
            "lora": (peft_config or model.peft_config["default"]).to_dict(),
            "result": result.model_dump(),
        }
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, default=_jsonable), encoding="utf-8")
    return result


def _jsonable(value: Any) -> Any:
    return sorted(value) if isinstance(value, (set, frozenset)) else str(value)
