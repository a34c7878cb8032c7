"""The Active-Passive-Constraint score, batched, for single replies and whole conversations.

    APC(q, r | S) = Σ_i [ P_g(s_i, q) · P_e(s_i, q, r) + (1 − P_g(s_i, q)) · (1 − P_c(s_i, q, r)) ]

the expected number of persona statements a reply satisfies: a relevant ("active") statement must
be entailed, an irrelevant ("passive") one merely not contradicted. Range [0, |S|].

How it is computed: P_g depends only on (statement, query), so it is computed once per query for
every statement and reused for all of that query's replies; then every (statement, query, reply)
NLI triple of the whole request goes through the classifier in length-sorted batches. The
reference computes both, one pair at a time, for every reply (bench/apc_scoring.py compares).

ΔAPC (as reported by rolecraft): APC(r) − APC(r₀), where the reference reply r₀ is *neutral to every
statement* (P_e = P_c = 0), so APC(r₀) = Σ_i (1 − P_g(s_i, q)) and
ΔAPC = Σ_i [ P_g·P_e − (1 − P_g)·P_c ]: what a reply gains by stating relevant facts, minus what it
loses by contradicting irrelevant ones. It is 0 for a reply that says nothing about the persona and
does not depend on how the NLI classifier treats an empty string. To compare two concrete replies
(e.g. before and after DPO) use `APCResult.total` of each: the difference of totals is the ΔAPC with
the other reply as reference.

Multi-turn: a reply is scored against the latest user turn, with the earlier turns given to both
discriminators as context; `score_conversation` scores every assistant turn given what preceded it.

Pruning (off by default): with `prune_below=t`, statements whose relevance to a query is below t
skip the NLI pass and count as neutral, i.e. contribute 1 − P_g. That assumes a reply does not
contradict a statement unrelated to the query; the error per pruned statement is at most
max(P_g·P_e, (1 − P_g)·P_c) ≤ max(t, P_c). Worth it only when scoring many replies against
hundreds of statements; the reported numbers never use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from rolecraft.character import DEFAULT_USER
from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.discriminators import Discriminator, Item, workspace_discriminators
from rolecraft.llm.base import Message, as_messages
from rolecraft.workspace import Workspace


class StatementScore(BaseModel):
    statement: str
    relevance: float  # P_g(s, q)
    contradicted: float
    neutral: float
    entailed: float
    pruned: bool = False  # NLI skipped (see module notes); counted as neutral

    @property
    def score(self) -> float:
        return self.relevance * self.entailed + (1 - self.relevance) * (1 - self.contradicted)

    @property
    def active(self) -> bool:
        return self.relevance >= 0.5


class APCResult(BaseModel):
    query: str
    response: str
    statements: list[StatementScore]

    @property
    def total(self) -> float:
        return float(sum(s.score for s in self.statements))

    @property
    def neutral_baseline(self) -> float:
        """APC of a reply neutral to every statement: Σ (1 − P_g)."""
        return float(sum(1 - s.relevance for s in self.statements))

    @property
    def delta(self) -> float:
        """ΔAPC against the all-neutral reference reply (see the module notes)."""
        return self.total - self.neutral_baseline


@dataclass(frozen=True)
class Turn:
    """The user turn a reply answers, with the earlier conversation rendered as context."""

    query: str
    context: str = ""


def turn_of(history: Sequence[Message | dict] | str, character: str, user: str = DEFAULT_USER) -> Turn:
    """A query string, or a conversation ending with the user's turn, as a `Turn`."""
    if isinstance(history, str):
        return Turn(history)
    messages = [m for m in as_messages(history) if m.role != "system"]
    if not messages or messages[-1].role != "user":
        raise RolecraftError("a reply can only be scored against a conversation that ends with the user's turn",
                             "end the history with the user message the reply answers")
    speaker = {"user": user, "assistant": character}
    context = "\n".join(f"{speaker[m.role]}: {m.content}" for m in messages[:-1])
    return Turn(messages[-1].content, context)


