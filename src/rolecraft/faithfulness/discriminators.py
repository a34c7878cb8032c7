"""The two APC discriminators: relevance P_g(s, q) (no / yes) and NLI (contradicted / neutral / entailed).

Two implementations behind one `predict(items) -> probabilities` contract:

- `ClassifierDiscriminator`: a sequence classifier fine-tuned on the teacher's data
  (`rolecraft.train.discriminators`). The default base is the embedded all-MiniLM-L6-v2, so it trains
  and runs offline on CPU; any HF encoder works (e.g. DeBERTa-v3-large as in the paper). The input is
  a text pair: "Name: statement" against the user turn (and the reply, for NLI).
- `JudgeDiscriminator` (faithfulness.judge): an LLM asked the question the teacher answered when
  labelling, as the alternative that needs no training.

A trained discriminator is a folder: the model, its tokenizer and `discriminator.json` (kind, labels,
base, settings, held-out accuracy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.engines import ENGINES, OnnxClassifier, TorchClassifier, resolve_engine, softmax
from rolecraft.faithfulness.tokenizer import by_length, load_tokenizer, padded_batch
from rolecraft.formats.apc import NLI_LABELS, RELEVANCE_LABELS
from rolecraft.workspace import DISCRIMINATOR_META, Workspace

Kind = Literal["relevance", "nli"]
LABELS: dict[str, tuple[str, ...]] = {"relevance": RELEVANCE_LABELS, "nli": NLI_LABELS}
CONTEXT_CHARS = 400  # earlier conversation turns shown to a discriminator, newest kept
META = DISCRIMINATOR_META


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

    def __init__(self, path: str | Path, batch_size: int = 64, device: str | None = None, engine: str = "auto",
                 remember: int = 0):
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
        # Probabilities of up to `remember` text pairs already scored, reused when a pair comes again: an
        # agent's retrieval and APC's relevance ask the same (statement, question) pairs, a swipe repeats
        # its retrieval, two agents may give the same reply. Off by default, so a benchmark times work.
        self.remember = remember
        self.seen: dict[tuple[str, str], np.ndarray] = {}

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.path)

    @cached_property
    def runner(self) -> TorchClassifier | OnnxClassifier:
        engine = resolve_engine(self.engine, self.device)
        if engine == "torch":
            return TorchClassifier(self.path, self.device)
        return OnnxClassifier(self.path, self.tokenizer, quantized=engine == "onnx-int8")

    def predict(self, items: Sequence[Item]) -> np.ndarray:
        if not items:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        pairs = [pair_text(i) for i in items]
        if not self.remember:
            return self.forward(pairs)
        new = [p for p in dict.fromkeys(pairs) if p not in self.seen]
        if new:
            if len(self.seen) + len(new) > self.remember:
                self.seen.clear()
            self.seen.update(zip(new, self.forward(new)))
        return np.stack([self.seen[p] for p in pairs])

    def forward(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities of text pairs (`pair_text`), tokenized once, sorted by length and batched."""
        out = np.zeros((len(pairs), len(self.labels)), dtype=np.float32)
        encoded = self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=self.max_length)
        for idx in by_length(encoded, self.batch_size):
            out[idx] = softmax(self.runner.logits(padded_batch(encoded, idx, self.tokenizer.pad_token_id)))
        return out


# -- a workspace's pair ------------------------------------------------------------------------------


REMEMBERED_PAIRS = 20_000  # per workspace classifier: a build's or a long chat's pairs, a few MB


def workspace_discriminators(workspace: Workspace) -> tuple[ClassifierDiscriminator, ClassifierDiscriminator]:
    """The (relevance, NLI) classifiers trained in this workspace."""
    if not workspace.has_discriminators():
        raise RolecraftError(
            f"{workspace.root} has no trained discriminators to score APC with",
            "train them first (`rolecraft discriminators train`, or `rolecraft build`)",
        )
    return workspace_discriminator(workspace, "relevance"), workspace_discriminator(workspace, "nli")  # type: ignore[return-value]


def workspace_discriminator(workspace: Workspace, kind: Kind) -> ClassifierDiscriminator | None:
    """The workspace's trained `kind` classifier, or None. One instance per process for its current
    training (retraining rewrites its metadata): the retriever, the APC scorer and every agent of the
    workspace share one ONNX session and one memory of the pairs scored."""
    meta = workspace.discriminator_dir(kind) / META
    if not meta.exists():
        return None
    return _loaded(str(meta.parent.resolve()), meta.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _loaded(folder: str, trained_at: int) -> ClassifierDiscriminator:
    return ClassifierDiscriminator(folder, remember=REMEMBERED_PAIRS)
