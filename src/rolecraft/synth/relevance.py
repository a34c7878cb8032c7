"""Relevance data for the relevance discriminator (APC step 3), labelled by the teacher.

Every (statement, own query) pair is relevant; for each statement, queries of a few other statements
are shown to the teacher, which labels them yes / no (cross pairs). Cross pairs are drawn with a
seeded generator, so a rerun asks the same questions and hits the cache.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from rolecraft.faithfulness.questions import relevance_question
from rolecraft.formats.apc import RelevanceRecord, StatementQueries
from rolecraft.llm import SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.llm.structured import Structured
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_rows
from rolecraft.synth.queries import QueriesStep


class FaithfulnessDataSettings(BaseModel):
    """Settings of the relevance and NLI data steps."""

    cross_relevance: int = Field(5, ge=0)  # other statements' queries judged per statement (reference: 5)
    cross_nli: int = Field(3, ge=0)  # other items' responses judged per NLI item (reference: 3)
    temperature: float = 1.0  # writing responses; judging is greedy
    max_tokens: int = Field(512, ge=32)
    seed: int = 0

    @classmethod
    def tiny(cls) -> FaithfulnessDataSettings:
        return cls(cross_relevance=2, cross_nli=1, max_tokens=256)

    def judging(self) -> SamplingParams:
        return SamplingParams(temperature=0.0, max_tokens=24, seed=self.seed)


class RelevanceAnswer(BaseModel):
    relevant: Literal["yes", "no"]


def answer_label(result: Structured, field: str, labels: Sequence[str]) -> str | None:
    """The label from a structured answer, or from a bare-word answer ("Yes.", "Contradicted")."""
    if result.ok:
        return getattr(result.value, field)
    word = result.completion.text.strip().strip(".\"'`").lower()
    return next((label for label in labels if word.startswith(label[:6])), None)


async def label_relevance(
    character: str, queries: Sequence[StatementQueries], teacher: Batched, settings: FaithfulnessDataSettings
) -> tuple[list[RelevanceRecord], Rejections]:
    rng = random.Random(settings.seed)
    records = [
        RelevanceRecord(character=character, statement=row.statement, query=q, relevant="yes")
        for row in queries
        for q in row.queries
    ]
    cross: list[tuple[str, str]] = []
    for row in queries:
        others = [o for o in queries if o.statement != row.statement]
        for other in rng.sample(others, min(len(others), settings.cross_relevance)):
            cross.append((row.statement, rng.choice(other.queries)))
    prompts = [relevance_question(character, s, q) for s, q in cross]
    results = await generate_rows(teacher, prompts, RelevanceAnswer, settings.judging(), "relevance labels")
    rejections = Rejections()
    for (statement, query), result in zip(cross, results):
        label = answer_label(result, "relevant", ("yes", "no"))
        if label is None:
            rejections.reject(f"relevance_{result.error or 'unparsed'}")
        else:
            records.append(RelevanceRecord(character=character, statement=statement, query=query, relevant=label))
    return records, rejections


class RelevanceStep(Step):
    """Writes `relevance.jsonl`: the relevance discriminator's training rows."""

    name = "relevance"
    record = RelevanceRecord
    reads = (QueriesStep,)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        records, rejections = await label_relevance(ctx.character().name, ctx.read(QueriesStep), ctx.model("teacher"), self.settings)
        return Output(records, rejections)