class APCScorer:
    """Scores replies against a character's persona statements."""

    def __init__(
        self,
        character: str,
        statements: Sequence[str],
        relevance: Discriminator,
        nli: Discriminator,
        prune_below: float | None = None,
        user: str = DEFAULT_USER,
    ):
        if relevance.kind != "relevance" or nli.kind != "nli":
            raise RolecraftError(
                f"expected a relevance and an NLI discriminator, got {relevance.kind} and {nli.kind}",
                "pass the relevance discriminator first, then the NLI one",
            )
        if not statements:
            raise RolecraftError(f"{character} has no persona statements to score against", "run `rolecraft statements` first")
        self.character = character
        self.statements = list(statements)
        self.relevance = relevance
        self.nli = nli
        self.prune_below = prune_below
        self.user = user

    def relevance_matrix(self, turns: Sequence[Turn]) -> np.ndarray:
        """P_g for every (turn, statement): shape (len(turns), len(statements))."""
        items = [Item(self.character, s, t.query, context=t.context) for t in turns for s in self.statements]
        return self.relevance.predict(items)[:, 1].reshape(len(turns), len(self.statements))

    def score(
        self, queries: Sequence[str | Sequence[Message | dict]], responses: Sequence[Sequence[str]]
    ) -> list[list[APCResult]]:
        """APC of each reply: `responses[i]` are the candidate replies to `queries[i]` (a query string,
        or a conversation ending with the user turn). Returns results in the same nesting."""
        if len(queries) != len(responses):
            raise ValueError("one list of responses per query")
        turns = [turn_of(q, self.character, self.user) for q in queries]
        relevance = self.relevance_matrix(turns)
        triples = [
            (qi, ri, si)
            for qi, replies in enumerate(responses)
            for ri in range(len(replies))
            for si in range(len(self.statements))
            if self.prune_below is None or relevance[qi, si] >= self.prune_below
        ]
        items = [
            Item(self.character, self.statements[si], turns[qi].query, responses[qi][ri], turns[qi].context)
            for qi, ri, si in triples
        ]
        probs = self.nli.predict(items) if items else np.zeros((0, 3), dtype=np.float32)
        nli = {key: p for key, p in zip(triples, probs)}
        neutral = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        results: list[list[APCResult]] = []
        for qi, replies in enumerate(responses):
            row = []
            for ri, reply in enumerate(replies):
                scores = []
                for si, statement in enumerate(self.statements):
                    p = nli.get((qi, ri, si), neutral)
                    scores.append(
                        StatementScore(
                            statement=statement,
                            relevance=float(relevance[qi, si]),
                            contradicted=float(p[0]),
                            neutral=float(p[1]),
                            entailed=float(p[2]),
                            pruned=(qi, ri, si) not in nli,
                        )
                    )
                row.append(APCResult(query=turns[qi].query, response=reply, statements=scores))
            results.append(row)
        return results

    def score_one(self, query: str | Sequence[Message | dict], response: str) -> APCResult:
        return self.score([query], [[response]])[0][0]

    def score_conversation(self, conversation: Sequence[Message | dict]) -> list[APCResult]:
        """Every assistant turn, scored given the conversation before it (in one batched call)."""
        messages = [m for m in as_messages(conversation) if m.role != "system"]
        points = [i for i, m in enumerate(messages) if m.role == "assistant" and i and messages[i - 1].role == "user"]
        if not points:
            return []
        results = self.score([messages[:i] for i in points], [[messages[i].content] for i in points])
        return [r[0] for r in results]


def workspace_scorer(workspace: Workspace) -> APCScorer:
    """The scorer a workspace's outputs define: its character's statements (extracted ones included)
    and its trained discriminators. Every consumer (DPO pairs, evaluation) scores with this one."""
    relevance, nli = workspace_discriminators(workspace)
    character = workspace.character()
    return APCScorer(character.name, character.statements or character.facts(), relevance, nli)
