"""The Character record every stage reads: who the character is, what they know, how they greet."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

DEFAULT_USER = "User"
# {{char}} / {{user}}, SillyTavern's legacy <BOT> / <CHAR> / <USER>, and its group forms (a one-to-one
# chat's "group" is the character).
_MACRO = re.compile(r"\{\{\s*(char|user|charIfNotGroup|group)\s*\}\}|<(BOT|CHAR|USER|CHARIFNOTGROUP|GROUP)>",
                    re.IGNORECASE)
SelectiveLogic = Literal["and_any", "not_all", "not_any", "and_all"]


class LoreEntry(BaseModel):
    """A lorebook entry: a ready-made persona fact, and when a front end inserts it (the card fields
    that decide activation; rolecraft.agent.lorebook applies them). Other fields stay in the card."""

    keys: list[str] = Field(default_factory=list)
    content: str
    name: str = ""
    enabled: bool = True
    constant: bool = False  # always inserted
    selective: bool = False  # secondary keys count, by `selective_logic`
    secondary_keys: list[str] = Field(default_factory=list)
    selective_logic: SelectiveLogic = "and_any"  # SillyTavern's extensions.selectiveLogic 0..3
    insertion_order: int | float = 0  # lower comes first in the prompt; higher is kept first in the budget
    priority: int | float | None = None  # kept before insertion order when the budget is short
    case_sensitive: bool | None = None
    use_regex: bool = False  # V3: every key is a regular expression
    match_whole_words: bool | None = None  # SillyTavern's extensions.match_whole_words
    scan_depth: int | None = None  # SillyTavern's extensions.scan_depth: this entry's own depth


class Source(BaseModel):
    """Where a character came from, and the raw card so export loses nothing."""

    kind: Literal["profile", "card_v1", "card_v2", "card_v3", "records"] = "profile"
    path: str = ""
    container: Literal["text", "json", "png", "charx", "jsonl"] = "text"
    card: dict[str, Any] | None = None  # the card exactly as read (unknown fields and extensions kept)


class Character(BaseModel):
    """A character as rolecraft sees it. Text fields are stored raw; `expand` resolves macros on use.

    `creator_notes` are kept only inside `source.card` (for a lossless round trip) and are never a
    field here, so no prompt can pick them up by accident.
    """

    full_name: str
    short_name: str = ""
    paragraphs: list[str] = Field(default_factory=list)  # profile paragraphs (wiki text or card text)
    statements: list[str] = Field(default_factory=list)  # atomic persona facts (APC)
    lore: list[LoreEntry] = Field(default_factory=list)
    description: str = ""  # a short role description (card description or first paragraph)
    personality: str = ""
    scenario: str = ""
    greeting: str = ""
    alternate_greetings: list[str] = Field(default_factory=list)
    examples: str = ""  # example dialogue (card mes_example)
    system_prompt: str = ""
    post_history_instructions: str = ""
    tags: list[str] = Field(default_factory=list)
    source: Source = Field(default_factory=Source)

    def model_post_init(self, __context: Any) -> None:
        if not self.short_name:
            self.short_name = self.full_name.split()[0] if self.full_name.split() else self.full_name

    @property
    def name(self) -> str:
        return self.short_name or self.full_name

    @property
    def slug(self) -> str:
        """A file-system-safe id, stable for a given name (used as workspace folder and model id)."""
        slug = re.sub(r"[^\w.-]+", "-", self.full_name.strip().lower(), flags=re.UNICODE).strip("-.")
        return slug or "character"

    def expand(self, text: str, user: str = DEFAULT_USER) -> str:
        """Replace {{char}} / {{user}} (and the legacy <BOT> / <CHAR> / <USER>) macros."""

        def sub(m: re.Match[str]) -> str:
            which = (m.group(1) or m.group(2)).lower()
            return user if which == "user" else self.name

        return _MACRO.sub(sub, text)

    def knowledge(self, user: str = DEFAULT_USER) -> list[str]:
        """Everything the character knows as plain texts: profile paragraphs, then enabled lore."""
        texts = [self.expand(p, user) for p in self.paragraphs]
        texts += [self.expand(e.content, user) for e in self.lore if e.enabled and e.content.strip()]
        return texts

    def facts(self, user: str = DEFAULT_USER) -> list[str]:
        """Persona facts for retrieval: statements plus lore entries."""
        return [self.expand(s, user) for s in self.statements] + [
            self.expand(e.content, user) for e in self.lore if e.enabled and e.content.strip()
        ]

    def profile_text(self, user: str = DEFAULT_USER) -> str:
        return "\n\n".join(self.knowledge(user))
