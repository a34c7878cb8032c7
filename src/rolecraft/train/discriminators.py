"""Training the two APC discriminators: sequence classifiers fine-tuned on relevance and NLI rows.

The default base is the embedded all-MiniLM-L6-v2 (offline, CPU); any HF encoder works (the paper
tunes DeBERTa-v3-large). A trained discriminator is a folder the workspace owns
(`Workspace.discriminator_dir`): weights, tokenizer and `discriminator.json` with its kind, labels,
base, settings and held-out accuracy against the majority baseline.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord, load_reference
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
    held_out: float = Field(0.2, ge=0.0, lt=1.0)  # share of the character's items kept out of training for the report
    held_out_by: HeldOutBy = "query"  # see `held_out_split`
    min_steps: int = Field(0, ge=0)  # at least this many optimizer steps: small sets get more epochs
    base_data: bool = False  # also train on APC's published Alice rows (rolecraft/data/apc), never held out
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
    extra: tuple[Sequence[Item], Sequence[str]] = ((), ()),
) -> TrainReport:
    """Fine-tune a classifier on (item, label) pairs, report held-out accuracy, save it to `out`.
    `extra`: more (items, labels) always trained on and never held out (a general base, e.g. APC's)."""
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

    from rolecraft.train.progress import show_progress

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
    base_items, base_labels = list(extra[0]), list(extra[1])
    trained = len(train_idx) + len(base_items)
    epochs = max(settings.epochs or DEFAULT_EPOCHS[kind], math.ceil(settings.min_steps * settings.batch_size / max(trained, 1)))
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

    def encode(chosen: Sequence[Item], gold: Sequence[str]) -> Dataset:
        pairs = [pair_text(item) for item in chosen]
        enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=settings.max_length)
        return Dataset.from_dict({**enc, "labels": [names.index(label) for label in gold]})

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
            train_dataset=encode([items[i] for i in train_idx] + base_items, [labels[i] for i in train_idx] + base_labels),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        show_progress(trainer, f"training the {kind} discriminator").train()
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
            train_items=trained,
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


BASE_DATA = Path(__file__).resolve().parents[1] / "data" / "apc"


def base_rows() -> tuple[list[RelevanceRecord], list[NLILabelRecord]]:
    """APC's published, GPT-4-labelled Alice rows (MIT; see rolecraft/data/apc/README.md)."""
    return (load_reference(BASE_DATA / "Alice.relevance.json", RelevanceRecord),
            load_reference(BASE_DATA / "Alice.nli.v2.json", NLILabelRecord))


class DiscriminatorsStep(Step):
    """Trains both discriminators into the workspace on the relevance and NLI rows of the steps it
    reads (the teacher's, and those labelled by construction), plus APC's Alice rows with `base_data`;
    its rows (`discriminators.jsonl`) are the two training reports, held-out accuracy measured on the
    character's own rows. With no rows of either kind it removes classifiers left from older data and
    skips: no DPO, no APC in the evaluation."""

    name = "discriminators"
    trains = True
    record = TrainReport
    reads = (RelevanceStep, NLILabelsStep)

    def __init__(self, settings: DiscriminatorSettings, relevance: Sequence[RelevanceRecord] | None = None,
                 nli: Sequence[NLILabelRecord] | None = None, reads: tuple[type[Step], ...] | None = None):
        # Rows given (a file of APC's published data) are trained on instead of the workspace's.
        reads = reads if reads is not None else self.reads
        reads = tuple(s for s in reads if (relevance if s.record is RelevanceRecord else nli) is None)
        super().__init__(settings, reads=reads)
        self.given = {"relevance": relevance, "nli": nli}

    def fingerprint(self) -> Any:
        given = {k: [r.model_dump() for r in rows] for k, rows in self.given.items() if rows is not None}
        return [super().fingerprint(), hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()]

    def rows(self, ctx: Context, kind: str, record: type) -> list:
        given = self.given[kind]
        return list(given) if given is not None else [r for s in self.reads if s.record is record for r in ctx.read(s)]

    async def run(self, ctx: Context) -> Output:
        ws = ctx.workspace
        rows = {"relevance": self.rows(ctx, "relevance", RelevanceRecord), "nli": self.rows(ctx, "nli", NLILabelRecord)}
        missing = [kind for kind, found in rows.items() if not found]
        if missing:
            for kind in ("relevance", "nli"):  # never score with classifiers left from older data
                shutil.rmtree(ws.discriminator_dir(kind), ignore_errors=True)
            return Output(skipped=f"the teacher wrote no usable {' or '.join(missing)} rows")
        base_relevance, base_nli = base_rows() if self.settings.base_data else ([], [])
        reports = [
            train_discriminator("relevance", *relevance_examples(rows["relevance"]), ws.discriminator_dir("relevance"),
                                self.settings, extra=relevance_examples(base_relevance)),
            train_discriminator("nli", *nli_examples(rows["nli"]), ws.discriminator_dir("nli"), self.settings,
                                extra=nli_examples(base_nli)),
        ]
        info = {r.kind: {"accuracy": r.accuracy, "majority": r.majority} for r in reports}
        return Output(reports, info=info)
