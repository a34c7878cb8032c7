"""Training data for the two discriminators (APC steps 3 and 4), written and labelled by the teacher.

Relevance: every (statement, own query) pair is relevant; for each statement, queries of a few other
statements are shown to the teacher, which labels them yes / no (cross pairs).
NLI: for each (statement, own query) the teacher writes three responses the statement entails, is
neutral to, and contradicts; every response is then relabelled by the teacher (the written intent is
not trusted), plus a few cross pairs: the statement against another item's response (mostly neutral).
Cross pairs are drawn with a seeded generator, so a rerun asks the same questions and hits the cache.

The two labelling questions are also what the LLM-judge discriminator asks (faithfulness.discriminators).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from rolecraft.llm import Message, SamplingParams, run_sync
from rolecraft.llm.cache import CachedModel
from rolecraft.llm.structured import Structured
from rolecraft.synth.apc_records import (
    NLI_LABELS,
    NLILabelRecord,
    NLIRecord,
    RelevanceRecord,
    StatementQueries,
    ThreeResponses,
    save_stage,
)
from rolecraft.synth.queries import MIN_WORDS
from rolecraft.synth.runner import Rejections, generate_rows
from rolecraft.workspace import Workspace

SYSTEM = "You help build AI characters by judging and writing their replies."


class FaithfulnessDataSettings(BaseModel):
    cross_relevance: int = Field(5, ge=0)  # other statements' queries judged per statement (reference: 5)
    cross_nli: int = Field(3, ge=0)  # other items' responses judged per NLI item (reference: 3)
    temperature: float = 1.0  # writing responses; judging is greedy
    max_tokens: int = Field(512, ge=32)
    seed: int = 0

    @classmethod
    def tiny(cls) -> FaithfulnessDataSettings:
        return cls(cross_relevance=2, cross_nli=1, max_tokens=256)


# -- the two questions (shared with the LLM-judge discriminator) ------------------------------------


def relevance_question(character: str, statement: str, query: str) -> list[Message]:
    return [
        Message(role="system", content=SYSTEM),
        Message(
            role="user",
            content=(
                f"Character: {character}\n\nPersona statement: {statement}\n\nUser utterance: {query}\n\n"
                f"Should a reply to this utterance include the information in the persona statement? "
                f'Answer only "yes" or "no".'
            ),
        ),
    ]


def nli_question(character: str, statement: str, query: str, response: str) -> list[Message]:
    return [
        Message(role="system", content=SYSTEM),
        Message(
            role="user",
            content=(
                "entailed: the response correctly follows the information in the persona statement;\n"
                "neutral: the response may be right but lacks the information in the persona statement;\n"
                "contradicted: the response contradicts the persona statement, at least in part.\n\n"
                f"Character: {character}\n\nPersona statement: {statement}\n\nUser utterance: {query}\n\n"
                f"Response: {response}\n\n"
                'Is the persona statement entailed, neutral or contradicted by the response? Answer only '
                '"entailed", "neutral" or "contradicted".'
            ),
        ),
    ]


class RelevanceAnswer(BaseModel):
    relevant: Literal["yes", "no"]


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


def answer_label(result: Structured, field: str, labels: Sequence[str]) -> str | None:
    """The label from a structured answer, or from a bare-word answer ("Yes.", "Contradicted")."""
    if result.ok:
        return getattr(result.value, field)
    word = result.completion.text.strip().strip(".\"'`").lower()
    return next((label for label in labels if word.startswith(label[:6])), None)


# -- the steps ---------------------------------------------------------------------------------------


async def label_relevance(
    character: str, queries: Sequence[StatementQueries], teacher: CachedModel, settings: FaithfulnessDataSettings
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
    results = await generate_rows(teacher, prompts, RelevanceAnswer, judge_params(settings), "relevance labels")
    rejections = Rejections()
    for (statement, query), result in zip(cross, results):
        label = answer_label(result, "relevant", ("yes", "no"))
        if label is None:
            rejections.reject(f"relevance_{result.error or 'unparsed'}")
        else:
            records.append(RelevanceRecord(character=character, statement=statement, query=query, relevant=label))
    return records, rejections


async def write_nli_responses(
    character: str, queries: Sequence[StatementQueries], teacher: CachedModel, settings: FaithfulnessDataSettings
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
    character: str, items: Sequence[NLIRecord], teacher: CachedModel, settings: FaithfulnessDataSettings
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
    results = await generate_rows(teacher, prompts, NLIAnswer, judge_params(settings), "NLI labels")
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


def judge_params(settings: FaithfulnessDataSettings) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=24, seed=settings.seed)


def faithfulness_data_stage(
    workspace: Workspace,
    queries: Sequence[StatementQueries],
    teacher: CachedModel,
    settings: FaithfulnessDataSettings = FaithfulnessDataSettings(),
) -> tuple[list[RelevanceRecord], list[NLILabelRecord]]:
    """Writes `relevance.jsonl`, `nli.jsonl` (written responses) and `nli_labels.jsonl` (training items)."""
    character = workspace.character().name

    async def run() -> tuple[list[RelevanceRecord], list[NLILabelRecord]]:
        start = teacher.usage.as_dict()
        relevance, rejected = await label_relevance(character, queries, teacher, settings)
        save_stage(workspace, "relevance", relevance, rejected, teacher, settings, start)
        start = teacher.usage.as_dict()
        written, rejected = await write_nli_responses(character, queries, teacher, settings)
        save_stage(workspace, "nli", written, rejected, teacher, settings, start)
        start = teacher.usage.as_dict()
        labelled, rejected, agreement = await relabel_nli(character, written, teacher, settings)
        save_stage(workspace, "nli_labels", labelled, rejected, teacher, settings, start, relabel_agreement=round(agreement, 3))
        return relevance, labelled

    return run_sync(run())
