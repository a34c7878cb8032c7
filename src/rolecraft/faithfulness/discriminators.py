"""The two APC discriminators: relevance P_g(s, q) (no / yes) and NLI (contradicted / neutral / entailed).

Two implementations behind one `predict(items) -> probabilities` contract:

- `ClassifierDiscriminator`: a sequence classifier fine-tuned with transformers' Trainer on the
  teacher's data (`train_discriminator`). The default base is the embedded all-MiniLM-L6-v2, so it
  trains and runs offline on CPU; any HF encoder works (`--base`, e.g. DeBERTa-v3-large as in the paper).
  The input is a text pair: "Name: statement" against the user turn (and the reply, for NLI).
- `JudgeDiscriminator` (faithfulness.judge): an LLM asked the question the teacher answered when
  labelling, as the alternative that needs no training.

A trained discriminator is a folder: the model, its tokenizer and `discriminator.json` (kind, labels,
base, settings, held-out accuracy).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.engines import ENGINES, OnnxClassifier, TorchClassifier, resolve_engine, softmax
from rolecraft.synth.apc_records import NLI_LABELS, RELEVANCE_LABELS, NLILabelRecord, RelevanceRecord
from rolecraft.workspace import Workspace, folder_in_place

Kind = Literal["relevance", "nli"]
HeldOutBy = Literal["query", "statement"]
LABELS: dict[str, tuple[str, ...]] = {"relevance": RELEVANCE_LABELS, "nli": NLI_LABELS}
DEFAULT_EPOCHS = {"relevance": 5, "nli": 10}  # the reference's schedule
CONTEXT_CHARS = 400  # earlier conversation turns shown to a discriminator, newest kept
META = "discriminator.json"


@dataclass(frozen=True)
class Item:
    """What a discriminator looks at: a statement and a user turn, plus the reply for NLI.

    `context` holds the earlier turns of a multi-turn conversation (rendered "Name: text" lines);
    single-turn items leave it empty, like the training data.
    """

    character: str
    statement: str
    query: str
    response: str | None = None
    context: str = ""


class Discriminator(Protocol):
    kind: Kind
    labels: tuple[str, ...]

    def predict(self, items: Sequence[Item]) -> np.ndarray:
        """Probabilities, shape (len(items), len(labels)), columns in `labels` order."""
        ...


def pair_text(item: Item) -> tuple[str, str]:
    """The classifier's text pair: the statement, then the conversation (and reply) it is checked against."""
    turn = item.query
    if item.context:
        context = item.context
        if len(context) > CONTEXT_CHARS:  # keep the newest whole lines that fit
            context = context[-CONTEXT_CHARS:].partition("\n")[2] or context[-CONTEXT_CHARS:]
        turn = f"{context}\n{turn}"
    second = turn if item.response is None else f"{turn}\n{item.character}: {item.response}"
    return f"{item.character}: {item.statement}", second


# -- trained sequence classifiers ---------------------------------------------------------------------


