"""Records of the facts a student is taught and tested on.

    profile sentence ─► Fact (statement by name + key spans + first-person answer)
                           ├─► QARow (a question and an answer that says the key)     trained on
                           └─► Probe (a question in another shape, with answer keys)   held out
    boundary topic ───► QARow (an in-character deflection)                            trained on
                   └──► Probe (a held-out topic, with the words that would leak it)   held out
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from rolecraft.formats.apc import StatementRecord
from rolecraft.llm.base import Message


class Fact(StatementRecord):
    """A persona statement (APC's row, so every APC step reads it) with what a correct answer must say.

    `keys` are the names, numbers and quoted phrases of the statement (or, where it has none, its rarest
    content words); `answer` is the statement in the character's own voice. Both are made from the
    profile's own words, so neither can carry a fact the profile does not."""

    id: str
    keys: list[str] = Field(default_factory=list)
    answer: str = ""
    origin: Literal["profile", "lore", "teacher"] = "profile"
    content_keys: bool = False  # the keys are content words (the statement has no name or number)


class QARow(BaseModel):
    """A question and the character's answer: one training conversation (system prompt added by SFT)."""

    id: str
    kind: Literal["fact", "boundary"]
    source: str  # fact id, or boundary topic id
    question: str
    answer: str
    origin: Literal["teacher", "constructed"]

    def messages(self) -> list[Message]:
        return [Message(role="user", content=self.question), Message(role="assistant", content=self.answer)]


class Probe(BaseModel):
    """A held-out question for evaluation, with what decides the answer without a judge: for a fact, the
    keys a correct reply says (`keys`); for a knowledge boundary, the words that would show the reply
    explains the topic (`leak_words`)."""

    id: str
    kind: Literal["fact", "boundary"]
    source: str
    question: str
    keys: list[str] = Field(default_factory=list)
    leak_words: list[str] = Field(default_factory=list)
