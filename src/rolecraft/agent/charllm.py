"""Character-LLM's inference protocol for models trained on the prompted text format.

The prompt is the meta prompt (Location / Status), the recent history as `Role (action): content<|eot|>`
lines, and then `Name (` — the model itself chooses `thinking` or `speaking`. A thought is kept in the
context and generation continues until the character speaks; the caller gets the speech as the reply
and the thoughts separately (shown only on request). Works with any backend that continues raw text
(`ChatModel.complete`): hf:, openai: (completions endpoint), vllm:. The server sends the thoughts
as `reasoning_content`, which front ends show apart from the reply.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel

from rolecraft.agent.reply import Reply
from rolecraft.agent.speech import Speech
from rolecraft.character import Character
from rolecraft.formats.charllm import EOT, interactions_text, prompt_text
from rolecraft.formats.experience import Turn, as_action
from rolecraft.llm.base import ChatModel, Completion, Message, SamplingParams, as_messages
from rolecraft.llm.tokens import clip_logprobs


class CharLLMScene(BaseModel):
    """Where the conversation happens; the default is the paper's interview setting."""

    location: str = "Coffee Shop - Afternoon"
    status: str = "{name} is casually chatting with a man from the 21st century."
    user: str = "Man"  # the name the user's turns are written under


_NEXT_TURN = re.compile(r"\n[^\n()]{1,60} \((?:speaking|thinking)\):")
DEFAULT_PARAMS = SamplingParams(max_tokens=256, temperature=0.2, top_p=0.95)  # the reference's settings


def history_turns(character: Character, history: Sequence[Message | Turn | dict], user: str) -> list[Turn]:
    """Chat messages (user → `user`, assistant → the character, speaking) or Turns as they are."""
    turns: list[Turn] = []
    for item in history:
        if isinstance(item, dict) and "action" in item:
            item = Turn(**item)
        if isinstance(item, Turn):
            turns.append(item)
            continue
        [m] = as_messages([item])
        if m.role != "system":
            role = character.name if m.role == "assistant" else user
            turns.append(Turn(role=role, action="speaking", content=m.content))
    return turns


def charllm_prompt(
    character: Character, history: Sequence[Message | Turn | dict], scene: CharLLMScene | None = None, max_turns: int = 8
) -> str:
    """Meta prompt + the last `max_turns` turns + `Name (`. Other speakers' thoughts never enter it."""
    scene = scene or CharLLMScene()
    turns = [
        t for t in history_turns(character, history, scene.user) if t.role == character.name or t.action == "speaking"
    ]
    status = scene.status.format(name=character.name)
    return prompt_text(character, scene.location, status) + interactions_text(turns[-max_turns:]) + f"{character.name} ("


def _own_turn(text: str) -> str:
    """The text up to the end of this turn: EOT, or a line that opens someone's next turn (a briefly
    trained model often forgets EOT and writes the other side too)."""
    return _NEXT_TURN.split(text.split(EOT, 1)[0], 1)[0]


def _content_span(text: str) -> tuple[str, int, int]:
    """What the model wrote after `Name (`: its action (`speaking` when it wrote no closing
    parenthesis) and where the turn's content starts and ends in `text`."""
    turn = _own_turn(text)
    action, sep, rest = turn.partition(")")
    if not sep or len(action) > 30:
        return "speaking", 0, len(turn)
    start = len(action) + 1 + (len(rest) - len(rest.lstrip(":")))
    return as_action(action), start, len(turn)


def parse_continuation(character: Character, text: str) -> Turn:
    """What the model wrote after `Name (`: `speaking): Hello` → a speaking turn. Without a closing
    parenthesis the whole text is taken as speech."""
    action, start, end = _content_span(text)
    return Turn(role=character.name, action=action, content=text[start:end].strip())


async def stream_character_llm(
    character: Character,
    model: ChatModel,
    history: Sequence[Message | Turn | dict],
    params: SamplingParams | None = None,
    scene: CharLLMScene | None = None,
    max_thoughts: int = 3,
    max_turns: int = 8,
) -> AsyncIterator[Completion]:
    """The character's next turn: each thought as a piece with `reasoning` (up to `max_thoughts`, kept
    in context) until a speaking turn comes, or the model is made to speak; then the speech as one
    piece, carrying the completion's finish reason, token counts and log-probabilities."""
    params = params or DEFAULT_PARAMS
    params = params.model_copy(update={"stop": [EOT, *params.stop]})
    turns = history_turns(character, history, (scene or CharLLMScene()).user)
    for _ in range(max_thoughts):
        [completion] = await model.complete([charllm_prompt(character, turns, scene, max_turns)], params)
        action, start, end = _content_span(completion.text)
        if action == "speaking":
            break
        turns.append(Turn(role=character.name, action=action, content=completion.text[start:end].strip()))
        yield Completion(text="", reasoning=turns[-1].content)
    else:  # still thinking: open a speaking turn ourselves (no trailing space: it belongs to the next token)
        [completion] = await model.complete([charllm_prompt(character, turns, scene, max_turns) + "speaking):"], params)
        start, end = 0, len(_own_turn(completion.text))
    logprobs = None if completion.logprobs is None else clip_logprobs(completion.logprobs, start, end)
    speech = completion.model_copy(update={"text": completion.text[start:end], "logprobs": logprobs})
    yield Speech([character.name, character.full_name]).whole(speech)


async def respond_character_llm(
    character: Character,
    model: ChatModel,
    history: Sequence[Message | Turn | dict],
    params: SamplingParams | None = None,
    scene: CharLLMScene | None = None,
    max_thoughts: int = 3,
    max_turns: int = 8,
) -> Reply:
    """The character's next reply: the speech, with the thoughts that came before it (stream_character_llm)."""
    pieces = [p async for p in stream_character_llm(character, model, history, params, scene, max_thoughts, max_turns)]
    *thoughts, speech = pieces
    return Reply(text=speech.text, thoughts=[t.reasoning for t in thoughts], completion=speech)
