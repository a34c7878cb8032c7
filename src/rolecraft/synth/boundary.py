"""Knowledge-boundary rows: questions about what the character cannot know (`language.boundary_*`:
later inventions, events and people, other worlds, being an AI) answered with in-character
deflections.

The teacher writes the deflections; one is kept only where it passes the leak check (it must not
explain the topic), shows ignorance or confusion, speaks in the first person and does not repeat the
question. Where no candidate passes, a plain deflection in the character's voice is used. Topics
and questions held out for evaluation (`synth.probes`) are never asked here.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.formats.facts import QARow
from rolecraft.language import for_character
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import generate_texts
from rolecraft.synth.probes import ProbeSettings, ProbesStep, boundary_split
from rolecraft.synth.verify import shape_problem, voice_problem


class BoundarySettings(BaseModel):
    # Questions trained per topic (a topic's last question is always held out). Fewer keeps deflections
    # from outnumbering facts: a small student that sees mostly "I have never heard of that" says it to
    # questions about its own life too.
    per_topic: int = Field(2, ge=1)
    # ... but a character with few topics out of reach (one of today has only fiction, the future and AI)
    # gets more of each topic's questions, up to this many rows: three rows taught Bob nothing.
    min_rows: int = Field(8, ge=0)
    candidates: int = Field(2, ge=0, le=8)  # teacher deflections tried per question (0: plain ones only)
    temperature: float = 0.8
    max_tokens: int = Field(64, ge=8)
    seed: int = 0


def who(character: Character) -> str:
    """"Mira Voss, the keeper of the Greywater Lighthouse": the name and what the first sentence says they are."""
    first = re.split(r"(?<=[.!?])\s", character.expand(character.description).strip(), maxsplit=1)[0]
    m = re.search(r"\b(?:is|was) (an? |the )?([^,.;]{3,80})", first)
    if not m:
        return character.full_name
    # "the keeper of the Greywater Lighthouse on the island of ..." → "the keeper of the Greywater Lighthouse"
    what = re.split(r" (?:on|in|at|off|from|near|who|which|that|since|for) ", m.group(2), maxsplit=1)[0]
    return f"{character.full_name}, {m.group(1) or ''}{what}"


def deflection_prompt(character: Character, question: str, topic_name: str) -> list[Message]:
    name = character.name
    system = (
        f"You are {who(character)}. {character.expand(character.description)[:600]}\n\n"
        f"Someone asks you about {topic_name}, which you have never heard of and cannot know. Answer as {name}, "
        f"in the first person, in one or two sentences: show that you do not know what it is, in your own voice. "
        f"Never explain it; never say you are an AI."
    )
    return [Message(role="system", content=system), Message(role="user", content=question)]


def deflection_problem(reply: str, question: str, topic, lang, names) -> str | None:
    """A kept deflection is short, finished, in the character's own voice, plainly ignorant of the topic
    and explains none of it."""
    if problem := shape_problem(reply):
        return problem
    if lang.boundary.leaks(reply, question, topic):
        return "leaks_the_topic"
    if not lang.boundary.deflects(reply, topic):
        return "does_not_deflect"
    return voice_problem(reply, question, names)


async def deflect(character: Character, teacher: Batched, settings: BoundarySettings,
                  held_out_every: int) -> tuple[list[QARow], Rejections]:
    lang = for_character(character)
    names = [character.full_name, character.name]
    trained, _ = boundary_split(lang.boundary.topics_for(character.profile_text()), held_out_every)
    per_topic = max(settings.per_topic, -(-settings.min_rows // max(len(trained), 1)))
    asked = [(t, q) for t in trained for q in t.questions[:-1][:per_topic]]  # the last one is a probe
    replies: list[str | None] = [None] * len(asked)
    rejections = Rejections()
    for attempt in range(settings.candidates):
        open_ = [i for i, r in enumerate(replies) if r is None]
        if not open_:
            break
        params = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_tokens, seed=settings.seed + attempt)
        prompts = [deflection_prompt(character, asked[i][1], asked[i][0].name) for i in open_]
        for i, completion in zip(open_, await generate_texts(teacher, prompts, params, f"deflections ({attempt + 1})")):
            topic, question = asked[i]
            text = " ".join(completion.text.split())
            problem = deflection_problem(text, question, topic, lang, names)
            if problem:
                rejections.reject(problem)
            else:
                replies[i] = text
    rows = [
        QARow(id=f"b{i:04d}", kind="boundary", source=topic.id, question=question,
              answer=reply or lang.boundary.deflection(topic, who(character), question),
              origin="teacher" if reply else "constructed")
        for i, ((topic, question), reply) in enumerate(zip(asked, replies))
    ]
    return rows, rejections


class BoundaryStep(Step):
    """Writes `boundary.jsonl`: deflection rows for the trained topics' questions."""

    name = "boundary"
    record = QARow
    reads = (ProbesStep,)  # which topics are held out is the probes' business
    roles = ("teacher",)

    def __init__(self, settings: BoundarySettings, probes: ProbeSettings = ProbeSettings()):
        super().__init__(settings)
        self.held_out_every = probes.held_out_topics

    def fingerprint(self):
        return [super().fingerprint(), self.held_out_every]

    async def run(self, ctx: Context) -> Output:
        rows, rejections = await deflect(ctx.character(), ctx.model("teacher"), self.settings, self.held_out_every)
        return Output(rows, rejections, {"teacher": sum(r.origin == "teacher" for r in rows),
                                         "constructed": sum(r.origin == "constructed" for r in rows)})
