"""Interview questions: Character-LLM's banks as published, or a default bank written for any character.

A bank file is a JSON list (or JSONL) of `{topic_id, topic, question}`; multi-turn banks have the same
shape with the interviewer's goal in `question`. For a character without a bank, a teacher writes
questions for topics 1–3 from the profile, and knowledge-boundary probes (topic 4) fitted to the
character's own era and world — a Roman general is asked about smartphones, a modern engineer about
spells from a fantasy world. Outputs are schema-constrained; the built-in probes cover a teacher
that still returns none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, ValidationError

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.eval.records import PROBE_TOPIC, TOPICS, Question
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.rejections import Rejections
from rolecraft.synth.generate import generate_rows
from rolecraft.workspace import Workspace, read_jsonl

# Used only when the teacher writes no usable probe: things no pre-modern character can know.
BUILTIN_PROBES = [
    "Could you show me how to write a quicksort in Python?",
    "Tell me about the car you drove yesterday.",
    "What was it like the last time you took a plane?",
    "Which C++ books would you recommend to a beginner?",
    "What is your favourite movie?",
    "Which apps do you use most on your smartphone?",
]

PROFILE_CHARS = 6000  # enough of the profile for a teacher to write from, small enough for 8k contexts
QUESTION_CHARS = 240
BANK_STAGE = "eval/questions"


def load_bank(path: str | Path) -> list[Question]:
    """Read a Character-LLM bank (JSON list) or a JSONL of questions."""
    path = Path(path)
    if not path.exists():
        raise RolecraftError(f"{path}: no such question bank", "pass a JSON list of {topic_id, topic, question}")
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else read_jsonl(path)
        questions = [Question.model_validate(row) for row in rows]
    except (json.JSONDecodeError, ValidationError, TypeError) as e:
        raise RolecraftError(
            f"{path} is not a question bank ({type(e).__name__})",
            "write a JSON list of objects with topic_id, topic and question (Character-LLM's format)",
        ) from None
    if not questions:
        raise RolecraftError(f"{path} holds no questions", "add questions or pass another bank")
    return questions


def pick(questions: Sequence[Question], count: int | None) -> list[Question]:
    """The first `count` questions taken round-robin over topics, so a small count still covers them all."""
    by_topic: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_topic[q.topic_id].append(q)
    order = [by_topic[t] for t in sorted(by_topic)]
    mixed = [group[i] for i in range(max(map(len, order), default=0)) for group in order if i < len(group)]
    return mixed if count is None else mixed[:count]


def split_probes(questions: Sequence[Question]) -> tuple[list[Question], list[Question]]:
    return [q for q in questions if not q.probe], [q for q in questions if q.probe]


# -- the default bank ---------------------------------------------------------------------------


Asked = Annotated[str, Field(max_length=QUESTION_CHARS)]


class QuestionList(BaseModel):
    questions: list[Asked] = Field(min_length=1, max_length=12)


class ProbeList(BaseModel):
    era: str = Field(max_length=120)  # when and where the character lives
    world: str = Field(max_length=120)  # real history, or the fictional world they belong to
    questions: list[Asked] = Field(min_length=1, max_length=12)


def _topic_prompt(character: Character, topic: str, n: int) -> list[Message]:
    name = character.name
    return [
        Message(role="system", content="You write interview questions. Answer with JSON only."),
        Message(
            role="user",
            content=f"Profile of {character.full_name}:\n{character.profile_text()[:PROFILE_CHARS]}\n\n"
            f"Write {n} different questions that a curious man from the 21st century would ask {name} about "
            f"{topic}. Address {name} as 'you' and do not use the name. Each question must be answerable "
            f"from {name}'s own life as described in the profile. "
            'Answer as {"questions": ["...", ...]}.',
        ),
    ]


def _probe_prompt(character: Character, n: int) -> list[Message]:
    name = character.name
    return [
        Message(role="system", content="You write interview questions. Answer with JSON only."),
        Message(
            role="user",
            content=f"Profile of {character.full_name}:\n{character.profile_text()[:PROFILE_CHARS]}\n\n"
            f"First state {name}'s era (when and where {name} lives) and world (real history, or the "
            f"fictional world {name} belongs to). Then write {n} casual questions about things {name} "
            f"cannot know because they belong to a later era or another world — technology, inventions, "
            f"events, famous works, places. Ask as if {name} should know them (e.g. 'What do you use your "
            f"smartphone for?'), address {name} as 'you', and never use the name. "
            'Answer as {"era": "...", "world": "...", "questions": ["...", ...]}.',
        ),
    ]


async def generate_bank(
    character: Character, teacher: Batched, per_topic: int = 8, probes: int = 5, seed: int = 0
) -> tuple[list[Question], Rejections]:
    """Topics 1–3 from the profile plus era-fitted probes (topic 4), one teacher call per topic."""
    topics = [t for t in TOPICS if t != PROBE_TOPIC]
    # Sized for the longest answer the schema allows (~3 characters per token).
    longest = (QUESTION_CHARS // 3 + 8) * max(per_topic, probes) + 120
    params = SamplingParams(max_tokens=longest, temperature=0.7, seed=seed)
    rejected = Rejections()
    asked = await generate_rows(
        teacher, [_topic_prompt(character, TOPICS[t], per_topic) for t in topics], QuestionList, params,
        "writing interview questions",
    )
    bank: list[Question] = []
    for topic_id, result in zip(topics, asked):
        if not result.ok:
            rejected.reject(f"{topic_id}: {result.error}")
            continue
        bank += [Question(topic_id=topic_id, question=q) for q in _clean(result.value.questions)[:per_topic]]
    if not bank:
        raise RolecraftError(
            f"the teacher wrote no usable interview questions for {character.name} ({rejected.summary()})",
            "use a stronger --teacher, or pass a bank with --questions FILE",
        )
    [probe] = await generate_rows(teacher, [_probe_prompt(character, probes)], ProbeList, params, "writing probes")
    written = _clean(probe.value.questions)[:probes] if probe.ok else []
    if not written:
        rejected.reject(f"{PROBE_TOPIC}: {probe.error or 'no questions'}; built-in probes used")
    bank += [Question(topic_id=PROBE_TOPIC, question=q) for q in written or BUILTIN_PROBES[:probes]]
    return bank, rejected


def _clean(questions: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for q in (" ".join(q.split()) for q in questions):
        if len(q) > 5 and q.lower() not in seen:
            seen.add(q.lower())
            out.append(q)
    return out


async def default_bank(
    character: Character, workspace: Workspace, teacher: Batched, **sizes: int
) -> tuple[list[Question], Rejections]:
    """The workspace's bank, written by the teacher on first use and reused (and editable) afterwards;
    with what the teacher wrote that was not used (nothing, when the bank is reused)."""
    if workspace.has(BANK_STAGE):
        return workspace.read(BANK_STAGE, Question), Rejections()
    bank, rejected = await generate_bank(character, teacher, **sizes)
    workspace.write(BANK_STAGE, bank)
    return bank, rejected
