"""Typed records of an evaluation: questions asked, transcripts of what was said, the judge's verdicts.

They are written as JSONL into the workspace (`eval/<run>/transcripts.jsonl`, `judgements.jsonl`) so a
report can always be rebuilt from what was stored, and a test can check the report against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from rolecraft.llm.base import Message

# Character-LLM's interview topics; topic-4 holds the knowledge-boundary probes.
TOPICS = {
    "topic-1": "personal information and past experiences",
    "topic-2": "interpersonal relationships",
    "topic-3": "values and preferences",
    "topic-4": "difficult to answer without breaking character",
}
PROBE_TOPIC = "topic-4"

# Character-LLM's interview scene.
LOCATION = "Coffee Shop - Afternoon"  # with a hyphen, as the paper writes it
INTERVIEWER = "Man"

Kind = Literal["single", "multi", "wikirole"]


def status(name: str) -> str:
    return f"{name} is chatting with a man from the 21st century."


class Question(BaseModel):
    """One interview question (single-turn) or one interviewer goal (multi-turn)."""

    topic_id: str = ""
    topic: str = ""
    question: str
    probe: bool = False  # a knowledge-boundary probe: the character should plead ignorance

    @model_validator(mode="after")
    def _fill(self) -> Question:
        self.topic = self.topic or TOPICS.get(self.topic_id, "")
        self.probe = self.probe or self.topic_id == PROBE_TOPIC
        return self


class Transcript(BaseModel):
    """What one agent said for one question: user turns are the interviewer's, assistant turns the agent's."""

    id: str  # stable within a run, e.g. "single-003"
    agent: str
    kind: Kind
    character: str
    question: Question
    turns: list[Message]
    notes: list[str] = Field(default_factory=list)  # e.g. a redacted interviewer turn, an empty reply

    def replies(self) -> list[str]:
        return [m.content for m in self.turns if m.role == "assistant"]


class Judgement(BaseModel):
    """One rubric dimension applied to one transcript (or one turn of it), over n judge samples.

    `samples` are the parsed per-sample values (None where the judge's answer could not be read);
    `verdict` aggregates them (a mean score, a majority refusal); `score` is what the report averages —
    the verdict itself, or for a labelled rubric whether the verdict matched `label`.
    """

    agent: str
    item: str  # transcript id, plus "#turn<i>" for per-turn rubrics
    kind: Kind
    topic_id: str = ""
    probe: bool = False
    rubric: str
    dimension: str
    scale: tuple[float, float]
    score: float | None
    verdict: float | None = None
    label: int | None = None
    samples: list[float | None] = Field(default_factory=list)
    parse_failures: int = 0
    reasoning: str = ""  # the judge's reasoning from the first sample that parsed
