"""The types the V2/V3 specs give card fields: reading loose values, and writing exports that keep them.

Cards in the wild carry numbers as strings, comma-separated strings for lists, missing required
fields and values of the wrong type. Reading is lenient (the helpers below); export writes every field
the specs define in its type, so that a strict reader accepts the result. A value that cannot be
brought to its type is dropped when the field is optional and reset when it is required; every other
field is kept as it is.
"""

from __future__ import annotations

import math
from typing import Any

from rolecraft.character import LoreEntry

_LOGIC = ("and_any", "not_all", "not_any", "and_all")  # SillyTavern's selectiveLogic 0..3
_TEXT = ("creator_notes", "creator", "character_version", "nickname")  # not written from the Character
_LIST = ("group_only_greetings", "source")
_DATES = ("creation_date", "modification_date")
_POSITIONS = ("before_char", "after_char")


def text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def strings(value: Any) -> list[str]:
    """A list of strings from a list (None items dropped) or a single string."""
    if isinstance(value, str):
        return [value] if value else []
    return [text(v) for v in value if v is not None] if isinstance(value, list) else []


def comma_list(value: Any) -> list[str]:
    """Tags and keys: a list, or one comma-separated string as SillyTavern's V1 cards hold them."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return strings(value)


def number(value: Any) -> int | float | None:
    """A finite JSON number (also from a numeric string), or None; integers stay integers."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    if not math.isfinite(as_float):
        return None
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


def flag(value: Any, default: bool = False) -> bool:
    """A boolean from true/false, 1/0 or "true"/"false"/"yes"/"no" (anything else: `default`)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return default


def lore_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """The activation fields of a raw lorebook entry (spec fields, then SillyTavern's extensions)."""
    extensions = entry.get("extensions") if isinstance(entry.get("extensions"), dict) else {}
    logic = number(extensions.get("selectiveLogic"))
    depth = number(extensions.get("scan_depth"))
    case = entry.get("case_sensitive", extensions.get("case_sensitive"))
    whole = extensions.get("match_whole_words")
    order = number(entry.get("insertion_order"))
    return {
        "constant": flag(entry.get("constant")),
        "selective": flag(entry.get("selective")),
        "secondary_keys": comma_list(entry.get("secondary_keys")),
        "selective_logic": _LOGIC[int(logic)] if logic in (0, 1, 2, 3) else "and_any",
        "insertion_order": 100 if order is None else order,  # SillyTavern's default order
        "priority": number(entry.get("priority")),
        "case_sensitive": case if isinstance(case, bool) else None,
        "use_regex": flag(entry.get("use_regex")),
        "match_whole_words": whole if isinstance(whole, bool) else None,
        "scan_depth": None if depth is None else int(min(max(depth, 0), 1000)),
    }


def export_entry(raw: dict[str, Any], lore: LoreEntry, version: str, keep_content: bool) -> dict[str, Any]:
    """A lorebook entry for export: `raw` (the entry as read, or {} for a new one) with the spec
    fields in their types. `keep_content` keeps raw's content, V3 decorators included."""
    entry = dict(raw)
    entry.update(keys=list(lore.keys), content=text(raw.get("content")) if keep_content else lore.content,
                 extensions=dict(raw["extensions"]) if isinstance(raw.get("extensions"), dict) else {},
                 enabled=lore.enabled, insertion_order=lore.insertion_order)
    if not raw:  # a new entry: its name, and SillyTavern's settings where it keeps them
        entry["name"] = lore.name
        settings = (("selectiveLogic", _LOGIC.index(lore.selective_logic) or None), ("scan_depth", lore.scan_depth),
                    ("match_whole_words", lore.match_whole_words))
        entry["extensions"] |= {key: value for key, value in settings if value is not None}
    optional = {"constant": lore.constant, "selective": lore.selective, "secondary_keys": list(lore.secondary_keys),
                "priority": lore.priority, "case_sensitive": lore.case_sensitive}
    for key, value in optional.items():
        if value is None:
            entry.pop(key, None)
        elif key in raw or (not raw and value is not False and value != []):
            entry[key] = value
    for key in ("name", "comment"):
        if key in entry:
            entry[key] = text(entry[key])
    if not (version == "v3" and isinstance(entry.get("id"), str)):
        _number_or_drop(entry, "id")  # V2 ids are numbers: "7" becomes 7, other strings go
    if entry.get("position", "before_char") not in _POSITIONS:
        del entry["position"]
    if version == "v3":
        entry["use_regex"] = lore.use_regex
    elif not lore.use_regex:
        entry.pop("use_regex", None)
    return entry


def export_book(book: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    out = {**book, "extensions": book.get("extensions") if isinstance(book.get("extensions"), dict) else {},
           "entries": entries}
    for key in ("name", "description"):
        if key in out:
            out[key] = text(out[key])
    for key in ("scan_depth", "token_budget"):
        _number_or_drop(out, key)
    if "recursive_scanning" in out:
        out["recursive_scanning"] = flag(out["recursive_scanning"])
    return out


def export_data(data: dict[str, Any]) -> None:
    """Bring the `data` fields that the Character does not write to their spec types, in place."""
    for key in _TEXT:
        if key in data:
            data[key] = text(data[key])
    for key in _LIST:
        if key in data:
            data[key] = strings(data[key])
    for key in _DATES:
        _number_or_drop(data, key)
    if "creator_notes_multilingual" in data:
        notes = data["creator_notes_multilingual"]
        notes = notes if isinstance(notes, dict) else {}
        data["creator_notes_multilingual"] = {str(k): text(v) for k, v in notes.items()}
    if "assets" in data:
        assets = data["assets"] if isinstance(data["assets"], list) else []
        data["assets"] = [a | {key: text(a.get(key)) for key in ("type", "uri", "name", "ext")} for a in assets
                          if isinstance(a, dict) and a.get("type") is not None and a.get("uri") is not None]
    if not isinstance(data.get("extensions"), dict):
        data["extensions"] = {}


def _number_or_drop(obj: dict[str, Any], key: str) -> None:
    if key in obj:
        obj[key] = number(obj[key])
        if obj[key] is None:
            del obj[key]
