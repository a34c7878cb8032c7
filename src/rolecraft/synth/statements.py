"""Persona statements (APC step 1): atomic facts, one sentence each, that name the character.

Every profile paragraph and every enabled lorebook entry is one passage; the teacher lists the
statements it supports. A statement must name the character (no "she" or "he" a reader could not
resolve out of context): one that opens with a bare He/She/His/Her gets the name put in its place,
anything else without the name is rejected and counted, like duplicates and over-long sentences.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, Field, create_model

from rolecraft.character import Character
from rolecraft.formats.apc import StatementRecord
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_rows
from rolecraft.workspace import STATEMENTS

MAX_WORDS = 60

SYSTEM = (
    "You help build AI characters. You turn passages about a character into persona statements: "
    "short factual sentences a role-playing AI must stay consistent with."
)

# A worked example in the requested format; its facts are about someone else on purpose.
EXAMPLE_PASSAGE = (
    "Marie Curie (1867-1934) was a Polish-born physicist and chemist who worked in France. She was the "
    "first woman to win a Nobel Prize and the only person to win Nobel Prizes in two sciences."
)
EXAMPLE_OUTPUT = (
    '{"statements": ["Marie Curie was a physicist and chemist, born in Poland in 1867.", '
    '"Marie Curie did her scientific work in France.", '
    '"Marie Curie was the first woman to win a Nobel Prize.", '
    '"Marie Curie won Nobel Prizes in two different sciences."]}'
)


class StatementSettings(BaseModel):
    """Teacher settings for the statements step (the reference uses greedy decoding)."""

    max_statements: int = Field(20, ge=1, le=40)  # per passage
    temperature: float = 0.0
    max_tokens: int = Field(768, ge=16)
    seed: int = 0

    @classmethod
    def tiny(cls) -> StatementSettings:
        return cls(max_statements=4, max_tokens=192)


# Strings stay unbounded in output schemas: outlines compiles a `maxLength` string into an automaton
# that takes minutes to build (132 s for 400 characters); capping the list length is cheap.
@lru_cache
def statement_list(n: int) -> type[BaseModel]:
    """The teacher's answer for one passage. The schema stops constrained decoding after `n` items;
    validation accepts more (a teacher that ignores the schema is cut to `n`, not rejected)."""
    return create_model("StatementList", statements=(list[str], Field(json_schema_extra={"maxItems": n})))


def passages(character: Character) -> list[str]:
    """Profile paragraphs, then enabled lore entries: each becomes one teacher request."""
    return list(dict.fromkeys(character.knowledge()))


def statement_prompt(character: Character, passage: str, max_statements: int) -> list[Message]:
    def ask(name: str, text: str) -> str:
        return (
            f'Passage about "{name}":\n\n{text}\n\n'
            f"List up to {max_statements} important persona statements about {name} for a role-playing AI to "
            f'follow. Each statement is one sentence that contains the name "{name}" (never just "he", "she" '
            f'or "they") and states one fact from the passage. Answer as JSON: {{"statements": [...]}}'
        )

    return [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=ask("Marie Curie", EXAMPLE_PASSAGE)),
        Message(role="assistant", content=EXAMPLE_OUTPUT),
        Message(role="user", content=ask(character.name, passage)),
    ]


def name_forms(character: Character) -> list[str]:
    """Ways a statement may name the character: full name, short name, and each capitalised part."""
    parts = [w for w in re.split(r"[\s,]+", character.full_name) if len(w) >= 3 and w[:1].isupper()]
    return list(dict.fromkeys([character.full_name, character.name, *parts]))


_PRONOUN = re.compile(r"^(She|He|Her|His)\b\s*")


def clean_statement(text: str, character: Character, names: list[str]) -> tuple[str | None, str | None]:
    """(statement, None) when usable, else (None, reason). Repairs a leading bare pronoun."""
    text = " ".join(text.split()).strip(" -•*\"'")
    if not text:
        return None, "empty_statement"
    if len(text.split()) > MAX_WORDS:
        return None, "too_long"
    if not any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text) for n in names):
        pronoun = _PRONOUN.match(text)
        if not pronoun:
            return None, "no_name"
        name = character.name + ("'s" if pronoun.group(1) in ("Her", "His") else "")
        text = f"{name} {text[pronoun.end():]}"
    return (text if text[-1] in ".!?" else text + "."), None


async def extract_statements(
    character: Character, teacher: Batched, settings: StatementSettings = StatementSettings()
) -> tuple[list[StatementRecord], Rejections]:
    """Statements for every passage of `character`, in passage order, duplicates removed."""
    texts = passages(character)
    prompts = [statement_prompt(character, p, settings.max_statements) for p in texts]
    params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)
    results = await generate_rows(teacher, prompts, statement_list(settings.max_statements), params, "statements")
    rejections = Rejections()
    names = name_forms(character)
    records: list[StatementRecord] = []
    seen: set[str] = set()
    for passage, result in zip(texts, results):
        if not result.ok:
            rejections.reject(f"passage_{result.error}")
            continue
        kept = 0
        for raw in result.value.statements[: settings.max_statements]:
            statement, reason = clean_statement(raw, character, names)
            if reason:
                rejections.reject(reason)
            elif statement.lower() in seen:
                rejections.reject("duplicate")
            else:
                seen.add(statement.lower())
                records.append(StatementRecord(character=character.name, passage=passage, statement=statement))
                kept += 1
        if not kept:
            rejections.reject("passage_without_statements")
    return records, rejections


class StatementsStep(Step):
    """Writes `statements.jsonl`; the workspace adds these to the character's own statements whenever it
    hands the character out (`Workspace.character`)."""

    name = STATEMENTS
    record = StatementRecord
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        records, rejections = await extract_statements(ctx.workspace.stored_character(), ctx.model("teacher"), self.settings)
        return Output(records, rejections)
