"""A card's prose as plain profile lines, for the steps that read facts out of it.

Front-end cards write their descriptions in conventions no sentence splitter expects: W++ brackets
(`[Seraphina's Personality= "caring", "protective"]`, `[Body("pink hair" + "amber eyes")]`), PList
brackets (`[Genre: fantasy; Scenario: You were attacked...]`) and example dialogues inside the
description (`<START>`, `{{user}}: ...`, `{{char}}: *narration* "speech"`). Here each becomes what a
wiki-style profile would say: `Trait: a, b` lines, the scenario's sentences, and the narration of the
character's own turns (the user's turns and quoted speech, which is in the first person, are dropped).
The text is already macro-expanded (`{{char}}` → the name, `{{user}}` → `user`).
"""

from __future__ import annotations

import re

_BRACKET = re.compile(r"^\s*\[(.+)\]\s*$")
_WPP = re.compile(r"^\s*(?:[\w .'-]+?'s\s+)?([\w ]{1,40}?)\s*(?:=\s*|\()(.+?)\)?\s*$")
_OWNER = re.compile(r"^[\w .-]+?'s\s+")  # "Seraphina's body" → "body"
_QUOTED = re.compile(r"\"([^\"]*)\"")
_SPEECH = re.compile(r"[\"“][^\"”]*[\"”]")
_TURN = re.compile(r"^\s*([^:\n]{1,40}):\s*(.*)$")
_DROPPED_LABELS = {"genre", "tags", "tag", "type", "category"}
_PROSE_LABELS = {"scenario", "setting", "description", "summary", "background"}


def plain_lines(text: str, name: str, user: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        if line.strip().upper() == "<START>":
            continue
        bracket = _BRACKET.match(line)
        if bracket:
            out += _bracket_lines(bracket.group(1))
            continue
        turn = _TURN.match(line)
        if turn and turn.group(1).strip() == user:
            continue  # the user's side of an example dialogue says nothing about the character
        if turn and turn.group(1).strip() == name:
            narration = _SPEECH.sub(" ", turn.group(2)).replace("*", " ")
            out.append(" ".join(narration.split()))
            continue
        out.append(line)
    return "\n".join(line for line in out if line.strip())


def _bracket_lines(inner: str) -> list[str]:
    """W++ (`Trait= "a", "b"` / `Trait("a" + "b")`) or PList (`Trait: a, b; Other: c`) → `Trait: a, b` lines."""
    wpp = _WPP.match(inner)
    if wpp and _QUOTED.search(wpp.group(2)):
        return [f"{wpp.group(1).strip().capitalize()}: {', '.join(_QUOTED.findall(wpp.group(2)))}"]  # owner already off
    lines = []
    for part in inner.split(";"):
        label, sep, value = part.partition(":")
        label, value = label.strip(), value.strip()
        if not sep or not value or label.lower() in _DROPPED_LABELS:
            continue
        lines.append(value if label.lower() in _PROSE_LABELS else f"{_OWNER.sub('', label).capitalize()}: {value}")
    return lines
