"""DPO with LoRA over TRL's DPOTrainer: the last step of APC-based preference optimisation.

The student is a local hf: (or embedded) model, optionally with the adapter it starts from:
- no adapter: a fresh LoRA (`lora`) is trained; the reference model is the base with the adapter
  disabled, exactly the agent DPO started from;
- an SFT adapter (`adapter=` or `hf:BASE@SFT_ADAPTER`): that adapter is loaded trainable and trained
  further, and TRL keeps a frozen copy of it as the reference, so the reference is again the agent
  DPO started from.

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
from rolecraft.formats.apc import PreferenceRecord
from rolecraft.step import Context, Output, Step
from rolecraft.synth.preference import PreferenceStep
from rolecraft.train.student import load_trainable, lora_config, spec_adapter
from rolecraft.workspace import folder_in_place

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
        activation_checkpointing=cuda,
        use_cpu=not cuda,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
    )
    return DPOConfig(**{**defaults, **overrides})


class DPOResult(BaseModel):
    adapter: str
    rows: int
    metrics: dict[str, float]
    seconds: float


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
    `dpo_config()`); `lora`: a peft.LoraConfig for a fresh adapter (default rank 32; unused when
    starting from an adapter, which is then trained further)."""
    from datasets import Dataset
    from trl import DPOTrainer

    from rolecraft.train.progress import show_progress

    if not rows:
        raise RolecraftError(
            "no preference pairs to train on",
            "sample more queries or samples per query, or lower --margin (pairs need an APC gap above it)",
        )
    started = time.monotonic()
    adapter = adapter or spec_adapter(student)
    model, tokenizer = load_trainable(student, adapter)
    peft_config = None if hasattr(model, "peft_config") else (lora or lora_config(32))
    model.train()

    out = Path(out)
    with folder_in_place(out) as tmp:
        args = config or dpo_config()
        args.output_dir = str(tmp / "trainer")
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([r.to_trl() for r in rows]),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        # TRL drops the pairs whose prompt alone fills max_length (a card's long persona prompt can).
        if len(trainer.train_dataset) == 0:
            raise RolecraftError(
                f"all {len(rows)} preference pairs have prompts of {args.max_length} tokens or more, so nothing is "
                "left to train on", "raise max_length (e.g. `-- --max_length 2048`)")
        output = show_progress(trainer, "training (DPO)").train()
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
            "start_adapter": str(adapter) if adapter else None,
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


class DPOStep(Step):
    """Trains `adapters/dpo` (or `adapters/<adapter>`) on the preference pairs, starting from the `start`
    adapter (a name under adapters/ or a folder) when it exists."""

    name = "dpo"
    trains = True
    reads = (PreferenceStep,)
    roles = ("student",)

    def __init__(self, config: dict[str, Any], rank: int = 32, start: str | None = "sft", adapter: str = "dpo",
                 reads=None, lora: dict[str, Any] | None = None):
        super().__init__(None, reads)
        self.config, self.rank, self.start, self.adapter = config, rank, start, adapter
        self.lora = lora or {}  # LoraConfig fields over `lora_config`'s (the paper preset: APC's alpha and dropout)
        if adapter != "dpo":  # another adapter is another output, with a manifest entry of its own
            self.name = f"dpo-{adapter}"

    def fingerprint(self) -> Any:
        return [self.config, self.rank, self.start, self.adapter, *([self.lora] if self.lora else [])]

    async def run(self, ctx: Context) -> Output:
        ws = ctx.workspace
        pairs = ctx.read(PreferenceStep)
        if not pairs:
            shutil.rmtree(ws.adapter(self.adapter), ignore_errors=True)  # never serve an adapter from older data
            return Output(skipped=ws.entry(PreferenceStep.name).get("skipped") or "no preference pairs")
        start = ws.find_adapter(self.start) if self.start and (ws.trained_adapter(self.start) or Path(self.start).is_dir()) else None
        result = train_dpo(ctx.models.student, pairs, ws.adapter(self.adapter), config=dpo_config(**self.config),
                           lora=lora_config(self.rank, **self.lora), adapter=start)
        return Output(info={"pairs": len(pairs), "train_loss": result.metrics.get("train_loss"), "seconds": result.seconds})
