"""Persona-fact retrieval for the agent's prompt (APC's RAG): the top-k facts by relevance P_g.

Scoring every fact with the relevance classifier costs one cross-encoder pass per fact, which for a
character with hundreds of statements is most of a reply's latency. So an embedding pre-filter
(all-MiniLM-L6-v2, normalised vectors, exact inner-product search in numpy) picks the `candidates`
facts closest to the query, and only those are ranked by the relevance discriminator. For the
sizes a character has (hundreds to a few thousand facts) a flat exact search takes well under a
millisecond, so an approximate index would add a dependency and lose recall for nothing
(bench/apc_scoring.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from rolecraft.encoder import embed
from rolecraft.faithfulness.discriminators import Discriminator, Item


class FactRetriever:
    """Meets `rolecraft.agent.Retriever`: `search(query, k)` returns the k most relevant facts."""

    def __init__(
        self,
        character: str,
        facts: Sequence[str],
        relevance: Discriminator | None,  # None: rank by embedding similarity alone
        candidates: int = 50,
        encoder: str | Path | None = None,
        k: int = 5,
    ):
        self.character = character
        self.facts = list(dict.fromkeys(f for f in facts if f.strip()))
        self.relevance = relevance
        self.candidates = candidates
        self.encoder_path = encoder
        self.k = k

    @cached_property
    def index(self) -> np.ndarray:
        """Unit-length embeddings of every fact, one row each (built on first use)."""
        return embed(self.facts, self.encoder_path)

    def similarity(self, query: str) -> np.ndarray:
        vector = embed([query], self.encoder_path)[0]
        return self.index @ vector

    def shortlist(self, query: str) -> list[int]:
        """Indices of the facts the relevance classifier will rank: all, or the nearest `candidates`."""
        if len(self.facts) <= self.candidates:
            return list(range(len(self.facts)))
        return np.argpartition(-self.similarity(query), self.candidates)[: self.candidates].tolist()

    def search(self, query: str, k: int | None = None) -> list[str]:
        k = self.k if k is None else k
        if not self.facts or k <= 0:
            return []
        if self.relevance is None:
            order, scores = list(range(len(self.facts))), self.similarity(query)
        else:
            order = self.shortlist(query)
            scores = self.relevance.predict([Item(self.character, self.facts[i], query) for i in order])[:, 1]
        best = np.argsort(-scores, kind="stable")[:k]
        return [self.facts[order[i]] for i in best]
