"""Character-LLM's interviews: single-turn questions, and multi-turn conversations led by an interviewer.

Scene: "Coffee Shop - Afternoon"; the character chats with a man from the 21st century. In a
multi-turn interview an interviewer model pursues one goal for N rounds, asks follow-ups when the
character dodges, and never names the character — a name it writes anyway is replaced by "you" and
noted in the transcript. Each round is asked of every agent at once, so replies batch.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from rolecraft.character import Character
from rolecraft.eval.cost import Cost
from rolecraft.eval.grounding import summary
from rolecraft.eval.records import LOCATION, Question, Transcript, status
from rolecraft.eval.targets import Target
from rolecraft.llm import ChatModel, Message, SamplingParams
from rolecraft.progress import progress

SILENCE = "(says nothing)"
FOLLOW_UP = "Could you tell me more about that?"
_HONORIFIC = r"(?:(?:Mr|Mrs|Ms|Miss|Dr|Sir|Lord|Lady|Master|Madam|Mister|Professor)\.?\s+)?"
_SPEAKER = re.compile(r"^\s*[*_\"]*(?:man|interviewer|user|me|question|q)\s*(?:\(speaking\))?[*_]*\s*:\s*", re.I)


def scene(character: Character, location: str = LOCATION, status_line: str | None = None) -> str:
    """The interview scene an agent is told (the reference protocol passes the paper's own lines)."""
    return f"Location: {location}\nStatus: {status_line or status(character.name)}"


def name_pattern(character: Character) -> re.Pattern[str]:
    """The character's names: full, short, and each capitalised word of the full name."""
    parts = [w for w in re.split(r"\s+", character.full_name) if len(w) > 2 and w[:1].isupper()]
    names = sorted({character.full_name, character.short_name, *parts} - {""}, key=len, reverse=True)
    return re.compile(_HONORIFIC + r"\b(?:" + "|".join(map(re.escape, names)) + r")\b")


async def _replies(targets: Sequence[Target], histories: Sequence[list[Message]], params: SamplingParams,
                   cost: Cost | None, advance) -> list[str]:
    async def one(target: Target, history: list[Message]) -> str:
        reply = await target.reply(history, params)
        if cost:
            cost.add(f"agent:{target.name}", reply.completion)
        advance(1)
        return reply.text

    return list(await asyncio.gather(*(one(t, h) for t, h in zip(targets, histories))))


async def interview_single(
    character: Character, targets: Sequence[Target], questions: Sequence[Question], params: SamplingParams,
    cost: Cost | None = None,
) -> list[Transcript]:
    pairs = [(t, i, q) for t in targets for i, q in enumerate(questions)]
    with progress(len(pairs), "interviewing (single-turn)") as advance:
        histories = [[Message(role="user", content=q.question)] for _, _, q in pairs]
        texts = await _replies([t for t, _, _ in pairs], histories, params, cost, advance)
    return [
        Transcript(
            id=f"single-{i:03d}", agent=t.name, kind="single", character=character.full_name, question=q,
            turns=[*h, Message(role="assistant", content=text)], notes=[] if text else ["empty reply"],
        )
        for (t, i, q), h, text in zip(pairs, histories, texts)
    ]


def interviewer_messages(character: Character, goal: str, turns: Sequence[Message]) -> list[Message]:
    """The interviewer's view: its own questions are assistant turns, the character's answers user turns."""
    system = (
        f"You are a curious man from the 21st century, chatting with someone in a coffee shop one afternoon. "
        f"Your goal in this conversation: {goal}\n\nWhat you know about them: {summary(character)}\n\n"
        "Ask one question at a time and wait for the answer. Draw out their memories, values and "
        "personality in detail; when they dodge or answer vaguely, ask a follow-up. Stay on your goal. "
        "Never say their name: call them 'you'. Write only your next line of speech — no name prefix, "
        "no explanations, no stage directions."
    )
    flipped = [
        Message(role="assistant" if m.role == "user" else "user", content=m.content or SILENCE) for m in turns
    ]
    return [Message(role="system", content=system), Message(role="user", content="(You sit down. Begin.)"), *flipped]


def clean_question(text: str, names: re.Pattern[str]) -> tuple[str, list[str]]:
    """The interviewer's first paragraph without speaker labels or quotes, the character's names redacted."""
    first = next((p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()), "")
    line = " ".join(_SPEAKER.sub("", first).split()).strip("\"'“” ")
    notes = []
    if names.search(line):
        line = names.sub("you", line)
        notes.append("interviewer named the character; the name was replaced by 'you'")
    return line, notes


async def interview_multi(
    character: Character, targets: Sequence[Target], goals: Sequence[Question], interviewer: ChatModel,
    rounds: int, params: SamplingParams, interviewer_params: SamplingParams, cost: Cost | None = None,
) -> list[Transcript]:
    pairs = [(t, i, g) for t in targets for i, g in enumerate(goals)]
    turns: list[list[Message]] = [[] for _ in pairs]
    notes: list[list[str]] = [[] for _ in pairs]
    names = name_pattern(character)
    with progress(len(pairs) * rounds, "interviewing (multi-turn)") as advance:
        for r in range(rounds):
            asks = await interviewer.generate(
                [interviewer_messages(character, g.question, h) for (_, _, g), h in zip(pairs, turns)],
                interviewer_params,
            )
            for (_, _, goal), history, note, ask in zip(pairs, turns, notes, asks):
                if cost:
                    cost.add("interviewer", ask)
                question, redacted = clean_question(ask.text, names)
                if not question:
                    question, redacted = clean_question(goal.question if r == 0 else FOLLOW_UP, names)
                    redacted.append("interviewer wrote nothing; the goal or a plain follow-up was asked")
                note += [f"round {r + 1}: {n}" for n in redacted]
                history.append(Message(role="user", content=question))
            texts = await _replies([t for t, _, _ in pairs], turns, params, cost, advance)
            for history, text in zip(turns, texts):
                history.append(Message(role="assistant", content=text))
    return [
        Transcript(id=f"multi-{i:03d}", agent=t.name, kind="multi", character=character.full_name, question=g,
                   turns=h, notes=n)
        for (t, i, g), h, n in zip(pairs, turns, notes)
    ]
