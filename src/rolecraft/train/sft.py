"""Experience upload: supervised fine-tuning on a character's experiences, thin over TRL's SFTTrainer.

    train_sft(character, experiences, SFTSettings(student="embedded"), ws.path("adapters/sft"))
    train_sft(..., config={"num_train_epochs": 1})     # any SFTConfig field, over the defaults

TRL's `SFTConfig` is passed through untouched: `sft_config()` only fills in defaults for the machine
(the embedded SmolLM2 on CPU, or a 7B student on one 24 GB GPU) under the caller's overrides. Both
data formats train through TRL's assistant-only loss with a chat template that marks the trained
turns (`train.templates.training_template`). LoRA and QLoRA go through PEFT; `full` trains every weight.
Checkpoints go to `out`'s run folder and a rerun resumes from the newest one; the finished adapter
(or full model) lands atomically in `out` with `training.json` describing what produced it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.experience import Experience
from rolecraft.formats.persona import chat_system_prompt
from rolecraft.formats.sft import LossOn, SFTRow, sft_rows
from rolecraft.llm.base import Message
from rolecraft.step import Context, Output, Step
from rolecraft.synth.experiences import ExperiencesStep
from rolecraft.synth.protective import ProtectiveStep
from rolecraft.train.sft_config import Method, quantization, sft_config
from rolecraft.train.student import lora_config, student_path
from rolecraft.train.templates import training_template
from rolecraft.workspace import replace_folder

log = logging.getLogger(__name__)

SETTINGS_FILE = "training.json"  # the same name the DPO trainer writes


class SFTSettings(BaseModel):
    """rolecraft's choices around TRL's SFTConfig (which carries everything about optimisation)."""

    student: str = "embedded"  # hf:PATH, an HF id already cached, or 'embedded'
    method: Method = "lora"
    format: Literal["auto", "prompted", "chat"] = "auto"  # auto: chat if the student has a chat template
    loss: LossOn = "target"  # target: the character's turns only; all: every line, as the paper
    eval_fraction: float = Field(0.02, ge=0.0, lt=1.0)  # the reference held out 2%
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    seed: int = 0


class SFTResult(BaseModel):
    adapter: str
    format: str
    rows: dict[str, int]  # train, eval, dropped_train, dropped_eval, rejected
    metrics: dict[str, float]
    tokens: int  # tokens per epoch of the prepared training set
    seconds: float
    training_rows: list[SFTRow] = Field(default_factory=list, exclude=True)  # exactly what was trained on


def split_rows(rows: Sequence[SFTRow], fraction: float, seed: int) -> tuple[list[SFTRow], list[SFTRow]]:
    """A seeded held-out split; at least one eval row whenever a fraction is asked for."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    n_eval = math.ceil(len(order) * fraction) if fraction > 0 and len(order) > 1 else 0
    return order[n_eval:], order[:n_eval]


