"""APC's published discriminators, fed exactly as the paper feeds them.

The paper's scorers (Hugging Face `KomeijiForce/deberta-v3-large-relevance-12character` and
`...-nli-12character`; for Chinese the xlm-roberta-large pair) are plain sequence-classifier folders:
no `discriminator.json`, one text in, logits out in APC's label orders, [no, yes] for relevance and
[contradicted, neutral, entailed] for NLI (the same orders as rolecraft's own). Their input is not a
text pair but APC's prompt template filled with the character, statement, query (and response),
tokenized whole, and their probabilities are the softmax of the logits.

The templates are the functions `fill_in_query_discrimination_template` and
`fill_in_brief_nli_discrimination_template` of APC's `prompt.py` (`..._zh` in `prompt_zh.py`), read from
the user's copy of APC's repository (formats.paper_files parses the file; nothing of it is run).

`load_discriminator` picks the class for a folder: a rolecraft-trained one (`discriminator.json`) or
such a plain classifier with APC's templates. APC scores single turns: earlier turns of a conversation
have no place in its templates and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.discriminators import LABELS, META, ClassifierDiscriminator, Discriminator, Item, Kind
from rolecraft.formats.paper_files import returned_template
from rolecraft.weights import LOAD_LOCK

FUNCTIONS = {"relevance": "fill_in_query_discrimination_template", "nli": "fill_in_brief_nli_discrimination_template"}
KIND_BY_LABELS = {2: "relevance", 3: "nli"}


@dataclass(frozen=True)
class APCTemplates:
    relevance: str  # str.format templates over character, statement, query (and response)
    nli: str
    source: Path

    @classmethod
    def load(cls, path: str | Path) -> APCTemplates:
        """From APC's `prompt.py` or `prompt_zh.py`, or the repository folder holding `prompt.py`."""
        path = Path(path)
        file = path / "prompt.py" if path.is_dir() else path
        if not file.is_file():
            raise RolecraftError(f"{file}: no such file", "pass your copy of APC's prompt.py (or prompt_zh.py)")
        suffix = "_zh" if file.stem.endswith("_zh") else ""
        return cls(*(returned_template(file, FUNCTIONS[k] + suffix) for k in ("relevance", "nli")), source=file)

    def text(self, kind: Kind, item: Item) -> str:
        template = self.relevance if kind == "relevance" else self.nli
        return template.format(character=item.character, statement=item.statement, query=item.query,
                               response=item.response or "")


class APCDiscriminator:
    """A plain sequence classifier fed APC's prompt templates (the paper's published DeBERTa scorers).
    Length-sorted batches; padding is masked, so a batch scores as the one-at-a-time reference does."""

    def __init__(self, path: str | Path, kind: Kind, templates: APCTemplates, batch_size: int = 16,
                 device: str | None = None):
        self.path, self.kind, self.templates = Path(path), kind, templates
        self.labels = LABELS[kind]
        self.batch_size, self.device = batch_size, device

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.path)

    @cached_property
    def model(self):
        import torch
        from transformers import AutoModelForSequenceClassification

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        with LOAD_LOCK:
            return AutoModelForSequenceClassification.from_pretrained(self.path).to(device).eval()

    def texts(self, items: Sequence[Item]) -> list[str]:
        return [self.templates.text(self.kind, i) for i in items]

    def predict(self, items: Sequence[Item]) -> np.ndarray:
        import torch

        texts = self.texts(items)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, return_tensors="pt").to(self.model.device)
                out[idx] = self.model(**batch).logits.float().softmax(-1).cpu().numpy()
        return out


def classifier_labels(folder: Path) -> int | None:
    """How many labels a Hugging Face sequence-classifier folder has (None when it is not one)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return None
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder).num_labels  # id2label may be left out of the file


def load_discriminator(folder: str | Path, kind: Kind, apc_prompts: str | Path | None = None) -> Discriminator:
    """The discriminator in `folder`: rolecraft's own (`discriminator.json`), or a plain sequence
    classifier (APC's published ones) fed APC's templates from `apc_prompts`."""
    folder = Path(folder)
    if (folder / META).exists():
        return ClassifierDiscriminator(folder)
    labels = classifier_labels(folder)
    if labels is None:
        raise RolecraftError(
            f"{folder} is neither a rolecraft discriminator (no {META}) nor a Hugging Face sequence classifier",
            "train one with `rolecraft discriminators train`, or pass APC's published classifier folder",
        )
    if KIND_BY_LABELS.get(labels) != kind:
        raise RolecraftError(f"{folder} classifies into {labels} labels, not the {len(LABELS[kind])} of {kind}",
                             f"pass the {kind} discriminator here")
    if apc_prompts is None:
        raise RolecraftError(
            f"{folder} is a plain classifier: rolecraft feeds it APC's prompt templates, which it does not carry",
            "pass --apc-prompts PATH: prompt.py (prompt_zh.py for Chinese) of your copy of APC's repository",
        )
    return APCDiscriminator(folder, kind, APCTemplates.load(apc_prompts))
