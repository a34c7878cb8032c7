"""Training the two APC discriminators: sequence classifiers fine-tuned on relevance and NLI rows.

The default base is the embedded all-MiniLM-L6-v2 (offline, CPU); any HF encoder works (the paper
tunes DeBERTa-v3-large). A trained discriminator is a folder the workspace owns
(`Workspace.discriminator_dir`): weights, tokenizer and `discriminator.json` with its kind, labels,
base, settings and held-out accuracy against the majority baseline.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.discriminators import LABELS, META, ClassifierDiscriminator, Item, Kind, pair_text
from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord
from rolecraft.step import Context, Output, Step
from rolecraft.synth.nli import NLILabelsStep
from rolecraft.synth.relevance import RelevanceStep
from rolecraft.workspace import folder_in_place

HeldOutBy = Literal["query", "statement"]
DEFAULT_EPOCHS = {"relevance": 5, "nli": 10}  # the reference's schedule


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


class DiscriminatorsStep(Step):
    """Trains both discriminators into the workspace; its rows (`discriminators.jsonl`) are the two
    training reports. With no relevance or NLI rows (a teacher too weak to write usable queries) it
    removes classifiers left from older data and skips: no DPO, no APC in the evaluation."""

    name = "discriminators"
    record = TrainReport
    reads = (RelevanceStep, NLILabelsStep)

    def __init__(self, settings: DiscriminatorSettings, relevance: Sequence[RelevanceRecord] | None = None,
                 nli: Sequence[NLILabelRecord] | None = None):
        # Rows given (a file of APC's published data) are trained on instead of the workspace's.
        super().__init__(settings, reads=tuple(s for s, rows in ((RelevanceStep, relevance), (NLILabelsStep, nli)) if rows is None))
        self.given = {"relevance": relevance, "nli": nli}

    def fingerprint(self) -> Any:
        given = {k: [r.model_dump() for r in rows] for k, rows in self.given.items() if rows is not None}
        return [super().fingerprint(), hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()]

    async def run(self, ctx: Context) -> Output:
        ws = ctx.workspace
        rows = {
            "relevance": self.given["relevance"] if self.given["relevance"] is not None else ctx.read(RelevanceStep),
            "nli": self.given["nli"] if self.given["nli"] is not None else ctx.read(NLILabelsStep),
        }
        missing = [kind for kind, found in rows.items() if not found]
        if missing:
            for kind in ("relevance", "nli"):  # never score with classifiers left from older data
                shutil.rmtree(ws.discriminator_dir(kind), ignore_errors=True)
            return Output(skipped=f"the teacher wrote no usable {' or '.join(missing)} rows")
        reports = [
            train_discriminator("relevance", *relevance_examples(rows["relevance"]), ws.discriminator_dir("relevance"), self.settings),
            train_discriminator("nli", *nli_examples(rows["nli"]), ws.discriminator_dir("nli"), self.settings),
        ]
        info = {r.kind: {"accuracy": r.accuracy, "majority": r.majority} for r in reports}
        return Output(reports, info=info)
