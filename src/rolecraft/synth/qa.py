"""Question-answer rows per statement: Ditto's reading comprehension, made robust.

The teacher answers each query in the character's voice with the statement in view; the row the
student trains on keeps only the question and the answer, so the fact must end up in the weights.
An answer is kept only where it verifies (it says the statement's key, in the first person, adds no
name or number the profile lacks, does not just repeat the question); the teacher is asked
`candidates` times at rising seeds, and where none verifies, the statement's own first-person form
(constructed from the profile's words) is the answer.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.formats.apc import StatementQueries
from rolecraft.formats.facts import Fact, QARow
from rolecraft.language import for_character
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_texts
from rolecraft.synth.queries import QueriesStep
from rolecraft.synth.statements import StatementsStep, name_forms
from rolecraft.synth.verify import answer_problem


class QASettings(BaseModel):
    candidates: int = Field(2, ge=0, le=8)  # teacher answers tried per question (0: constructed answers only)
    temperature: float = 0.7
    max_tokens: int = Field(64, ge=8)
    seed: int = 0


def answer_prompt(character: Character, fact: Fact, question: str) -> list[Message]:
    name = character.name
    system = (
        f"You are {character.full_name}. A fact about you: {fact.statement}\n\n"
        f"Answer as {name}, in the first person (I, my, me), in one or two short sentences, and say the fact "
        f"plainly. Never call yourself {name}; never add names, places or numbers the fact does not give."
    )
    return [Message(role="system", content=system), Message(role="user", content=question)]


async def answer_queries(
    character: Character, facts: list[Fact], queries: list[StatementQueries], teacher: Batched, settings: QASettings
) -> tuple[list[QARow], Rejections]:
    by_statement = {f.statement: f for f in facts}
    asked = [(by_statement[row.statement], q) for row in queries if row.statement in by_statement for q in row.queries]
    names = name_forms(character)
    allowed = for_character(character).vocabulary(character.profile_text()) | {n.lower() for n in names}
    answers: list[str | None] = [None] * len(asked)
    rejections = Rejections()
    for attempt in range(settings.candidates):
        open_ = [i for i, a in enumerate(answers) if a is None]
        if not open_:
            break
        params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed + attempt)
        prompts = [answer_prompt(character, asked[i][0], asked[i][1]) for i in open_]
        for i, completion in zip(open_, await generate_texts(teacher, prompts, params, f"answers ({attempt + 1})")):
            fact, question = asked[i]
            text = " ".join(completion.text.split())
            problem = answer_problem(text, question, fact.keys, names, allowed)
            if problem:
                rejections.reject(problem)
            else:
                answers[i] = text
    rows = [
        QARow(id=f"qa{i:04d}", kind="fact", source=fact.id, question=question, answer=answer or fact.answer,
              origin="teacher" if answer else "constructed")
        for i, ((fact, question), answer) in enumerate(zip(asked, answers))
    ]
    return rows, rejections


class QAStep(Step):
    """Writes `qa.jsonl`: one training row per (statement, query)."""

    name = "qa"
    record = QARow
    reads = (StatementsStep, QueriesStep)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        rows, rejections = await answer_queries(ctx.character(), ctx.read(StatementsStep), ctx.read(QueriesStep),
                                                ctx.model("teacher"), self.settings)
        return Output(rows, rejections, {"teacher": sum(r.origin == "teacher" for r in rows),
                                         "constructed": sum(r.origin == "constructed" for r in rows)})