def _fingerprint(settings: SFTSettings, config: Any, rows: Sequence[SFTRow]) -> str:
    """What a run's checkpoints depend on; resuming from a different run's checkpoints is refused."""
    ignored = {"output_dir", "logging_dir", "resume_from_checkpoint", "overwrite_output_dir"}
    trainer_args = {k: v for k, v in config.to_dict().items() if k not in ignored}
    blob = json.dumps([settings.model_dump(), trainer_args, [r.model_dump() for r in rows]], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class PreparedSFT:
    """A ready SFTTrainer and what `train_sft` reports about it (tests inspect its prepared data)."""

    trainer: Any
    format: str
    base: str
    rows: dict[str, int]
    training_rows: list[SFTRow]
    resume: bool  # a checkpoint of this very run exists
    own_template: str | None  # the student's chat template, restored before saving


def sft_trainer(
    character: Character,
    experiences: Sequence[Experience],
    settings: SFTSettings,
    out: str | Path,
    config: Any = None,
    resume: bool = True,
    callbacks: Sequence[Any] = (),
    rows: Sequence[SFTRow] | None = None,
) -> PreparedSFT:
    """Rows, split, training template, checkpoint bookkeeping and the SFTTrainer, without training.
    `rows`: ready-made rows trained alongside the experiences' (e.g. self-aligned dialogues)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from rolecraft.train.progress import show_progress

    out = Path(out)
    path = student_path(settings.student)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    own_template = tokenizer.chat_template
    fmt = settings.format if settings.format != "auto" else ("chat" if own_template else "prompted")

    made, rejected = sft_rows(character, experiences, fmt)
    rows = made + list(rows or [])
    if not rows:
        raise RolecraftError(
            f"no training rows for {character.full_name} ({rejected.summary()} rejected)",
            "generate experiences first (`rolecraft experiences`) or import Character-LLM data",
        )
    train_rows, eval_rows = split_rows(rows, settings.eval_fraction, settings.seed)
    run_dir = out.parent / f".{out.name}.run"
    if config is None or isinstance(config, dict):
        config = sft_config(run_dir, settings.method, evaluate=bool(eval_rows), **{"seed": settings.seed, **(config or {})})
    config.output_dir = str(run_dir)
    config.assistant_only_loss = True  # both formats mark their trained turns in the template
    if config.chat_template_path and config.chat_template_path.endswith((".jinja", ".j2")):
        tokenizer.chat_template = Path(config.chat_template_path).read_text(encoding="utf-8")
        config.chat_template_path = None
    tokenizer.chat_template = training_template(tokenizer, train_rows + eval_rows, fmt, settings.loss)

    # Under `accelerate launch` every rank runs this; only the main one touches the run folder.
    main = os.environ.get("RANK", "0") == "0"
    fingerprint = _fingerprint(settings, config, rows)
    marker = run_dir / "rolecraft_run.json"
    if not resume and main:
        shutil.rmtree(run_dir, ignore_errors=True)
    checkpoints = list(run_dir.glob("checkpoint-*")) if resume else []
    if checkpoints and marker.exists() and json.loads(marker.read_text())["fingerprint"] != fingerprint:
        raise RolecraftError(
            f"the checkpoints in {run_dir} come from a run with other data or settings",
            "rerun with --fresh to start over",
        )
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"fingerprint": fingerprint}), encoding="utf-8")

    peft_config = None
    if settings.method != "full":
        peft_config = lora_config(settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                                  target_modules=settings.target_modules)

    def dataset(part: list[SFTRow]):
        return Dataset.from_list([{"messages": [m.model_dump() for m in r.messages]} for r in part])

    _score_trained_positions_only()
    trainer = SFTTrainer(
        model=path,
        args=config,
        train_dataset=dataset(train_rows),
        eval_dataset=dataset(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        quantization_config=quantization(settings.method),
        callbacks=list(callbacks),
    )
    show_progress(trainer, "training (SFT)")
    # TRL silently drops rows whose trained tokens were all cut off by max_length: count them.
    if len(trainer.train_dataset) == 0:
        raise RolecraftError(
            f"all {len(train_rows)} training rows are longer than max_length ({config.max_length} tokens) before "
            "the character's first word, so nothing is left to train on",
            "raise max_length (e.g. `-- --max_length 2048`)",
        )
    counts = {
        "train": len(train_rows),
        "eval": len(eval_rows),
        "dropped_train": len(train_rows) - len(trainer.train_dataset),
        "dropped_eval": len(eval_rows) - (len(trainer.eval_dataset) if eval_rows else 0),
        "rejected": sum(rejected.values()),
    }
    return PreparedSFT(trainer, fmt, path, counts, rows, bool(checkpoints), own_template)


def _score_trained_positions_only() -> None:
    """TRL's fused LM-head loss scores every position off the GPU (fixed tile shapes, so that compiled
    backends do not recompile) and masks the untrained ones afterwards. Eager PyTorch on a CPU never
    recompiles, and a chat row's trained tokens are a fraction of it (the persona prompt and the
    question are not trained): scoring only those gives the same loss for a fraction of the LM-head
    work, which was about 40 % of an SFT step on the README's main job (py-spy). GPUs keep TRL's choice."""
    from trl.trainer import utils

    chosen = getattr(utils, "_use_triton", None)
    if chosen is None or getattr(chosen, "cpu_compact", False):
        return

    def compact(device) -> bool:
        return device.type == "cpu" or chosen(device)

    compact.cpu_compact = True
    utils._use_triton = compact


def train_sft(
    character: Character,
    experiences: Sequence[Experience],
    settings: SFTSettings,
    out: str | Path,
    config: Any = None,
    resume: bool = True,
    callbacks: Sequence[Any] = (),
    rows: Sequence[SFTRow] | None = None,
) -> SFTResult:
    """Fine-tune `settings.student` on the experiences and save the adapter (or model) to `out`.
    `config`: a trl.SFTConfig, or a dict of SFTConfig fields over `sft_config()`'s defaults (default:
    those defaults); its output_dir becomes `out`'s run folder either way. `rows`: see `sft_trainer`."""
    started = time.monotonic()
    out = Path(out)
    prepared = sft_trainer(character, experiences, settings, out, config, resume, callbacks, rows)
    trainer = prepared.trainer
    if prepared.rows["dropped_train"]:
        log.warning("%d training rows were cut to nothing by max_length and dropped", prepared.rows["dropped_train"])
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    output = trainer.train(resume_from_checkpoint=True if prepared.resume else None)
    metrics = {k: float(v) for k, v in output.metrics.items()}
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if losses:  # did training train: the first logged loss against the last
        metrics.update(first_loss=float(losses[0]), last_loss=float(losses[-1]))
    if trainer.eval_dataset is not None:
        metrics.update({k: float(v) for k, v in trainer.evaluate().items()})
    result = SFTResult(
        adapter=str(out),
        format=prepared.format,
        rows=prepared.rows,
        metrics=metrics,
        tokens=tokens,
        seconds=round(time.monotonic() - started, 1),
        training_rows=prepared.training_rows,
    )
    trainer.processing_class.chat_template = prepared.own_template  # the marked one was for training only
    tmp = out.parent / f".{out.name}.tmp"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # on every rank: FSDP and ZeRO-3 gather the weights collectively
    if main:
        peft_config = getattr(trainer.model, "peft_config", {}).get("default")
        info = {
            "method": f"sft-{settings.method}",
            "student": settings.student,
            "base": prepared.base,
            "format": prepared.format,
            "loss": settings.loss,
            "character": character.full_name,
            "settings": settings.model_dump(),
            "sft_config": trainer.args.to_dict(),
            "lora": peft_config.to_dict() if peft_config else None,
            "result": result.model_dump(),
        }
        (tmp / SETTINGS_FILE).write_text(json.dumps(info, indent=2, default=_jsonable), encoding="utf-8")
        replace_folder(tmp, out)
        shutil.rmtree(Path(trainer.args.output_dir), ignore_errors=True)
    return result


