"""Free-text scripts → turns, tolerantly; and the rules every script must pass, whatever its source.

Character-LLM's teacher writes scripts like

    Background:
    The Theater an der Wien, an evening in 1808. ...

    Beethoven (thinking)
    The orchestra is not ready.

    Karl (speaking)
    Uncle, the hall is full!

Real teachers drift from that: `Name (speaking): text` on one line, `**Name** (thinking)`, `Name:`
without an action, `[thinking]`, the action on its own line, quoted speech, markdown bold. `parse_script`
accepts all of these. `check_script` then applies the paper's rejection rules (plus the ones a weak
teacher needs) and names the reason, so callers count rejections instead of dropping rows silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rolecraft.character import Character
from rolecraft.formats.charllm import target_aliases
from rolecraft.formats.experience import Action, Turn, as_action

_DECOR = "*_#>` \t"
_HEADER = re.compile(
    r"^[*_#>\s]*(?P<name>[^()\[\]:*\n]{1,60}?)[*_\s]*[(\[](?P<action>[^)\]\n]{1,30})[)\]][*_]*\s*:?[*_]*\s*(?P<rest>.*)$"
)
_NAME_COLON = re.compile(r"^[*_\s]*(?P<name>[A-Z][\w.'’ -]{0,40}?)[*_\s]*:[*_]*\s+(?P<rest>\S.*)$")
_BARE_ACTION = re.compile(r"^[*_\s]*[(\[](?P<action>[^)\]\n]{1,30})[)\]][*_\s]*:?\s*$")
_BACKGROUND = re.compile(r"^[*_#>\s]*(?:background|setting|scene)[*_\s]*:[*_]*\s*(?P<rest>.*)$", re.IGNORECASE)
_THE_END = re.compile(r"^[*_\s(\[]*(?:the end|end of (?:the )?(?:script|scene)|fin)[.!*_\s)\]]*$", re.IGNORECASE)
_NOT_NAMES = {"note", "notes", "location", "time", "type", "status", "end", "the end", "scene", "narrator"}
_LETTER = re.compile(r"[^\W\d_]")

MIN_TURNS = 3
MIN_BACKGROUND_LETTERS = 10


def _clean(text: str) -> str:
    text = text.strip().strip(_DECOR).strip()
    if len(text) >= 2 and text[0] in "\"“'" and text[-1] in "\"”'":
        text = text[1:-1].strip()
    return text


def _header(line: str, known: set[str] | None) -> tuple[str, Action, str] | None:
    """(speaker, action, rest of line) when `line` starts a turn. `Name: text` counts only for `known`
    names when given (in a `Name (action)` script, "Listen: ..." inside a speech is not a speaker)."""
    if m := _HEADER.match(line):
        name = m["name"].strip(_DECOR)
        if name and len(name.split()) <= 5 and name.lower() not in _NOT_NAMES:
            return _name(name), as_action(m["action"]), m["rest"]
    if m := _NAME_COLON.match(line):
        name = m["name"].strip(_DECOR)
        if len(name.split()) <= 4 and name.lower() not in _NOT_NAMES and (known is None or name.lower() in known):
            return _name(name), "speaking", m["rest"]
    return None


def _name(name: str) -> str:
    return name.title() if name.isupper() and len(name) > 1 else name  # HELENE → Helene


def parse_script(text: str, names: Sequence[str] = ()) -> tuple[str, list[Turn]]:
    """The background paragraph and the turns of a free-text script (either may come back empty).
    `names`: speakers to expect besides those the script announces with `Name (action)`."""
    lines = text.replace("\r\n", "\n").split("\n")
    # `Name` then `(speaking)` on the next line: join them into one header line.
    joined: list[str] = []
    for line in lines:
        if _BARE_ACTION.match(line) and joined and joined[-1].strip() and len(joined[-1].split()) <= 5:
            joined[-1] = f"{joined[-1].strip()} {line.strip()}"
        else:
            joined.append(line)

    announced = {m["name"].strip(_DECOR).lower() for line in joined if (m := _HEADER.match(line))}
    known = announced | {n.lower() for n in names} if announced else None
    background: list[str] = []
    turns: list[Turn] = []
    body: list[str] = []  # content lines of the turn being read
    in_background = labelled = False

    def close_turn() -> None:
        if turns:
            content = _clean("\n".join(b.strip() for b in body if b.strip()))
            turns[-1] = turns[-1].model_copy(update={"content": content})
        body.clear()

    for line in joined:
        if _THE_END.match(line):
            break
        if m := _BACKGROUND.match(line):
            close_turn()
            if not labelled:  # chatter before the labelled background ("Sure! Here is ...") is not it
                background.clear()
            in_background = labelled = True
            background.append(m["rest"])
            continue
        head = _header(line, known)
        if head:
            close_turn()
            in_background = False
            name, action, rest = head
            turns.append(Turn(role=name, action=action, content=""))
            body.append(rest)
        elif turns and not in_background:
            body.append(line)
        elif line.strip():
            background.append(line)  # an unlabelled opening paragraph is the background too
    close_turn()
    turns = [t for t in turns if t.content]
    return _clean(" ".join(b.strip() for b in background if b.strip())), turns


def normalize_roles(turns: Sequence[Turn], character: Character) -> list[Turn]:
    """Every spelling of the target becomes its short name, so the formats can find its turns."""
    aliases = target_aliases(character)
    return [t.model_copy(update={"role": character.name}) if t.role.strip().lower() in aliases else t for t in turns]


def check_script(background: str, turns: Sequence[Turn], character: Character) -> str | None:
    """The reason a script is rejected, or None when it is usable. Turns must be normalized already.

    The paper rejects scripts with no turns, fewer than 3 turns, or no background. A weak teacher also
    lets other speakers think, leaves the target silent, writes placeholder turns ("...") or repeats
    one line; each of those has its own reason.
    """
    if not turns:
        return "no_turns"
    if len(turns) < MIN_TURNS:
        return "too_few_turns"
    if len(_LETTER.findall(background)) < MIN_BACKGROUND_LETTERS:
        return "no_background"
    if any(t.action == "thinking" and t.role != character.name for t in turns):
        return "wrong_speaker_thinking"
    if not any(t.role == character.name and t.action == "speaking" for t in turns):
        return "no_target_turn"
    if any(not _LETTER.search(t.content) for t in turns):
        return "placeholder_turn"
    if len({" ".join(t.content.lower().split()) for t in turns}) * 2 <= len(turns):
        return "repetitive"
    return None


_SCENE_FIELD = re.compile(r"^[*_#>\s-]*(?P<key>type|location|background)[*_\s]*:[*_]*\s*(?P<value>.*)$", re.IGNORECASE)
_SCENE_HEADER = re.compile(r"^[*_#>\s]*scene\b", re.IGNORECASE)


def parse_scenes(text: str) -> list[dict[str, str]]:
    """`Scene 1:` / `Type:` / `Location:` / `Background:` blocks → dicts (fields may be missing)."""
    scenes: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if m := _SCENE_FIELD.match(line):
            key = m["key"].lower()
            if key in current:  # a field seen twice starts the next scene even without a header
                scenes.append(current)
                current = {}
            current[key] = m["value"]
        elif _SCENE_HEADER.match(line):
            if current:
                scenes.append(current)
            current, key = {}, ""
        elif key and line.strip():
            current[key] += " " + line.strip()
    if current:
        scenes.append(current)
    # "Chat (choice in chat, debate, ...)": the reference prompt's example leaks into answers.
    return [{k: _clean(re.sub(r"\s*\(.*?\)", "", v) if k == "type" else v) for k, v in s.items()} for s in scenes]
