"""Persona statements (APC step 1): facts, one sentence each, that name the character.

Two sources, the same record (`formats.facts.Fact`: the statement, its key spans, the statement said
by the character):

- `profile` (default): faithful by construction. Every sentence of every passage (profile paragraph,
  enabled lorebook entry) about the character becomes a statement, a leading pronoun resolved to the
  character's name (`language`). Nothing a teacher invents can enter.
- `teacher` (APC's protocol): the teacher lists the statements each passage supports. Each must name
  the character (a leading bare He/She/His/Her gets the name put in its place) and may use no name or
  number the passage does not (a teacher that invents one is caught here); the rest is rejected and
  counted, like duplicates and over-long sentences.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, create_model

from rolecraft.cards.plain import plain_lines
from rolecraft.character import DEFAULT_USER, Character
from rolecraft.formats.facts import Fact
from rolecraft.language import for_character
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_rows
from rolecraft.synth.verify import hallucinated
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
    """Where statements come from, and the teacher's settings when it writes them (the reference
    decodes greedily)."""

    source: Literal["profile", "teacher"] = "profile"
    max_statements: int = Field(20, ge=1, le=40)  # per passage, from a teacher
    content_keys: int = Field(2, ge=1, le=5)  # keys of a statement without names or numbers: its rarest words
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
    """Profile paragraphs, then enabled lore entries, in plain profile lines (a card's W++, PList and
    example dialogues rewritten): each becomes one teacher request."""
    texts = (plain_lines(text, character.name, DEFAULT_USER) for text in character.knowledge(DEFAULT_USER))
    return list(dict.fromkeys(t for t in texts if t.strip()))


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
) -> tuple[list[tuple[str, str]], Rejections]:
    """(passage, statement) the teacher found in every passage of `character`, in passage order,
    duplicates removed, nothing the passage does not name."""
    texts = passages(character)
    prompts = [statement_prompt(character, p, settings.max_statements) for p in texts]
    params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed)
    results = await generate_rows(teacher, prompts, statement_list(settings.max_statements), params, "statements")
    lang = for_character(character)
    rejections = Rejections()
    names = name_forms(character)
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for passage, result in zip(texts, results):
        if not result.ok:
            rejections.reject(f"passage_{result.error}")
            continue
        kept = 0
        allowed = lang.vocabulary(passage) | {n.lower() for n in names} | set(_words(passage))
        for raw in result.value.statements[: settings.max_statements]:
            statement, reason = clean_statement(raw, character, names)
            if reason:
                rejections.reject(reason)
            elif statement.lower() in seen:
                rejections.reject("duplicate")
            elif hallucinated(statement, allowed):
                rejections.reject("invented_name_or_number")
            else:
                seen.add(statement.lower())
                found.append((passage, statement))
                kept += 1
        if not kept:
            rejections.reject("passage_without_statements")
    return found, rejections


def construct_statements(character: Character) -> list[tuple[str, str, list[str]]]:
    """(passage, statement, key spans) for every sentence of the profile and lore about the character."""
    lang = for_character(character)
    names = name_forms(character)
    out, seen = [], set()
    for passage in passages(character):
        for statement, keys in lang.statements(passage, character.name, names):
            if statement.lower() not in seen and any(re.search(rf"\b{re.escape(n)}\b", statement) for n in names):
                seen.add(statement.lower())
                out.append((passage, statement, keys))
    return out


def facts(character: Character, found: Sequence[tuple[str, str, list[str] | None]], content_keys: int) -> list[Fact]:
    """Statements as Facts: keys (the statement's names and numbers, else its rarest content words)
    and the statement in the character's own voice."""
    lang = for_character(character)
    names = name_forms(character)
    # The surname alone is not the character: "her father Tobias Voss" must not become "Tobias I".
    spoken = list(dict.fromkeys([character.full_name, character.name, character.full_name.split()[0]]))
    documents = [set(_words(s)) for _, s, _ in found]
    frequency = Counter(w for d in documents for w in d)
    out = []
    for i, (passage, statement, keys) in enumerate(found):
        keys = keys if keys is not None else lang.key_spans(statement, names)
        rare = not keys
        if rare:  # no name or number: the words this statement alone (or nearly) uses
            own = {n.lower() for n in " ".join(names).split()}
            candidates = [w for w in dict.fromkeys(_words(statement)) if len(w) >= 5 and w not in own and w not in lang.FUNCTION_WORDS]
            candidates.sort(key=lambda w: -math.log(len(found) / frequency[w]))
            keys = candidates[:content_keys]
        out.append(Fact(id=f"f{i:03d}", character=character.name, passage=passage, statement=statement, keys=keys,
                        answer=lang.first_person(statement, spoken), origin="profile", content_keys=rare))
    return out


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[^\W\d_][\w'-]*", text)]


class StatementsStep(Step):
    """Writes `statements.jsonl` (Facts, which every APC step reads as its statement rows); the workspace
    adds the statements to the character's own whenever it hands the character out."""

    name = STATEMENTS
    record = Fact
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        character = ctx.workspace.stored_character()
        if self.settings.source == "profile":
            return Output(facts(character, construct_statements(character), self.settings.content_keys))
        found, rejections = await extract_statements(character, ctx.model("teacher"), self.settings)
        teacher = facts(character, [(p, s, None) for p, s in found], self.settings.content_keys)
        return Output([f.model_copy(update={"origin": "teacher"}) for f in teacher], rejections)
