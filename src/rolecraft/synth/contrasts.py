"""Discriminator training rows built by rule from the character's own facts, in the spirit of FactCC:
labels that are right by construction, so the discriminators train on every build, whatever the
teacher writes.

NLI (statement, question, reply → label):
- entailed: the QA answers of the statement (each says its key);
- contradicted: the same answers with the key swapped for another fact's key of the same kind (a
  name for a name, a number for a number), or a number changed;
- neutral: the answers of a fact sharing no key with the statement, and a deflection.
Relevance (statement, question → yes/no): a statement's own questions are relevant; another
statement's questions (sharing no key) are not.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord
from rolecraft.formats.facts import Fact, QARow
from rolecraft.step import Context, Output, Step
from rolecraft.synth.qa import QAStep
from rolecraft.synth.statements import StatementsStep

DEFLECTION = "I would rather not talk about that today."


class ContrastSettings(BaseModel):
    per_answer: int = Field(1, ge=1, le=4)  # contradicted and neutral rows per entailed one
    cross_relevance: int = Field(3, ge=0)  # other statements' questions marked irrelevant, per statement
    seed: int = 0


def _kind(key: str) -> str:
    return "number" if re.fullmatch(r"[\d,.]+", key) else "name" if key[:1].isupper() else "word"


def swapped(answer: str, key: str, others: Sequence[str], rng: random.Random) -> str | None:
    """The answer with its key replaced by another of the same kind (or a changed number)."""
    same = [o for o in others if _kind(o) == _kind(key) and o.lower() != key.lower()]
    if same:
        return answer.replace(key, rng.choice(same))
    if _kind(key) == "number" and key.isdigit():
        return answer.replace(key, str(int(key) + rng.choice([-3, -2, -1, 1, 2, 3, 10])))
    return None


def nli_rows(character: str, facts: Sequence[Fact], qa: Sequence[QARow], settings: ContrastSettings) -> list[NLILabelRecord]:
    rng = random.Random(settings.seed)
    by_id = {f.id: f for f in facts}
    all_keys = [k for f in facts if not f.content_keys for k in f.keys]
    answers = [r for r in qa if r.kind == "fact" and r.source in by_id]
    rows = []
    for row in answers:
        fact = by_id[row.source]

        def add(reply: str, label: str) -> None:
            rows.append(NLILabelRecord(character=character, statement=fact.statement, query=row.question,
                                       response=reply, label=label))

        add(row.answer, "entailed")
        keys = [k for k in fact.keys if k in row.answer] if not fact.content_keys else []
        for _ in range(settings.per_answer):
            if keys and (wrong := swapped(row.answer, rng.choice(keys), all_keys, rng)) and wrong != row.answer:
                add(wrong, "contradicted")
            unrelated = [a for a in answers if a.source != fact.id and not set(by_id[a.source].keys) & set(fact.keys)]
            add(rng.choice(unrelated).answer if unrelated and rng.random() < 0.7 else DEFLECTION, "neutral")
    return rows


def relevance_rows(character: str, facts: Sequence[Fact], qa: Sequence[QARow], settings: ContrastSettings) -> list[RelevanceRecord]:
    rng = random.Random(settings.seed)
    by_fact: dict[str, list[str]] = {}
    for r in qa:
        if r.kind == "fact":
            by_fact.setdefault(r.source, []).append(r.question)
    rows = []
    for fact in facts:
        rows += [RelevanceRecord(character=character, statement=fact.statement, query=q, relevant="yes")
                 for q in by_fact.get(fact.id, [])]
        others = [q for f in facts if f.id != fact.id and not set(f.keys) & set(fact.keys) for q in by_fact.get(f.id, [])]
        rows += [RelevanceRecord(character=character, statement=fact.statement, query=q, relevant="no")
                 for q in rng.sample(others, min(len(others), settings.cross_relevance))]
    return rows


class NLIContrastsStep(Step):
    """Writes `nli_contrasts.jsonl`: NLI rows labelled by construction."""

    name = "nli_contrasts"
    record = NLILabelRecord
    reads = (StatementsStep, QAStep)

    async def run(self, ctx: Context) -> Output:
        rows = nli_rows(ctx.character().name, ctx.read(StatementsStep), ctx.read(QAStep), self.settings)
        return Output(rows, info={label: sum(r.label == label for r in rows) for label in ("entailed", "neutral", "contradicted")})


class RelevanceContrastsStep(Step):
    """Writes `relevance_contrasts.jsonl`: relevance rows labelled by construction."""

    name = "relevance_contrasts"
    record = RelevanceRecord
    reads = (StatementsStep, QAStep)

    async def run(self, ctx: Context) -> Output:
        rows = relevance_rows(ctx.character().name, ctx.read(StatementsStep), ctx.read(QAStep), self.settings)
        return Output(rows, info={"yes": sum(r.relevant == "yes" for r in rows), "no": sum(r.relevant == "no" for r in rows)})