class ClassifierDiscriminator:
    """A fine-tuned sequence classifier folder. Items are tokenized once, sorted by token count and
    batched, so a batch holds equal lengths and padding costs almost nothing. The forward pass runs
    on `engine` (faithfulness.engines): "auto" = ONNX Runtime on CPU when installed, else PyTorch."""

    def __init__(self, path: str | Path, batch_size: int = 64, device: str | None = None, engine: str = "auto"):
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.exists():
            raise RolecraftError(
                f"{self.path} is not a trained discriminator (no {META})",
                "train one with `rolecraft discriminators train`",
            )
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.kind: Kind = self.meta["kind"]
        self.labels = tuple(self.meta["labels"])
        self.max_length = int(self.meta.get("max_length", 256))
        self.batch_size = batch_size
        self.device = device
        if engine not in ENGINES:
            raise RolecraftError(f"unknown discriminator engine '{engine}'", f"use one of {', '.join(ENGINES)}")
        self.engine = engine

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.path)

    @cached_property
    def runner(self) -> TorchClassifier | OnnxClassifier:
        engine = resolve_engine(self.engine, self.device)
        if engine == "torch":
            return TorchClassifier(self.path, self.device)
        return OnnxClassifier(self.path, self.tokenizer, quantized=engine == "onnx-int8")

    def predict(self, items: Sequence[Item]) -> np.ndarray:
        out = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        if not items:
            return out
        pairs = [pair_text(i) for i in items]
        encoded = self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=self.max_length)
        order = sorted(range(len(items)), key=lambda i: len(encoded["input_ids"][i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = {
                name: right_padded([encoded[name][i] for i in idx], self.tokenizer.pad_token_id if name == "input_ids" else 0)
                for name in encoded.keys()
            }
            out[idx] = softmax(self.runner.logits(batch))
        return out


def right_padded(rows: Sequence[Sequence[int]], value: int) -> np.ndarray:
    array = np.full((len(rows), max(map(len, rows))), value, dtype=np.int64)
    for r, row in enumerate(rows):
        array[r, : len(row)] = row
    return array


class DiscriminatorSettings(BaseModel):
    """Fine-tuning settings. The reference tunes DeBERTa-v3-large at lr 1e-5, batch 8, 5 (relevance) /
    10 (NLI) epochs; the embedded MiniLM is 20x smaller and wants a larger learning rate."""

    base: str = ""  # HF encoder folder or cached hub id; "" = embedded all-MiniLM-L6-v2
    epochs: int | None = None  # None: 5 for relevance, 10 for NLI
    learning_rate: float = 1e-4
    batch_size: int = 8
    max_length: int = Field(256, ge=32)
    held_out: float = Field(0.2, ge=0.0, lt=1.0)  # share of items kept out of training for the report
    held_out_by: HeldOutBy = "query"  # see `held_out_split`
    seed: int = 0

    @classmethod
    def tiny(cls) -> DiscriminatorSettings:
        return cls(epochs=2, max_length=128)


class TrainReport(BaseModel):
    kind: Kind
    base: str
    train_items: int
    test_items: int
    accuracy: float | None  # on held-out statements; None when nothing was held out
    majority: float | None  # accuracy of always answering the training set's most common label
    label_counts: dict[str, int]
    epochs: int
    seconds: float


def relevance_examples(rows: Sequence[RelevanceRecord]) -> tuple[list[Item], list[str]]:
    return [Item(r.character, r.statement, r.query) for r in rows], [r.relevant for r in rows]


def nli_examples(rows: Sequence[NLILabelRecord]) -> tuple[list[Item], list[str]]:
    return [Item(r.character, r.statement, r.query, r.response) for r in rows], [r.label for r in rows]


def held_out_split(items: Sequence[Item], share: float, seed: int, by: HeldOutBy = "query") -> tuple[list[int], list[int]]:
    """Indices (train, test). `by="query"`: whole (statement, query) groups are held out, so the test
    asks about known statements with unseen questions and replies, which is how APC uses the
    discriminators. `by="statement"`: whole statements are held out, a harder test of generalisation.
    Groups are ordered by a seeded hash and taken until `share` of the items is held out."""
    if share <= 0:
        return list(range(len(items))), []
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.statement if by == "statement" else f"{item.statement}\n{item.query}", []).append(i)
    keyed = sorted(groups, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    test: list[int] = []
    for group in keyed[:-1]:  # always leave at least one group to train on
        if len(test) >= share * len(items):
            break
        test += groups[group]
    held = set(test)
    return [i for i in range(len(items)) if i not in held], test


def base_encoder(settings: DiscriminatorSettings) -> str:
    if settings.base:
        return settings.base
    from rolecraft.llm.embedded import embedded_encoder

    return str(embedded_encoder())


def train_discriminator(
    kind: Kind,
    items: Sequence[Item],
    labels: Sequence[str],
    out: str | Path,
    settings: DiscriminatorSettings = DiscriminatorSettings(),
) -> TrainReport:
    """Fine-tune a classifier on (item, label) pairs, report held-out accuracy, save it to `out`."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    names = LABELS[kind]
    unknown = sorted(set(labels) - set(names))
    if unknown or not items:
        raise RolecraftError(
            f"cannot train the {kind} discriminator: "
            + (f"unknown labels {unknown}" if unknown else "no training data"),
            f"give {kind} rows labelled {', '.join(names)}",
        )
    started = time.monotonic()
    base = base_encoder(settings)
    train_idx, test_idx = held_out_split(items, settings.held_out, settings.seed, settings.held_out_by)
    epochs = settings.epochs or DEFAULT_EPOCHS[kind]
    tokenizer = AutoTokenizer.from_pretrained(base)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "classifier weights newly initialised" report is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
        )
    finally:
        hf_logging.set_verbosity(verbosity)

    def encode(idx: list[int]) -> Dataset:
        pairs = [pair_text(items[i]) for i in idx]
        enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=settings.max_length)
        return Dataset.from_dict({**enc, "labels": [names.index(labels[i]) for i in idx]})

    out = Path(out)
    with folder_in_place(out) as tmp:
        args = TrainingArguments(
            output_dir=str(tmp / "trainer"),
            num_train_epochs=epochs,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            warmup_steps=0.1,
            weight_decay=0.01,
            save_strategy="no",
            logging_strategy="epoch",
            report_to="none",
            seed=settings.seed,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=encode(train_idx),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        trainer.train()
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {"kind": kind, "labels": list(names), "base": base, "max_length": settings.max_length}
        (tmp / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")

        majority_label, _ = Counter(labels[i] for i in train_idx).most_common(1)[0]
        accuracy = majority = None
        if test_idx:
            probs = ClassifierDiscriminator(tmp).predict([items[i] for i in test_idx])
            gold = [labels[i] for i in test_idx]
            accuracy = float(np.mean([names[p] == g for p, g in zip(probs.argmax(1), gold)]))
            majority = float(np.mean([g == majority_label for g in gold]))
        report = TrainReport(
            kind=kind,
            base=base,
            train_items=len(train_idx),
            test_items=len(test_idx),
            accuracy=accuracy,
            majority=majority,
            label_counts=dict(Counter(labels)),
            epochs=epochs,
            seconds=round(time.monotonic() - started, 1),
        )
        meta.update(settings=settings.model_dump(), report=report.model_dump())
        (tmp / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return report


# -- a workspace's pair ------------------------------------------------------------------------------


def discriminator_dir(workspace: Workspace, kind: Kind) -> Path:
    return workspace.path(f"discriminators/{kind}")


def has_discriminators(workspace: Workspace) -> bool:
    return all((discriminator_dir(workspace, k) / META).exists() for k in ("relevance", "nli"))


def workspace_discriminators(workspace: Workspace) -> tuple[ClassifierDiscriminator, ClassifierDiscriminator]:
    """The (relevance, NLI) classifiers trained in this workspace."""
    return tuple(ClassifierDiscriminator(discriminator_dir(workspace, k)) for k in ("relevance", "nli"))  # type: ignore[return-value]


def discriminators_stage(
    workspace: Workspace,
    settings: DiscriminatorSettings = DiscriminatorSettings(),
    relevance: Sequence[RelevanceRecord] | None = None,
    nli: Sequence[NLILabelRecord] | None = None,
) -> dict[str, TrainReport]:
    """Train both discriminators on the workspace's `relevance` / `nli_labels` rows (or the rows given)."""
    relevance = relevance if relevance is not None else workspace.read("relevance", RelevanceRecord)
    nli = nli if nli is not None else workspace.read("nli_labels", NLILabelRecord)
    reports = {
        "relevance": train_discriminator("relevance", *relevance_examples(relevance), discriminator_dir(workspace, "relevance"), settings),
        "nli": train_discriminator("nli", *nli_examples(nli), discriminator_dir(workspace, "nli"), settings),
    }
    workspace.record_stage(
        "discriminators", status="done", settings=settings.model_dump(), reports={k: r.model_dump() for k, r in reports.items()}
    )
    return reports
