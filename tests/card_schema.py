"""Strict Character Card V2 / V3 validation, written from the specs' type definitions.

What a strict reader accepts (the TypeScript types of the V2 spec and of the V3 spec's CharacterCardV3
and Lorebook), kept apart from rolecraft's own card code so that it can catch that code's mistakes.
JSON numbers exclude booleans and non-finite values, as in JavaScript.
"""

from __future__ import annotations

import math
import re
from typing import Any

_TEXT = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes",
         "system_prompt", "post_history_instructions", "creator", "character_version")
_ENTRY_OPTIONAL = {"case_sensitive": "bool", "name": "str", "priority": "number", "comment": "str",
                   "selective": "bool", "secondary_keys": "strings", "constant": "bool"}
_BOOK_OPTIONAL = {"name": "str", "description": "str", "scan_depth": "number", "token_budget": "number",
                  "recursive_scanning": "bool"}
_V3_OPTIONAL = {"nickname": "str", "creator_notes_multilingual": "texts", "source": "strings",
                "creation_date": "number", "modification_date": "number"}


def card_problems(card: Any, version: str) -> list[str]:
    """Every way `card` breaks the V2 (`version` 'v2') or V3 spec; empty when it is valid."""
    v3 = version == "v3"
    problems: list[str] = []
    if not isinstance(card, dict):
        return ["card: not an object"]
    spec, spec_version = ("chara_card_v3", "3.0") if v3 else ("chara_card_v2", "2.0")
    if card.get("spec") != spec or card.get("spec_version") != spec_version:
        problems.append(f"spec: {card.get('spec')!r} {card.get('spec_version')!r}")
    data = card.get("data")
    if not isinstance(data, dict):
        return [*problems, "data: not an object"]
    problems += [f"data.{key}: not a string" for key in _TEXT if not _is(data.get(key), "str")]
    problems += [f"data.{key}: not a list of strings" for key in ("alternate_greetings", "tags")
                 if not _is(data.get(key), "strings")]
    if not _is(data.get("extensions"), "object"):
        problems.append("data.extensions: not an object")
    if v3:
        if not _is(data.get("group_only_greetings"), "strings"):
            problems.append("data.group_only_greetings: not a list of strings")
        problems += _optional(data, _V3_OPTIONAL, "data")
        problems += _assets(data)
    if "character_book" in data:
        problems += _book(data["character_book"], v3)
    return problems


def unsafe_names(names: list[str]) -> list[str]:
    """Archive entry names an extractor could write outside its folder (or could not write at all)."""
    return [n for n in names if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n) or "\\" in n
            or ".." in n.split("/") or "\0" in n or any(ord(c) < 32 for c in n)]


def _book(book: Any, v3: bool) -> list[str]:
    if not isinstance(book, dict):
        return ["data.character_book: not an object"]
    problems = _optional(book, _BOOK_OPTIONAL, "character_book")
    if not _is(book.get("extensions"), "object"):
        problems.append("character_book.extensions: not an object")
    entries = book.get("entries")
    if not isinstance(entries, list):
        return [*problems, "character_book.entries: not a list"]
    for i, entry in enumerate(entries):
        where = f"entries[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        required = {"keys": "strings", "content": "str", "extensions": "object", "enabled": "bool",
                    "insertion_order": "number", **({"use_regex": "bool"} if v3 else {})}
        problems += [f"{where}.{key}: not {kind}" for key, kind in required.items() if not _is(entry.get(key), kind)]
        problems += _optional(entry, _ENTRY_OPTIONAL, where)
        if "id" in entry and not (_is(entry["id"], "number") or (v3 and _is(entry["id"], "str"))):
            problems.append(f"{where}.id: not a number" + (" or string" if v3 else ""))
        if "position" in entry and entry["position"] not in ("before_char", "after_char"):
            problems.append(f"{where}.position: not before_char/after_char")
    return problems


def _assets(data: dict[str, Any]) -> list[str]:
    if "assets" not in data:
        return []
    assets = data["assets"]
    if not isinstance(assets, list):
        return ["data.assets: not a list"]
    return [f"data.assets[{i}]: needs string type, uri, name and ext" for i, a in enumerate(assets)
            if not (isinstance(a, dict) and all(_is(a.get(k), "str") for k in ("type", "uri", "name", "ext")))]


def _optional(obj: dict[str, Any], fields: dict[str, str], where: str) -> list[str]:
    return [f"{where}.{key}: not {kind}" for key, kind in fields.items() if key in obj and not _is(obj[key], kind)]


def _is(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":  # what a JavaScript reader gets as a finite number
        if isinstance(value, int) and not isinstance(value, bool):
            return abs(value) < 10**308
        return isinstance(value, float) and math.isfinite(value)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "texts":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    raise ValueError(kind)
