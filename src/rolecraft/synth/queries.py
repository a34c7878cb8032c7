"""Queries per statement (APC step 2): things a user might say that need the statement to answer well.

They are the positive relevance examples, the prompts of the NLI data, and later the questions the
agent is sampled on for APC-based DPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pydantic import BaseModel, Field, create_model

from rolecraft.formats.apc import StatementQueries, statements_of
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_rows
from rolecraft.synth.statements import StatementsStep

SYSTEM = "You help build AI characters. You write things human users might say to an AI character."


class QuerySettings(BaseModel):
    per_statement: int = Field(3, ge=1, le=10)
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
    character: str, statements: Sequence[str], teacher: Batched, settings: QuerySettings = QuerySettings()
) -> tuple[list[StatementQueries], Rejections]:
    prompts = [query_prompt(character, s, settings.per_statement) for s in statements]
    params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)
    results = await generate_rows(teacher, prompts, query_list(settings.per_statement), params, "queries")
    rejections = Rejections()
    rows: list[StatementQueries] = []
    for statement, result in zip(statements, results):
        if not result.ok:
            rejections.reject(result.error or "invalid")
            continue
        written = list(dict.fromkeys(" ".join(q.split()) for q in result.value.queries if q.strip()))
        queries = [q for q in written if len(q.split()) >= MIN_WORDS]
        for _ in range(len(written) - len(queries)):
            rejections.reject("too_short")
        if len(queries) < settings.per_statement:
            rejections.reject("fewer_queries_than_asked")
        if queries:
            rows.append(StatementQueries(statement=statement, queries=queries[: settings.per_statement]))
        else:
            rejections.reject("no_queries")
    return rows, rejections


class QueriesStep(Step):
    """Writes `statement_queries.jsonl`."""

    name = "statement_queries"
    record = StatementQueries
    reads = (StatementsStep,)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        statements = statements_of(ctx.read(StatementsStep))
        rows, rejections = await write_queries(ctx.character().name, statements, ctx.model("teacher"), self.settings)
        return Output(rows, rejections)
