"""Experiences → SFT rows (chat messages), in Character-LLM's text format or as a chat.

Two formats, one row shape (`messages`: system + one message per turn, the target's turns as
`assistant`, everyone else's as `user`):

- `prompted`: Character-LLM's text format (`formats.charllm`); each message is a `Role (action): content`
  line, rendered by `text_chat_template`. For base models and the paper's inference protocol.
- `chat`: for instruct students; the system prompt is the agent's chat persona prompt plus the scene,
  the target's speech is the assistant's content, other speakers are user messages `Name: text`, the
  target's thoughts are left out (a chat reply is speech only).

Loss: `target` (default) trains on the target's turns only; `all` on every line, as the paper did
(`train.templates` marks the trained roles for TRL's assistant-only loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.formats.charllm import is_target, merge_turns, meta_prompt, render_turn, scene_of
from rolecraft.formats.experience import Experience
from rolecraft.formats.persona import chat_system_prompt
from rolecraft.llm.base import Message
from rolecraft.rejections import Rejections

Format = Literal["prompted", "chat"]
LossOn = Literal["target", "all"]


class SFTRow(BaseModel):
    messages: list[Message]
    source: str = ""
    protective: bool = False


def prompted_messages(character: Character, experience: Experience) -> list[Message]:
    location, status = scene_of(experience, character)
    messages = [Message(role="system", content=meta_prompt(character, location, status))]
    for turn in merge_turns(experience.dialogue):
        role = "assistant" if is_target(turn.role, character) else "user"
        messages.append(Message(role=role, content=render_turn(turn)))
    return messages


def chat_messages(character: Character, experience: Experience) -> list[Message]:
    """The agent's own persona prompt (so the served character sees what it was trained on) plus the
    scene, then the conversation."""
    location, status = scene_of(experience, character)
    system = chat_system_prompt(character, extra=[f"Location: {location}\nStatus: {status}"])
    messages = [Message(role="system", content=system)]
    for turn in experience.dialogue:
        target = is_target(turn.role, character)
        if target and turn.action == "thinking":
            continue
        role = "assistant" if target else "user"
        content = turn.content if role == "assistant" else f"{turn.role}: {turn.content}"
        if messages[-1].role == role:  # templates expect alternation: merge same-side lines
            messages[-1] = Message(role=role, content=f"{messages[-1].content}\n{content}")
        else:
            messages.append(Message(role=role, content=content))
    return messages


def sft_rows(
    character: Character, experiences: Sequence[Experience], format: Format = "prompted"
) -> tuple[list[SFTRow], Rejections]:
    """One row per experience; rows with no target message to learn from are counted, not kept."""
    build = prompted_messages if format == "prompted" else chat_messages
    rows, rejected = [], Rejections()
    for e in experiences:
        messages = build(character, e)
        if not any(m.role == "assistant" for m in messages):
            rejected.reject("no_target_speech")
            continue
        rows.append(SFTRow(messages=messages, source=e.source or e.id, protective=e.protective))
    return rows, rejected
