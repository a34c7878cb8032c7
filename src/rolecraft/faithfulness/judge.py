"""An LLM as the discriminator: no training, the teacher's own labelling question.

With a local hf: model the probabilities are its next-token probabilities of the label words
(summed over spellings such as "yes" / " Yes"); other backends expose no scores, so their greedy
answer counts as probability 1, and an answer naming no label as a uniform distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.discriminators import LABELS, Item, Kind
from rolecraft.faithfulness.questions import nli_question, relevance_question
from rolecraft.llm.base import ChatModel, SamplingParams, run_sync


class JudgeDiscriminator:
    """Asks a chat model the labelling question. A local hf: model gives label-token probabilities."""

    def __init__(self, model: ChatModel, kind: Kind, batch_size: int = 8):
        while hasattr(model, "inner"):  # label probabilities need the backend itself, not a cache over it
            model = model.inner
        self.model = model
        self.kind = kind
        self.labels = LABELS[kind]
        self.batch_size = batch_size

    def question(self, item: Item):
        query = f"{item.context}\n{item.query}".strip() if item.context else item.query
        if self.kind == "relevance":
            return relevance_question(item.character, item.statement, query)
        return nli_question(item.character, item.statement, query, item.response or "")

    def predict(self, items: Sequence[Item]) -> np.ndarray:
        from rolecraft.llm.hf import HFChatModel

        conversations = [self.question(i) for i in items]
        if isinstance(self.model, HFChatModel):
            return self._label_probabilities(conversations)
        completions = run_sync(self.model.generate(conversations, SamplingParams(temperature=0.0, max_tokens=8)))
        out = np.full((len(items), len(self.labels)), 1.0 / len(self.labels), dtype=np.float32)
        for row, completion in zip(out, completions):
            word = completion.text.strip().strip(".\"'`").lower()
            hit = [i for i, label in enumerate(self.labels) if word.startswith(label[:6])]
            if hit:
                row[:] = 0.0
                row[hit[0]] = 1.0
        return out

    @cached_property
    def _label_tokens(self) -> list[list[int]]:
        """For each label, the first token of its spellings ("yes", " Yes", ...). A spelling whose first
        token is bare whitespace (small vocabularies) is skipped: that token says nothing about the label."""
        tok = self.model.tokenizer
        tokens = []
        for label in self.labels:
            firsts = {tok.encode(s, add_special_tokens=False)[0] for s in (label, label.capitalize(), f" {label}", f" {label.capitalize()}")}
            tokens.append(sorted(t for t in firsts if tok.decode([t]).strip()))
        if any(set(a) & set(b) for i, a in enumerate(tokens) for b in tokens[i + 1 :]):
            raise RolecraftError(
                f"the judge's tokenizer cannot tell the {self.kind} labels apart by their first token",
                "use a trained classifier discriminator, or another judge model",
            )
        return tokens

    def _label_probabilities(self, conversations) -> np.ndarray:
        import torch

        tok, model = self.model.tokenizer, self.model.model
        prompts = [self.model.render(c) for c in conversations]
        out = np.zeros((len(prompts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                batch = tok(prompts[start : start + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
                logits = model(**batch.to(model.device)).logits[:, -1].float().log_softmax(-1)
                scores = torch.stack([logits[:, ids].logsumexp(-1) for ids in self._label_tokens], dim=-1)
                out[start : start + len(batch["input_ids"])] = scores.softmax(-1).cpu().numpy()
        return out
