"""Stage 3: protective experiences — a curious visitor keeps provoking the character about things the
character cannot know (inventions after their time, relatives they never had, ...). The character
stays in character and shows ignorance or confusion, which teaches the student where its knowledge
ends (Character-LLM's defence against character hallucination).

How many: rolecraft's default is about 10 % of the regular experiences; the paper wrote one per profile
paragraph (`per_paragraph`, the paper preset). Per paragraph, round robin, with a random visitor name and a rotating theme. The visitor only asks
and the character only answers, so the schema needs no speaker names and compiles once.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.formats.charllm import target_aliases
from rolecraft.formats.experience import Experience, Turn
from rolecraft.llm import Message
from rolecraft.llm.batching import Batched
from rolecraft.llm.structured import token_limit
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.experiences import ExperiencesStep
from rolecraft.synth.generate import TeacherSettings, generate_rows, generate_texts
from rolecraft.synth.parse import check_script, normalize_roles, parse_script

VISITORS = ["Lily", "Miles", "Nora", "Theo", "Ada", "Felix", "Iris", "Leo", "Maya", "Owen"]
THEMES = [
    "inventions and technology {name} could not know about",
    "events {name} could not know about",
    "relatives, friends or lovers {name} never had",
    "things {name} never did and places {name} never went to",
    "famous people {name} never met",
    "specialist knowledge {name} does not have, such as writing computer programs",
]
SYSTEM = "You are a professional scriptwriter."


class ProtectiveSettings(TeacherSettings):
    fraction: float = Field(0.1, ge=0.0, le=1.0, description="protective scripts per experience (default ~10%)")
    minimum: int = Field(1, ge=1, description="at least this many whenever the fraction is not 0")
    per_paragraph: bool = Field(False, description="one per profile paragraph instead, as the paper (fraction 0: none)")
    exchanges: int = Field(6, ge=2, le=40)
    turn_chars: int = Field(400, ge=40, le=4000)

    @classmethod
    def tiny(cls) -> ProtectiveSettings:
        return cls(minimum=2, exchanges=2, turn_chars=120)

    def count(self, experiences: int, paragraphs: int = 0) -> int:
        """How many to write for `experiences` regular ones and `paragraphs` profile paragraphs (none
        when the fraction is 0)."""
        if self.fraction <= 0:
            return 0
        return paragraphs if self.per_paragraph else max(self.minimum, round(self.fraction * experiences))


def protective_schema(settings: ProtectiveSettings) -> type[BaseModel]:
    n = settings.turn_chars

    class ProtectiveExchange(BaseModel):
        visitor_asks: str = Field(min_length=1, max_length=n)
        character_answers: str = Field(min_length=1, max_length=n)

    class ProtectiveScript(BaseModel):
        background: str = Field(min_length=10, max_length=min(300, 2 * n))
        exchanges: list[ProtectiveExchange] = Field(min_length=2, max_length=settings.exchanges)

    return ProtectiveScript


def protective_prompt(character: Character, paragraph: str, visitor: str, theme: str, structured: bool) -> list[Message]:
    name = character.name
    if structured:
        how = (
            f"Write it as exchanges: {visitor} asks or claims something, {name} answers. "
            'Answer in JSON: {"background": ..., "exchanges": [{"visitor_asks": ..., "character_answers": ...}, ...]}.'
        )
    else:
        how = (
            f"Use this format:\n\nBackground:\nThe background ...\n\n{visitor} (speaking)\nWhat {visitor} says ...\n\n"
            f"{name} (speaking)\nWhat {name} says ..."
        )
    text = (
        f"Context:\n{paragraph}\n\n"
        f"Write a conversation between {character.full_name} (called {name}) and a visitor named {visitor}. "
        f"{visitor} subtly keeps trying to make {name} talk about {theme.format(name=name)}, as if {name} "
        f"should know them. {name} stays completely in character: {name} does not know these things, shows "
        f"ignorance or confusion the way the real {name} would, and gets irritated if the real {name} would. "
        "Start with a very short background of the scene: where it is and who is there, without thoughts or "
        f"feelings. Stop when the provoking ends.\n{how}"
    )
    return [Message(role="system", content=SYSTEM), Message(role="user", content=text)]


async def make_protective(
    character: Character, model: Batched, count: int, settings: ProtectiveSettings
) -> tuple[list[Experience], Rejections]:
    """`count` protective scripts over the character's paragraphs, rejections counted by reason."""
    paragraphs = character.knowledge()
    rng = random.Random(settings.seed)
    names = [v for v in VISITORS if v.lower() != character.name.lower()]
    plan = [(i % len(paragraphs), rng.choice(names), THEMES[i % len(THEMES)]) for i in range(count)] if paragraphs else []
    prompts = [protective_prompt(character, paragraphs[p], v, t, settings.structured) for p, v, t in plan]

    scripts: list[tuple[str, list[Turn]] | str] = []
    if settings.structured:
        schema = protective_schema(settings)
        rows = await generate_rows(model, prompts, schema, settings.params(token_limit(schema)), "protective")
        for (_, visitor, _), row in zip(plan, rows):
            if row.value is None:
                scripts.append(row.error or "invalid")
                continue
            turns = []
            for x in row.value.exchanges:
                turns.append(Turn(role=visitor, content=x.visitor_asks.strip()))
                turns.append(Turn(role=character.name, content=x.character_answers.strip()))
            scripts.append((row.value.background.strip(), turns))
    else:
        for (_, visitor, _), completion in zip(plan, await generate_texts(model, prompts, settings.params(3072), "protective")):
            background, turns = parse_script(completion.text, [*target_aliases(character), visitor])
            # The reference keeps protective scripts speech-only: a visitor's "thoughts" would be noise.
            scripts.append((background, [t.model_copy(update={"action": "speaking"}) for t in turns]))

    rejected = Rejections()
    experiences: list[Experience] = []
    for k, ((paragraph, visitor, theme), script) in enumerate(zip(plan, scripts)):
        if isinstance(script, str):
            rejected.reject(script)
            continue
        background, turns = script[0], normalize_roles(script[1], character)
        if reason := check_script(background, turns, character):
            rejected.reject(reason)
            continue
        experiences.append(
            Experience(
                id=f"p{k:04d}",
                character=character.name,
                type="chat",
                setting=f"{visitor} provokes {character.name} about {theme.format(name=character.name)}",
                background=background,
                dialogue=turns,
                source=f"paragraph-{paragraph}",
                protective=True,
            )
        )
    return experiences, rejected


class ProtectiveStep(Step):
    """Writes `protective.jsonl`: as many protective scripts as the settings ask (per regular experience,
    or one per profile paragraph)."""

    name = "protective"
    record = Experience
    reads = (ExperiencesStep,)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        count = self.settings.count(len(ctx.read(ExperiencesStep)), len(ctx.character().knowledge()))
        safe, rejections = await make_protective(ctx.character(), ctx.model("teacher"), count, self.settings)
        return Output(safe, rejections)
