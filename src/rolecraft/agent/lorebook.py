"""A card's lorebook, activated the way front ends do it (SillyTavern's world info, the V2/V3 specs).

An enabled entry is inserted when one of its keys occurs in the recent chat: the last `scan_depth`
messages (the book's, or the entry's own), each read as "Name: text". With `selective` and secondary
keys, the entry's logic must hold too: AND ANY (one secondary key occurs), NOT ALL (not every one
does), NOT ANY (none does), AND ALL (every one does). `constant` entries are always inserted. Keys
match as plain text, case-insensitively unless the entry is `case_sensitive` (whole words only with
`match_whole_words`); a key written `/pattern/flags`, or every key of a `use_regex` (V3) entry, is a
regular expression, and one that is invalid or runs too long matches nothing. With the book's
`recursive_scanning`, inserted entries' text is scanned for further keys.

The token budget (the book's `token_budget`, at most a quarter of the context as SillyTavern's
default) is filled from the highest `priority`, then the highest `insertion_order`, down; the first
entry that no longer fits ends the activation, as in SillyTavern. The inserted texts are returned
in prompt order: lowest `insertion_order` first. Tokens are estimated at 4 characters each.

Not modelled: V3 decorators (`@@depth`, `@@activate_only_after` ...), SillyTavern's timed effects,
inclusion groups, probabilities and positions; activated entries all join the persona prompt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from rolecraft.character import DEFAULT_USER, Character, LoreEntry
from rolecraft.llm.base import Message

SCAN_DEPTH = 2  # SillyTavern's default: the last two messages
BUDGET_SHARE = 0.25  # SillyTavern's default world-info budget: a quarter of the context
MAX_SCAN_DEPTH = 1000
REGEX_TIMEOUT = 0.02  # seconds per search: a card's pattern must not stall the chat
_SLASHED = re.compile(r"^/([\w\W]+?)/([gimsuy]*)$")  # SillyTavern's `/pattern/flags` keys


class Lorebook:
    """A character's enabled lorebook entries and the book's settings; `activate` reads a chat."""

    def __init__(self, character: Character, scan_depth: int = SCAN_DEPTH, token_budget: int = 1000,
                 recursive: bool = False):
        self.character = character
        self.entries = [e for e in character.lore if e.enabled and e.content.strip() and (e.keys or e.constant)]
        self.scan_depth = scan_depth
        self.token_budget = token_budget
        self.recursive = recursive
        self._patterns: dict[tuple[str, bool], Any] = {}  # (key, case sensitive) -> compiled regex or None

    @classmethod
    def from_character(cls, character: Character, context_tokens: int = 1500) -> Lorebook | None:
        """The character's lorebook with its card's book settings, or None when it has no entry that
        could ever be inserted. The budget is the book's `token_budget`, capped at BUDGET_SHARE of
        `context_tokens`."""
        book = _book_settings(character)
        budget = int(context_tokens * BUDGET_SHARE)
        if (cap := _number(book.get("token_budget"))) and cap > 0:
            budget = min(budget, int(cap))
        depth = _number(book.get("scan_depth"))
        lorebook = cls(character, scan_depth=SCAN_DEPTH if depth is None else _depth(depth), token_budget=budget,
                       recursive=book.get("recursive_scanning") is True)
        return lorebook if lorebook.entries else None

    def activate(self, history: Sequence[Message], user: str = DEFAULT_USER) -> list[str]:
        """The texts of the entries the chat activates, within the budget, in prompt order."""
        names = {"user": user, "assistant": self.character.name}
        recent = [f"{names[m.role]}: {m.content.strip()}" for m in reversed(history) if m.role in names]
        pending = list(range(len(self.entries)))
        chosen: list[tuple[int, str]] = []  # (entry index, text)
        used, inserted = 0, ""
        while pending:
            found = [i for i in pending if self._triggered(self.entries[i], recent, inserted, user)]
            if not found:
                break
            pending = sorted(set(pending) - set(found))
            new = []
            for i in sorted(found, key=lambda i: _rank(self.entries[i]), reverse=True):
                text = self.character.expand(self.entries[i].content, user).strip()
                cost = math.ceil((len(text) + 1) / 4)
                if used + cost > self.token_budget:
                    pending = []  # the budget is spent: SillyTavern stops here too
                    break
                used += cost
                new.append((i, text))
            chosen += new
            if not self.recursive:
                break
            inserted += "".join(f"\n{text}" for _, text in new)
        chosen.sort(key=lambda pair: (self.entries[pair[0]].insertion_order, pair[0]))
        return [text for _, text in chosen]

    def _triggered(self, entry: LoreEntry, recent: list[str], inserted: str, user: str) -> bool:
        if entry.constant:
            return True
        depth = self.scan_depth if entry.scan_depth is None else _depth(entry.scan_depth)
        text = "\n".join(recent[:depth]) + inserted
        if not text or not any(self._matches(entry, key, text, user) for key in entry.keys):
            return False
        secondary = entry.secondary_keys if entry.selective else []
        if not secondary:
            return True
        hits = [self._matches(entry, key, text, user) for key in secondary]
        logic = entry.selective_logic
        return {"and_any": any(hits), "not_all": not all(hits), "not_any": not any(hits), "and_all": all(hits)}[logic]

    def _matches(self, entry: LoreEntry, key: str, text: str, user: str) -> bool:
        key = self.character.expand(key, user).strip()
        if not key:
            return False
        sensitive = bool(entry.case_sensitive)
        if entry.use_regex or _SLASHED.match(key):
            pattern = self._pattern(key, sensitive)
            return pattern is not None and self._search(pattern, key, sensitive, text)
        if not sensitive:
            key, text = key.lower(), text.lower()
        if entry.match_whole_words and len(key.split()) == 1:
            return re.search(rf"(?:^|\W){re.escape(key)}(?:$|\W)", text) is not None
        return key in text

    def _pattern(self, key: str, sensitive: bool) -> Any:
        """The compiled expression for a key (the `regex` module, for its search timeout), or None."""
        if (key, sensitive) not in self._patterns:
            import regex

            slashed = _SLASHED.match(key)
            source, flags = (slashed.group(1), slashed.group(2)) if slashed else (key, "" if sensitive else "i")
            options = regex.V0 | sum(getattr(regex, f.upper()) for f in set(flags) & set("ims"))
            try:
                self._patterns[key, sensitive] = regex.compile(source, options)
            except (regex.error, ValueError, OverflowError, RecursionError):
                self._patterns[key, sensitive] = None  # the specs: an invalid pattern is no match
        return self._patterns[key, sensitive]

    def _search(self, pattern: Any, key: str, sensitive: bool, text: str) -> bool:
        try:
            return pattern.search(text, timeout=REGEX_TIMEOUT) is not None
        except TimeoutError:
            self._patterns[key, sensitive] = None  # a pattern that stalls once would stall every turn
            return False


def _rank(entry: LoreEntry) -> tuple[float, float]:
    return (entry.priority or 0, entry.insertion_order)


def _book_settings(character: Character) -> dict[str, Any]:
    card = character.source.card or {}
    data = card.get("data") if isinstance(card.get("data"), dict) else card
    book = data.get("character_book")
    return book if isinstance(book, dict) else {}


def _number(value: Any) -> float | None:
    """A JSON number as a float, or None (booleans and non-finite values are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _depth(value: float) -> int:
    return int(min(max(value, 0), MAX_SCAN_DEPTH))
