"""What an agent answers with, and what it retrieves facts through."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from rolecraft.llm.base import Completion


class Retriever(Protocol):
    """Anything that returns the k persona facts most relevant to a query."""

    def search(self, query: str, k: int) -> list[str]: ...


class Reply(BaseModel):
    text: str  # what the character says (speech only)
    thoughts: list[str] = Field(default_factory=list)  # inner thoughts, shown only on request
    facts: list[str] = Field(default_factory=list)  # retrieved facts that were in the prompt
    completion: Completion | None = None
