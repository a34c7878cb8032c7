"""Wiki-style profile text -> Character.

A profile is UTF-8 text whose paragraphs are separated by blank lines. The character's name is found
by the first rule that applies:

1. a first paragraph `# Full Name` (Character-LLM's files); it is not a profile paragraph;
2. a first line `Name: Full Name` (also `名称：` / `姓名：` / `名字：`), as in APC's made-up profiles;
3. the file name `wiki_<Name>.txt`;
4. the first words of the text: its first line up to the first punctuation, at most three words.

When the file is named `wiki_<Name>.txt`, <Name> is also the short name (`wiki_Beethoven.txt` with
`# Ludwig van Beethoven` gives full name "Ludwig van Beethoven", short name "Beethoven").
"""

from __future__ import annotations

import re
from pathlib import Path

from rolecraft.character import Character, Source
from rolecraft.errors import RolecraftError, shown

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_NAME_LINE = re.compile(r"^\s*(?:name|名称|姓名|名字)\s*[:：]\s*(.+?)\s*$", re.IGNORECASE)
_WIKI_FILE = re.compile(r"^wiki_(.+)\.txt$", re.IGNORECASE)
_PUNCTUATION = re.compile(r"[.,;:!?()\[\]\"“”—–，。；：！？（）、]")


def split_paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs of a text, split on blank lines, each stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in _BLANK_LINE.split(text) if p.strip()]


def parse_profile(text: str, path: str | Path = "") -> Character:
    """A Character from profile text; `path` names the file in errors and supplies the name rule 3."""
    where = str(path) or "profile"
    paragraphs = split_paragraphs(text)
    if not paragraphs:
        raise RolecraftError(f"{where}: the profile is empty", "write the character's profile as paragraphs of text")

    full_name = ""
    first_line, _, rest = paragraphs[0].partition("\n")
    if first_line.startswith("# "):
        full_name = first_line[2:].strip()
        paragraphs = ([rest.strip()] if rest.strip() else []) + paragraphs[1:]
        if not paragraphs:
            raise RolecraftError(
                f"{where}: the profile has a header ({shown(full_name)}) but no text",
                "add paragraphs describing the character after the header, separated by blank lines",
            )

    file_match = _WIKI_FILE.match(Path(path).name) if path else None
    file_name = file_match.group(1).strip() if file_match else ""
    name_line = _NAME_LINE.match(paragraphs[0].partition("\n")[0])
    full_name = (
        full_name
        or (name_line.group(1).rstrip(".。") if name_line else "")
        or file_name
        or _first_words(paragraphs[0])
    )
    if not full_name:
        raise RolecraftError(
            f"{where}: cannot tell the character's name",
            "start the profile with a '# Full Name' line followed by a blank line",
        )
    return Character(
        full_name=full_name,
        short_name=file_name,
        paragraphs=paragraphs,
        description=paragraphs[0],
        source=Source(kind="profile", path=str(path), container="text"),
    )


def _first_words(paragraph: str) -> str:
    head = _PUNCTUATION.split(paragraph.partition("\n")[0], maxsplit=1)[0]
    return " ".join(head.split()[:3])[:60].strip()
