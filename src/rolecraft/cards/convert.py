"""Character Card dicts (V1 / V2 / V3) <-> Character, and conversion between card versions.

Export starts from the card as it was read (`Character.source.card`) and writes the Character's
fields over it, so unknown fields, `extensions`, `creator_notes` and lorebook settings survive, with
every spec field in its type (cards.schema). V3-only fields with their default values are added on
V2 -> V3 and dropped on V3 -> V2, so a V2 card comes back exactly; non-default V3 fields stay in a V2
card as extra fields. A V1 card becomes V2 the way SillyTavern upgrades one, its own V1-era fields
(`creatorcomment`, `creator`, `talkativeness`) included.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from rolecraft.cards.schema import (
    comma_list,
    export_book,
    export_data,
    export_entry,
    flag,
    lore_settings,
    strings,
    text,
)
from rolecraft.character import Character, LoreEntry, Source
from rolecraft.errors import RolecraftError, shown
from rolecraft.profile import split_paragraphs

V2, V3 = "chara_card_v2", "chara_card_v3"
SPEC_VERSION = {V2: "2.0", V3: "3.0"}
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
DATA_DEFAULTS: dict[str, Any] = {  # every V2/V3 card's `data` carries these
    **{key: "" for key in V1_FIELDS},
    "creator_notes": "",
    "system_prompt": "",
    "post_history_instructions": "",
    "alternate_greetings": [],
    "tags": [],
    "creator": "",
    "character_version": "",
    "extensions": {},
}
_V1_KEPT = ("creator_notes", "creator", "character_version", "character_book", "extensions")  # some V1 cards hold them
_DECORATOR = re.compile(r"^[ \t]*@@.*(?:\n|$)", re.MULTILINE)  # V3 lorebook decorators, e.g. @@depth 4


def card_kind(card: Any, where: str) -> str:
    """'card_v1' / 'card_v2' / 'card_v3' for a parsed card JSON, or a RolecraftError saying why not."""
    if not isinstance(card, dict):
        raise RolecraftError(f"{where}: not a character card (the JSON is a {type(card).__name__})",
                             "give a Character Card V1/V2/V3 JSON object")
    spec = card.get("spec")
    if spec is None:
        if "name" not in card:
            raise RolecraftError(f"{where}: not a character card (no `spec` and no `name` field)",
                                 "a V2/V3 card needs spec 'chara_card_v2'/'chara_card_v3'; a V1 card needs `name`")
        return "card_v1"
    if spec not in (V2, V3):
        raise RolecraftError(f"{where}: unknown card spec {shown(spec)}",
                             "rolecraft reads spec 'chara_card_v2' and 'chara_card_v3' (or V1 cards without spec)")
    if not isinstance(card.get("data"), dict):
        raise RolecraftError(f"{where}: the {spec} card has no `data` object", "put the card fields under `data`")
    return "card_v2" if spec == V2 else "card_v3"


def card_to_character(card: Any, path: str = "", container: str = "json") -> Character:
    where = path or "card"
    kind = card_kind(card, where)
    data = card if kind == "card_v1" else card["data"]
    name = text(data.get("name")).strip()
    if not name:
        raise RolecraftError(f"{where}: the card has no name", "fill in the character's name (`name`) in the card")
    fields = {key: text(data.get(key)) for key in V1_FIELDS}
    return Character(
        full_name=name,
        short_name=text(data.get("nickname")).strip() or name,  # {{char}} is the whole card name
        paragraphs=[p for key in ("description", "personality", "scenario") for p in split_paragraphs(fields[key])],
        lore=[lore_entry(e) for e in _entries(data.get("character_book")) if isinstance(e, dict)],
        description=fields["description"],
        personality=fields["personality"],
        scenario=fields["scenario"],
        greeting=fields["first_mes"],
        alternate_greetings=strings(data.get("alternate_greetings")),
        examples=fields["mes_example"],
        system_prompt=text(data.get("system_prompt")),
        post_history_instructions=text(data.get("post_history_instructions")),
        tags=comma_list(data.get("tags")),
        source=Source(kind=kind, path=path, container=container, card=card),
    )


def lore_entry(entry: dict[str, Any]) -> LoreEntry:
    """A lorebook entry: its text (decorator lines `@@...` are settings, not text) and when it is
    inserted. String keys are comma-separated lists, as loose lorebooks write them."""
    keys = entry.get("keys")
    one_pattern = isinstance(keys, str) and (flag(entry.get("use_regex")) or keys.startswith("/"))
    return LoreEntry(
        keys=[keys] if one_pattern else comma_list(keys),
        content=_DECORATOR.sub("", text(entry.get("content"))).strip(),
        name=text(entry.get("name")) or text(entry.get("comment")),
        enabled=flag(entry.get("enabled"), default=True),
        **lore_settings(entry),
    )


def character_to_card(character: Character, version: str = "v2",
                      extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Character as a V2 or V3 card dict; `extensions` are merged into `data.extensions`."""
    if version not in ("v2", "v3"):
        raise RolecraftError(f"unknown card version {version!r}", "use v2 or v3")
    if not character.full_name.strip():
        raise RolecraftError("the character has no name", "set the character's full name before exporting")
    card = _v2_or_v3(character.source.card)
    if version == "v3":
        _to_v3(card)
    else:
        _to_v2(card)
    data = card["data"]
    for key, default in DATA_DEFAULTS.items():
        data.setdefault(key, copy.deepcopy(default))
    export_data(data)
    # A card's description is read back as-is; a profile's text lives in its paragraphs.
    description = character.description
    if character.source.card is None:
        description = "\n\n".join(character.paragraphs) or description
    data.update(
        name=character.full_name,
        description=description,
        personality=character.personality,
        scenario=character.scenario,
        first_mes=character.greeting,
        mes_example=character.examples,
        system_prompt=character.system_prompt,
        post_history_instructions=character.post_history_instructions,
        alternate_greetings=list(character.alternate_greetings),
        tags=list(character.tags),
    )
    if character.short_name != character.full_name or "nickname" in data:
        data["nickname"] = character.short_name  # a V3 field; kept as an extra field in V2
    book = data.pop("character_book", None)  # one that is not an object carries nothing
    if character.lore or isinstance(book, dict):
        book = book if isinstance(book, dict) else {}
        data["character_book"] = export_book(book, _book_entries(_entries(book), character.lore, version))
    for key, value in (extensions or {}).items():
        old = data["extensions"].get(key)
        data["extensions"][key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    for key in V1_FIELDS:  # keep a V1 compatibility copy at top level in step with `data`
        if key in card:
            card[key] = data[key]
    return card


def _v2_or_v3(card: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy of the source card as V2 or V3 (V1 upgraded to V2); a fresh V2 card when None."""
    if card is None:
        return {"spec": V2, "spec_version": "2.0", "data": copy.deepcopy(DATA_DEFAULTS)}
    card = copy.deepcopy(card)
    if card.get("spec") in (V2, V3) and isinstance(card.get("data"), dict):
        return card
    data = copy.deepcopy(DATA_DEFAULTS) | {key: card[key] for key in (*V1_FIELDS, *_V1_KEPT) if key in card}
    data |= _sillytavern_v1(card)
    top = {key: value for key, value in card.items() if key not in ("spec", "spec_version", "data")}
    return {"spec": V2, "spec_version": "2.0", "data": data, **top}  # V1 fields stay as a top-level copy


def _sillytavern_v1(card: dict[str, Any]) -> dict[str, Any]:
    """Where SillyTavern puts its V1-era fields when it upgrades a card: its creator notes
    (`creatorcomment`), `creator` and `talkativeness` (tags come from the Character)."""
    fields: dict[str, Any] = {}
    notes = next((card[key] for key in ("creatorcomment", "creator_notes") if card.get(key) is not None), None)
    if notes is not None:
        fields["creator_notes"] = text(notes)
    if "creator" in card:
        fields["creator"] = text(card["creator"])
    if "talkativeness" in card:
        extensions = card.get("extensions") if isinstance(card.get("extensions"), dict) else {}
        fields["extensions"] = {**extensions, "talkativeness": card["talkativeness"]}
    return fields


def _to_v3(card: dict[str, Any]) -> None:
    card["spec"], card["spec_version"] = V3, SPEC_VERSION[V3]
    card["data"].setdefault("group_only_greetings", [])


def _to_v2(card: dict[str, Any]) -> None:
    was_v3 = card["spec"] == V3
    card["spec"], card["spec_version"] = V2, SPEC_VERSION[V2]
    if was_v3 and card["data"].get("group_only_greetings") == []:
        del card["data"]["group_only_greetings"]


def _book_entries(original: list[Any], lore: list[LoreEntry], version: str) -> list[dict[str, Any]]:
    """Lorebook entries for `lore`, reusing each unchanged original entry (decorators, settings and
    unknown fields) with its spec fields in their types."""
    pool: dict[str, list[dict[str, Any]]] = {}  # a LoreEntry's JSON -> the original entries that give it
    for entry in original:
        if isinstance(entry, dict):
            pool.setdefault(lore_entry(entry).model_dump_json(), []).append(entry)
    entries = []
    for item in lore:
        same = pool.get(item.model_dump_json())
        raw = same.pop(0) if same else None
        entries.append(export_entry(raw or {}, item, version, keep_content=raw is not None))
    return entries


def _entries(book: Any) -> list[Any]:
    entries = book.get("entries") if isinstance(book, dict) else None
    return entries if isinstance(entries, list) else []