def _jsonable(value: Any) -> Any:
    return sorted(value) if isinstance(value, (set, frozenset)) else str(value)


class SFTStep(Step):
    """Trains `adapters/sft` (or `adapters/<adapter>`) on the rows of the steps it reads: experiences (Character-LLM's scripts,
    rendered in the student's format) and any rows that are conversations already (records with
    `messages()`, such as self-aligned dialogues). Its own rows (`sft.jsonl`) are exactly the rows
    it trained on, so exports never re-derive them."""

    name = "sft"
    trains = True
    record = SFTRow
    reads = (ExperiencesStep, ProtectiveStep)
    roles = ("student",)

    def __init__(self, settings: SFTSettings, config: dict[str, Any] | None = None, reads=None,
                 adapter: str = "sft", resume: bool = True):
        super().__init__(settings, reads)
        self.config, self.adapter, self.resume = dict(config or {}), adapter, resume
        if adapter != "sft":  # another adapter is another output, with a manifest entry of its own
            self.name = f"sft-{adapter}"

    def fingerprint(self) -> Any:
        return [self.settings.model_dump(mode="json", exclude={"student"}), self.config, self.adapter]

    async def run(self, ctx: Context) -> Output:
        ws = ctx.workspace
        records = [r for step in self.reads for r in ctx.read(step)]
        experiences = [r for r in records if isinstance(r, Experience)]
        # Conversations without a system prompt of their own (QA and boundary rows) get the persona prompt
        # the agent serves with, so the trained character sees at serving time what it was trained on.
        persona = [Message(role="system", content=chat_system_prompt(ws.character()))] if ws.character_path.exists() else []
        ready = [SFTRow(messages=m if m[0].role == "system" else persona + m, source=getattr(r, "id", ""))
                 for r in records if not isinstance(r, Experience) and (m := r.messages())]
        if not experiences and not ready:
            raise RolecraftError(
                "the teacher produced no usable training data, so there is nothing to fine-tune on",
                "use a stronger --teacher, or see the rejection counts in the build summary (`rolecraft stats`)",
            )
        # A set of characters (self-alignment) has no one character; the report names the set.
        cast = {getattr(r, "character", "") for r in records}
        who = ws.character() if ws.character_path.exists() else Character(full_name=f"{len(cast)} characters ({ws.root.name})")
        settings = self.settings.model_copy(update={"student": ctx.models.student})
        result = train_sft(who, experiences, settings, ws.adapter(self.adapter), config=dict(self.config),
                           resume=self.resume, rows=ready)
        info = {"rows": result.rows, "train_loss": result.metrics.get("train_loss"), "tokens": result.tokens,
                "loss": [result.metrics.get("first_loss"), result.metrics.get("last_loss")], "seconds": result.seconds}
        return Output(result.training_rows, info=info)
