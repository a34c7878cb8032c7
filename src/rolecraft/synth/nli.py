"""NLI data for the NLI discriminator (APC step 4), written and labelled by the teacher.

For each (statement, own query) the teacher writes three responses the statement entails, is neutral
to, and contradicts; every response is then relabelled by the teacher (the written intent is not
trusted), plus a few cross pairs: the statement against another item's response (mostly neutral).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from rolecraft.faithfulness.questions import SYSTEM, nli_question
from rolecraft.formats.apc import NLI_LABELS, NLILabelRecord, NLIRecord, StatementQueries, ThreeResponses
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_rows
from rolecraft.synth.queries import MIN_WORDS, QueriesStep
from rolecraft.synth.relevance import FaithfulnessDataSettings, answer_label


class NLIAnswer(BaseModel):
    label: Literal["entailed", "neutral", "contradicted"]


class ResponseTriple(BaseModel):
    """What the teacher writes per (statement, query): shared traits first, as the reference asks."""

    common_traits: str
    entailed: str
    neutral: str
    contradicted: str


def response_prompt(character: str, statement: str, query: str) -> list[Message]:
    return [
        Message(role="system", content=SYSTEM),
        Message(
            role="user",
            content=(
                f"Character: {character}\n\nPersona statement: {statement}\n\nUser utterance: {query}\n\n"
                f"Write three short replies {character} might give to this utterance, in character:\n"
                "- common_traits: what all three replies share whether right or wrong (tone, length, topic);\n"
                "- entailed: a reply that correctly follows the persona statement;\n"
                "- neutral: a reply that may be right but lacks the information in the statement;\n"
                "- contradicted: a reply that is partly right but contradicts the statement somewhere.\n"
                'Answer as JSON: {"common_traits": "...", "entailed": "...", "neutral": "...", "contradicted": "..."}'
            ),
        ),
    ]


async def write_nli_responses(
    character: str, queries: Sequence[StatementQueries], teacher: Batched, settings: FaithfulnessDataSettings
) -> tuple[list[NLIRecord], Rejections]:
    pairs = [(row.statement, q) for row in queries for q in row.queries]
    prompts = [response_prompt(character, s, q) for s, q in pairs]
    params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)
    results = await generate_rows(teacher, prompts, ResponseTriple, params, "NLI responses")
    rejections = Rejections()
    records: list[NLIRecord] = []
    for (statement, query), result in zip(pairs, results):
        if not result.ok:
            rejections.reject(f"responses_{result.error}")
            continue
        texts = {label: " ".join(getattr(result.value, label).split()) for label in NLI_LABELS}
        if not all(texts.values()):
            rejections.reject("empty_response")
        elif len(set(texts.values())) < 3:
            rejections.reject("identical_responses")
        elif any(len(t.split()) < MIN_WORDS for t in texts.values()):
            rejections.reject("too_short")
        else:
            records.append(NLIRecord(character=character, statement=statement, query=query, nli=ThreeResponses(**texts)))
    return records, rejections


async def relabel_nli(
    character: str, items: Sequence[NLIRecord], teacher: Batched, settings: FaithfulnessDataSettings
) -> tuple[list[NLILabelRecord], Rejections, float]:
    """Relabel every written response, plus cross pairs. Returns rows, rejections and how often the
    teacher's relabel agreed with the label it wrote the response for (a quality signal)."""
    rng = random.Random(settings.seed)
    triples: list[tuple[str, str, str, str | None]] = []  # statement, query, response, intended label
    for item in items:
        triples += [(item.statement, item.query, getattr(item.nli, label), label) for label in ("entailed", "neutral", "contradicted")]
        others = [o for o in items if o is not item]
        for other in rng.sample(others, min(len(others), settings.cross_nli)):
            triples.append((item.statement, other.query, getattr(other.nli, rng.choice(NLI_LABELS)), None))
    prompts = [nli_question(character, s, q, r) for s, q, r, _ in triples]
    results = await generate_rows(teacher, prompts, NLIAnswer, settings.judging(), "NLI labels")
    rejections = Rejections()
    records: list[NLILabelRecord] = []
    agreed = written = 0
    for (statement, query, response, intended), result in zip(triples, results):
        label = answer_label(result, "label", NLI_LABELS)
        if label is None:
            rejections.reject(f"nli_{result.error or 'unparsed'}")
            continue
        records.append(NLILabelRecord(character=character, statement=statement, query=query, response=response, label=label))
        if intended:
            written += 1
            agreed += label == intended
    return records, rejections, (agreed / written if written else 0.0)


class NLIResponsesStep(Step):
    """Writes `nli.jsonl`: the three written responses per (statement, query)."""

    name = "nli"
    record = NLIRecord
    reads = (QueriesStep,)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        records, rejections = await write_nli_responses(ctx.character().name, ctx.read(QueriesStep), ctx.model("teacher"), self.settings)
        return Output(records, rejections)


class NLILabelsStep(Step):
    """Writes `nli_labels.jsonl`: every response relabelled, the NLI discriminator's training rows."""

    name = "nli_labels"
    record = NLILabelRecord
    reads = (NLIResponsesStep,)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        items = ctx.read(NLIResponsesStep)
        records, rejections, agreement = await relabel_nli(ctx.character().name, items, ctx.model("teacher"), self.settings)
        return Output(records, rejections, {"relabel_agreement": round(agreement, 3)})
