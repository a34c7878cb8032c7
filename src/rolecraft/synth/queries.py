"""Queries per statement (APC step 2): things a user might say that need the statement to answer well.

Two sources: questions built from the statement itself (`language`: the first-person statement asked
back with its key replaced by a question word, "You have a grey cat named what?"), which are right by
construction, and the teacher's, kept where they verify (a question, not giving its answer away). Any
that paraphrases a held-out probe is dropped, so no probe is ever trained on. The queries are the
questions of the QA training rows, the positive relevance examples, the prompts of the NLI data, and
the questions the agent is sampled on for APC-based DPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pydantic import BaseModel, Field, create_model

from rolecraft.formats.apc import StatementQueries
from rolecraft.formats.facts import Fact
from rolecraft.language import for_character
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_rows
from rolecraft.synth.probes import ProbesStep, fact_questions
from rolecraft.synth.statements import StatementsStep
from rolecraft.synth.verify import NearDuplicates, question_problem

SYSTEM = "You help build AI characters. You write things human users might say to an AI character."


class QuerySettings(BaseModel):
    per_statement: int = Field(3, ge=1, le=10)  # asked of the teacher, kept where they verify
    patterns: bool = True  # questions built from the statement
    teacher: bool = True
    # Embedding similarity above which a query counts as the probe itself, not another phrasing of it
    # ("Tell me who your closest friend is." stays; "Who's your closest friend?" goes).
    near_probe: float = Field(0.95, gt=0.0, le=1.0)
    temperature: float = 1.0  # the reference samples queries for diversity
    max_tokens: int = Field(256, ge=16)
    seed: int = 0

    @classmethod
    def tiny(cls) -> QuerySettings:
        return cls(per_statement=2, max_tokens=128)


@lru_cache
def query_list(n: int) -> type[BaseModel]:
    return create_model("QueryList", queries=(list[str], Field(json_schema_extra={"maxItems": n})))


MIN_WORDS = 3  # a constrained small teacher can fill the list with "]," or "Quantify": nothing a user says


def query_prompt(character: str, statement: str, n: int) -> list[Message]:
    return [
        Message(role="system", content=SYSTEM),
        Message(
            role="user",
            content=(
                f"Persona statement: {statement}\n\n"
                f"Write {n} diverse, concise utterances a human user might say to an AI role-playing as "
                f"{character} that can only be answered well with the information in this statement. Speak to "
                f'the AI as {character}. Answer as JSON: {{"queries": [...]}}'
            ),
        ),
    ]


async def write_queries(
    character: str, facts: Sequence[Fact], teacher: Batched, settings: QuerySettings = QuerySettings()
) -> tuple[list[StatementQueries], Rejections]:
    """The teacher's queries per statement, each a question that does not give away the statement's keys."""
    statements = [f.statement for f in facts]
    prompts = [query_prompt(character, s, settings.per_statement) for s in statements]
    params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)
    results = await generate_rows(teacher, prompts, query_list(settings.per_statement), params, "queries")
    rejections = Rejections()
    rows: list[StatementQueries] = []
    for fact, statement, result in zip(facts, statements, results):
        if not result.ok:
            rejections.reject(result.error or "invalid")
            continue
        written = list(dict.fromkeys(" ".join(q.split()) for q in result.value.queries if q.strip()))
        queries = []
        for q in written:
            problem = "too_short" if len(q.split()) < MIN_WORDS else question_problem(q, fact.keys, fact.statement)
            if problem:
                rejections.reject(problem)
            else:
                queries.append(q)
        if len(queries) < settings.per_statement:
            rejections.reject("fewer_queries_than_asked")
        if queries:
            rows.append(StatementQueries(statement=statement, queries=queries[: settings.per_statement]))
        else:
            rejections.reject("no_queries")
    return rows, rejections


def pattern_queries(facts: Sequence[Fact], lang) -> dict[str, list[str]]:
    """Questions built from each statement: its first-person form asked back with each key replaced
    by a question word, and each held-out probe's question asked as a request ("Tell me the name of
    your grey cat." where the probe asks "What is the name of your grey cat?")."""
    out = {}
    for f in facts:
        echoes = [] if f.content_keys else [q for k in f.keys if (q := lang.echo_question(f.answer, k))]
        requests = [r for q, _ in fact_questions(f, lang) if (r := lang.imperative(q))]
        out[f.statement] = list(dict.fromkeys(echoes + requests))
    return out


def without_probes(rows: list[StatementQueries], probes: Sequence[str], threshold: float,
                   rejections: Rejections) -> list[StatementQueries]:
    """The queries that are not (near-)paraphrases of a held-out probe; those are dropped and counted."""
    asked = [q for row in rows for q in row.queries]
    near = NearDuplicates(threshold).near(asked, list(probes)) if asked and probes else [False] * len(asked)
    flags = iter(near)
    kept = []
    for row in rows:
        queries = [q for q in row.queries if not next(flags)]
        rejections.reject("paraphrases_a_probe", len(row.queries) - len(queries))
        if queries:
            kept.append(row.model_copy(update={"queries": queries}))
    return kept


class QueriesStep(Step):
    """Writes `statement_queries.jsonl`."""

    name = "statement_queries"
    record = StatementQueries
    reads = (StatementsStep, ProbesStep)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        character = ctx.character()
        facts = ctx.read(StatementsStep)
        rejections = Rejections()
        asked = {f.statement: [] for f in facts}
        if self.settings.patterns:
            for statement, queries in pattern_queries(facts, for_character(character)).items():
                asked[statement] += queries
        if self.settings.teacher:
            written, rejections = await write_queries(character.name, facts, ctx.model("teacher"), self.settings)
            for row in written:
                asked[row.statement] += row.queries
        rows = [StatementQueries(statement=s, queries=list(dict.fromkeys(q))) for s, q in asked.items() if q]
        probes = [p.question for p in ctx.read(ProbesStep)]
        return Output(without_probes(rows, probes, self.settings.near_probe, rejections), rejections)
