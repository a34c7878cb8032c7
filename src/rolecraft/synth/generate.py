"""What every synthesis step shares: how a teacher is asked (settings), and generation for a whole
step with the progress display. A step builds its prompts, calls `generate_rows` (schema-constrained)
or `generate_texts`, keeps what parses and verifies, and counts the rest by reason (`Rejections`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, Field

from rolecraft.llm.base import Completion, Conversation, SamplingParams
from rolecraft.llm.batching import Batched
from rolecraft.llm.structured import Structured, generate_structured
from rolecraft.progress import progress

T = TypeVar("T", bound=BaseModel)


class TeacherSettings(BaseModel):
    """What every teacher stage asks the same way: structured or free text, and how to sample."""

    structured: bool = Field(True, description="schema-constrained JSON; off: free text + tolerant parser")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    seed: int = 0  # part of every request's cache key
    max_tokens: int | None = Field(None, ge=16, description="token limit per answer (default: from the schema)")

    def params(self, default_tokens: int) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, seed=self.seed, max_tokens=self.max_tokens or default_tokens)


async def generate_rows(
    model: Batched, conversations: Sequence[Conversation], output: type[T], params: SamplingParams, description: str
) -> list[Structured[T]]:
    """Schema-constrained generation for a whole step, with a progress bar."""
    with progress(len(conversations), description) as advance:
        return await generate_structured(model, conversations, output, params, progress=advance)


async def generate_texts(
    model: Batched, conversations: Sequence[Conversation], params: SamplingParams, description: str
) -> list[Completion]:
    """Free-text generation for a whole step, with a progress bar."""
    with progress(len(conversations), description) as advance:
        return await model.generate(conversations, params, progress=advance)
