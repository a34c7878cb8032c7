"""Stage 2: per scene, the teacher writes a script — a background paragraph, then turns in which only
the target character may think (Character-LLM's "experience completion").

Structured mode (default) asks for exchanges — another person says something, the character thinks
(or not) and answers — under a schema with bounded lengths. That shape makes a small teacher's script
always contain the character's speech, never lets anyone else think, and always ends within
`max_tokens`. Free-text mode asks for the paper's script format and parses it tolerantly. Either way
the result goes through `check_script`, and every rejected script is counted by reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from rolecraft.character import Character
from rolecraft.formats.charllm import target_aliases
from rolecraft.formats.experience import Experience, Scene, Turn
from rolecraft.llm import Message
from rolecraft.llm.batching import Batched
from rolecraft.llm.structured import token_limit
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.generate import TeacherSettings, generate_rows, generate_texts
from rolecraft.synth.parse import check_script, normalize_roles, parse_script
from rolecraft.synth.scenes import ScenesStep

SYSTEM = "You are a professional scriptwriter."


class ExperienceSettings(TeacherSettings):
    exchanges: int = Field(8, ge=2, le=40, description="most exchanges in a structured script")
    turn_chars: int = Field(500, ge=40, le=4000, description="longest utterance in a structured script")
    words: int = Field(1000, ge=50, description="free text: words asked for (paper: at least ~1,000)")

    @classmethod
    def tiny(cls) -> ExperienceSettings:
        return cls(exchanges=2, turn_chars=120, words=150)


def script_schema(settings: ExperienceSettings) -> type[BaseModel]:
    """Background + 2..N exchanges, every string bounded so constrained decoding must finish."""
    n = settings.turn_chars

    class ScriptExchange(BaseModel):
        speaker: str = Field(min_length=1, max_length=30)
        says: str = Field(min_length=1, max_length=n)
        character_thinks: str = Field(max_length=n)
        character_says: str = Field(min_length=1, max_length=n)

    class Script(BaseModel):
        background: str = Field(min_length=10, max_length=min(400, settings.turn_chars * 2))
        exchanges: list[ScriptExchange] = Field(min_length=2, max_length=settings.exchanges)

    return Script


def _setting_block(scene: Scene) -> str:
    return f"The setting is as follows.\n- Type: {scene.type}\n- Location: {scene.location}\n- Status: {scene.background}"


def experience_prompt(character: Character, scene: Scene, settings: ExperienceSettings) -> list[Message]:
    name = character.name
    if settings.structured:
        how = (
            f"Then write the conversation as exchanges. In each exchange another person (the speaker, with a "
            f"real name) says something; then {name} thinks (inner thoughts, or an empty string when there are "
            f"none) and answers (what {name} says). Only {name} has thoughts. Make the utterances detailed and "
            f'true to {name}. Answer in JSON: {{"background": ..., "exchanges": [{{"speaker": ..., "says": ..., '
            '"character_thinks": ..., "character_says": ...}, ...]}.'
        )
    else:
        how = (
            f'Then write the turns. After each name write the action: {name} can be "(thinking)" or "(speaking)", '
            f'everyone else only "(speaking)". The content follows on the next line; long speeches stay one '
            f"paragraph. Write at least {settings.words} words, in this format:\n\n"
            f"Background:\nThe background ...\n\n{name} (speaking)\nWhat {name} says ...\n\n"
            f"Another person (speaking)\nWhat they say ..."
        )
    text = (
        f"Context:\n{scene.source}\n\n{_setting_block(scene)}\n\n"
        f"You are writing a script for this scene, whose main character is {character.full_name}. Immerse "
        "yourself in it: the characters are real people with feelings, goals and bodily sensations.\n"
        "Start with one short paragraph of background that matches the setting exactly: only the positions, "
        "the time and the people present, without any thoughts or feelings.\n"
        f"{how}"
    )
    return [Message(role="system", content=SYSTEM), Message(role="user", content=text)]


def exchanges_to_turns(character: Character, exchanges: Sequence[BaseModel]) -> list[Turn]:
    turns: list[Turn] = []
    for x in exchanges:
        turns.append(Turn(role=x.speaker.strip(), action="speaking", content=x.says.strip()))
        if x.character_thinks.strip():
            turns.append(Turn(role=character.name, action="thinking", content=x.character_thinks.strip()))
        turns.append(Turn(role=character.name, action="speaking", content=x.character_says.strip()))
    return turns


async def write_scripts(
    character: Character,
    model: Batched,
    prompts: Sequence[Sequence[Message]],
    settings: ExperienceSettings,
    description: str,
) -> list[tuple[str, list[Turn]] | str]:
    """Per prompt, (background, normalized turns) or the reason it was rejected."""
    out: list[tuple[str, list[Turn]] | str] = []
    if settings.structured:
        schema = script_schema(settings)
        for row in await generate_rows(model, prompts, schema, settings.params(token_limit(schema)), description):
            if row.value is None:
                out.append(row.error or "invalid")
            else:
                out.append((row.value.background.strip(), exchanges_to_turns(character, row.value.exchanges)))
    else:
        for completion in await generate_texts(model, prompts, settings.params(4096), description):
            out.append(parse_script(completion.text, sorted(target_aliases(character))))
    return [r if isinstance(r, str) else (r[0], normalize_roles(r[1], character)) for r in out]


async def make_experiences(
    character: Character, model: Batched, scenes: Sequence[Scene], settings: ExperienceSettings
) -> tuple[list[Experience], Rejections]:
    """One script per scene; the usable ones become Experiences, the rest are counted by reason."""
    prompts = [experience_prompt(character, scene, settings) for scene in scenes]
    rejected = Rejections()
    experiences: list[Experience] = []
    for scene, script in zip(scenes, await write_scripts(character, model, prompts, settings, "experiences")):
        reason = script if isinstance(script, str) else check_script(*script, character)
        if reason:
            rejected.reject(reason)
            continue
        background, turns = script
        experiences.append(
            Experience(
                id=f"e{scene.id[1:]}",
                character=character.name,
                type=scene.type,
                location=scene.location,
                setting=scene.background,
                background=background,
                dialogue=turns,
                source=scene.id,
            )
        )
    return experiences, rejected


class ExperiencesStep(Step):
    """Writes `experiences.jsonl`: one script per scene that passes the checks."""

    name = "experiences"
    record = Experience
    reads = (ScenesStep,)
    roles = ("teacher",)

    async def run(self, ctx: Context) -> Output:
        kept, rejections = await make_experiences(ctx.character(), ctx.model("teacher"), ctx.read(ScenesStep), self.settings)
        return Output(kept, rejections)
