"""Load a character from any file users have (profile text, card JSON / PNG / CHARX); export cards.

The format is told by content, not by extension: a PNG or zip signature, else UTF-8 text that is a
JSON object (a card, or a saved Character record) or plain text (a wiki-style profile, see
rolecraft.profile).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rolecraft.cards.containers import (
    PNG_SIGNATURE,
    ZIP_SIGNATURE,
    charx_icon,
    parse_card_json,
    placeholder_png,
    read_charx_card,
    read_png_card,
    write_charx,
    write_png_card,
)
from rolecraft.cards.convert import card_to_character, character_to_card
from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.profile import parse_profile
from rolecraft.workspace import atomic_write_bytes

__all__ = ["load_character", "export_card", "character_to_card", "card_to_character"]

_OUTPUTS = (".json", ".png", ".charx")
_JSON_OBJECT = re.compile(r'\s*\{\s*["}]')  # not `{{char}} is...` nor `[Character("...")]`, which are profiles


def load_character(path: str | Path) -> Character:
    path = Path(path)
    blob = _read(path)
    if blob.startswith(PNG_SIGNATURE):
        return card_to_character(read_png_card(blob, str(path)), str(path), "png")
    if blob.startswith(ZIP_SIGNATURE):
        return card_to_character(read_charx_card(blob, str(path)), str(path), "charx")
    text = _decode(blob, path)
    if _JSON_OBJECT.match(text) or path.suffix.lower() == ".json":
        card = parse_card_json(text, str(path))
        if isinstance(card, dict) and "full_name" in card and "spec" not in card:
            return _character_record(card, path)
        return card_to_character(card, str(path), "json")
    return parse_profile(text, path)


def export_card(character: Character, path: str | Path, version: str = "v2", image: bytes | None = None,
                extensions: dict[str, Any] | None = None) -> Path:
    """Write `character` as a card: JSON, PNG or CHARX by `path`'s extension. Returns the path.

    A PNG export uses `image`, else the character's own PNG (its source file or CHARX icon), else
    a placeholder. `extensions` are merged into `data.extensions` (e.g. {"rolecraft": {...}}).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _OUTPUTS:
        raise RolecraftError(f"{path}: cannot tell the card format from the extension {suffix or '(none)'}",
                             "name the output .json, .png or .charx")
    if suffix == ".charx" and version != "v3":
        raise RolecraftError(f"{path}: CHARX files hold V3 cards only", "use --spec v3, or a .json/.png output")
    card = character_to_card(character, version, extensions)
    if suffix == ".json":
        blob = json.dumps(card, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    elif suffix == ".charx":
        blob = write_charx(card, _source_bytes(character, "charx"), str(path))
    else:
        chunks = {"chara": card}
        if version == "v3":  # older front ends read only `chara`, so V3 PNGs carry a V2 copy too
            chunks = {"chara": character_to_card(character, "v2", extensions), "ccv3": card}
        blob = write_png_card(image or _own_image(character) or placeholder_png(), chunks)
    atomic_write_bytes(path, blob)
    return path


def _read(path: Path) -> bytes:
    if not path.exists():
        raise RolecraftError(f"{path}: no such file", "check the path to the profile or card")
    if path.is_dir():
        raise RolecraftError(f"{path}: is a folder, not a file", "give the profile or card file itself")
    blob = path.read_bytes()
    if not blob.strip():
        raise RolecraftError(f"{path}: the file is empty", "give a profile text or a character card")
    return blob


def _decode(blob: bytes, path: Path) -> str:
    sample = blob[:8192]  # text has (almost) no control characters; binary data has many
    if b"\0" in sample or sum(b < 32 and b not in b"\t\n\r\f" for b in sample) > len(sample) / 20:
        raise RolecraftError(f"{path}: binary data, not a profile or a character card",
                             "give a UTF-8 profile text, or a card as JSON, PNG or CHARX")
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RolecraftError(f"{path}: not valid UTF-8 text (bad byte at offset {e.start})",
                             "re-save the file with UTF-8 encoding") from None


def _character_record(record: dict[str, Any], path: Path) -> Character:
    """A saved Character (a workspace's character.json, `rolecraft show --json`), read back as is."""
    try:
        return Character.model_validate(record)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(map(str, error["loc"]))
        raise RolecraftError(f"{path}: invalid Character record ({where}: {error['msg']})",
                             "fix that field, or load the original profile or card instead") from None


def _source_bytes(character: Character, container: str) -> bytes | None:
    source = character.source
    if source.container != container or not source.path or not Path(source.path).is_file():
        return None
    return Path(source.path).read_bytes()


def _own_image(character: Character) -> bytes | None:
    if blob := _source_bytes(character, "png"):
        return blob if blob.startswith(PNG_SIGNATURE) else None
    if (blob := _source_bytes(character, "charx")) and character.source.card:
        return charx_icon(blob, character.source.card)
    return None
