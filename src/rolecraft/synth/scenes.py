"""Stage 1 of experience reconstruction: the teacher imagines short scenes from each profile paragraph.

Character-LLM asks for 20 scenes per prompt and about 100 prompts per character, repeating paragraphs
(and sampling the remainder by paragraph length) so every character gets about the same number of
prompts. A repeated paragraph gets a different focus line, which keeps its prompts distinct for the
request cache and pushes the teacher towards different scenes.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.experience import Scene
from rolecraft.llm import Message
from rolecraft.llm.batching import Batched
from rolecraft.llm.structured import token_limit
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import TeacherSettings, generate_rows, generate_texts
from rolecraft.synth.parse import parse_scenes

SceneType = Literal["chat", "debate", "discussion", "speech", "interview", "meeting", "lesson", "argument"]
FOCUS = [
    "",
    "Focus on everyday moments.",
    "Focus on work and public life.",
    "Focus on family, friends and rivals.",
    "Focus on conflicts and hard decisions.",
    "Focus on memories of earlier years.",
    "Focus on successes and celebrations.",
    "Focus on travel and unfamiliar places.",
    "Focus on private moments of doubt.",
]
SYSTEM = "You are a creative screenwriter."


class SceneSettings(TeacherSettings):
    prompts: int = Field(100, ge=1, description="prompts per character (paper: ~100)")
    per_prompt: int = Field(20, ge=1, le=50, description="scenes asked for in each prompt (paper: 20)")

    @classmethod
    def tiny(cls) -> SceneSettings:
        return cls(prompts=2, per_prompt=2)


class SceneDraft(BaseModel):
    type: SceneType
    location: str = Field(min_length=3, max_length=80)
    background: str = Field(min_length=10, max_length=240)


def scene_list(count: int) -> type[BaseModel]:
    """The answer schema for `count` scenes (exactly that many: the bound keeps small teachers finite)."""

    class SceneList(BaseModel):
        scenes: list[SceneDraft] = Field(min_length=count, max_length=count)

    return SceneList


def plan_prompts(paragraphs: list[str], prompts: int, seed: int) -> list[tuple[int, int]]:
    """(paragraph index, repetition) per prompt: every paragraph equally often, the rest sampled by length."""
    rng = random.Random(seed)
    weights = [len(p) for p in paragraphs]
    if len(paragraphs) >= prompts:  # more paragraphs than prompts: keep the longest-weighted sample
        chosen: list[int] = []
        pool = list(range(len(paragraphs)))
        while len(chosen) < prompts:
            pick = rng.choices(pool, weights=[weights[i] for i in pool])[0]
            pool.remove(pick)
            chosen.append(pick)
        return [(i, 0) for i in sorted(chosen)]
    rounds = prompts // len(paragraphs)
    plan = [(i, r) for r in range(rounds) for i in range(len(paragraphs))]
    extra = rng.choices(range(len(paragraphs)), weights=weights, k=prompts - len(plan))
    seen = dict.fromkeys(range(len(paragraphs)), rounds)
    for i in extra:
        plan.append((i, seen[i]))
        seen[i] += 1
    return plan


def scene_prompt(character: Character, paragraph: str, count: int, repetition: int, structured: bool) -> list[Message]:
    focus = FOCUS[repetition % len(FOCUS)]
    if repetition >= len(FOCUS):
        focus += f" (set {repetition // len(FOCUS) + 1})"
    answer = (
        'Answer in JSON: {"scenes": [{"type": ..., "location": ..., "background": ...}, ...]}.'
        if structured
        else "Write each scene as:\nScene 1:\nType: ...\nLocation: ...\nBackground: ..."
    )
    text = (
        f"Context:\n{paragraph}\n\n"
        f"Imagine {count} scenes from the life of {character.full_name}, based only on the context above. "
        "Describe each scene briefly, only its setting and not what is said: its type (a chat, debate, "
        "discussion, speech, interview, meeting, lesson or argument), the location and time, and a short "
        f"background saying who is there and what is going on. Make the scenes creative and different. {focus}\n\n"
        f"{answer}"
    )
    return [Message(role="system", content=SYSTEM), Message(role="user", content=text.replace("  ", " "))]


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


async def make_scenes(
    character: Character, model: Batched, settings: SceneSettings
) -> tuple[list[Scene], Rejections]:
    """Scenes for one character, with the rejections counted by reason."""
    paragraphs = character.knowledge()
    if not paragraphs:
        raise RolecraftError(
            f"{character.full_name} has no profile text to imagine scenes from",
            "give the character a profile (paragraphs of text) or a card with a description",
        )
    plan = plan_prompts(paragraphs, settings.prompts, settings.seed)
    n = settings.per_prompt
    prompts = [scene_prompt(character, paragraphs[i], n, r, settings.structured) for i, r in plan]
    schema = scene_list(n)
    # Free text has no schema bound: ~160 tokens per scene is generous for three short fields.
    params = settings.params(token_limit(schema) if settings.structured else 160 * n + 64)
    rejected = Rejections()
    drafts: list[list[dict]] = []
    if settings.structured:
        for row in await generate_rows(model, prompts, schema, params, "scenes"):
            if row.value is None:
                rejected.reject(row.error or "invalid")
                drafts.append([])
            else:
                drafts.append([s.model_dump() for s in row.value.scenes])
    else:
        drafts = [parse_scenes(c.text) for c in await generate_texts(model, prompts, params, "scenes")]

    scenes: list[Scene] = []
    seen: set[tuple[str, str]] = set()
    for (index, _), batch in zip(plan, drafts):
        for draft in batch:
            location, background = draft.get("location", ""), draft.get("background", "")
            key = (location.lower(), background.lower())
            if _letters(location) < 2 or _letters(background) < 8:
                rejected.reject("incomplete_scene")
            elif key in seen:
                rejected.reject("duplicate_scene")
            else:
                seen.add(key)
                scenes.append(
                    Scene(
                        id=f"s{len(scenes):04d}",
                        type=(draft.get("type") or "chat").lower(),
                        location=location,
                        background=background,
                        paragraph=index,
                        source=paragraphs[index],
                    )
                )
    return scenes, rejected


class ScenesStep(Step):
    """Writes `scenes.jsonl`."""

    name = "scenes"
    record = Scene
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        scenes, rejections = await make_scenes(ctx.character(), ctx.model("teacher"), self.settings)
        return Output(scenes, rejections)
