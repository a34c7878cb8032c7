"""Character Card samples for tests, written the way other tools write them (PNGs through Pillow)."""

from __future__ import annotations

import base64
import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

SECRET = "CREATOR-NOTES-SECRET: never prompt this"
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_PROFILES = [*sorted(_SHARED.glob("character-llm/profiles/wiki_*.txt")),
                   *sorted(_SHARED.glob("apc/wiki/wiki_*.txt"))]


def v2_card() -> dict[str, Any]:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Seraphina Vale",
            "description": "{{char}} keeps the lighthouse on an island.\n\n{{char}} tells {{user}} about storms.",
            "personality": "calm, wry, stubborn",
            "scenario": "{{user}} washes ashore below {{char}}'s lighthouse.",
            "first_mes": "*{{char}} lifts the lantern.* Who are you, {{user}}?",
            "mes_example": "<START>\n{{user}}: Hello.\n{{char}}: Mind the rocks, {{user}}.",
            "creator_notes": SECRET,
            "system_prompt": "You are {{char}}.",
            "post_history_instructions": "Stay brief.",
            "alternate_greetings": ["Storm's coming, {{user}}."],
            "tags": ["fantasy", "sea"],
            "creator": "tester",
            "character_version": "1.2",
            "extensions": {"depth_prompt": {"depth": 4, "prompt": "x"}, "fav": True, "rolecraft": {"keep": 1}},
            "character_book": {
                "name": "Isle lore",
                "scan_depth": 3,
                "extensions": {"book_ext": 1},
                "entries": [
                    {"keys": ["lighthouse"], "content": "The lighthouse was built in 1820.", "extensions": {"x": 2},
                     "enabled": True, "insertion_order": 0, "name": "Tower", "priority": 5},
                    {"keys": ["brother"], "content": "{{char}}'s brother Tobin sailed away.", "extensions": {},
                     "enabled": False, "insertion_order": 1, "comment": "Family"},
                ],
            },
            "unknown_data_field": {"nested": [1, 2]},
        },
        "unknown_top": "kept",
    }


def v3_card() -> dict[str, Any]:
    card = copy.deepcopy(v2_card())
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    data = card["data"]
    data.update(
        nickname="Sera",
        group_only_greetings=["*{{char}} nods to the group.*"],
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        creator_notes_multilingual={"fr": SECRET},
        source=["https://example.org/sera"],
        creation_date=1700000000,
        modification_date=1700000100,
    )
    for entry in data["character_book"]["entries"]:
        entry["use_regex"] = False
    lighthouse = data["character_book"]["entries"][0]
    lighthouse["content"] = "@@depth 4\n@@activate_only_after 2\n" + lighthouse["content"]
    return card


def v1_card() -> dict[str, Any]:
    data = v2_card()["data"]
    v1_fields = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
    return {key: data[key] for key in v1_fields} | {"avatar": "none", "chat": "Sera - 2024", "create_date": "2024"}


def st_v1_card() -> dict[str, Any]:
    """A V1 card as SillyTavern wrote them before V2: its own fields beside the V1 ones."""
    return {
        "name": "Old Sera",
        "description": "<CHAR> keeps the lighthouse.\n\n<BOT> tells <USER> about storms.",
        "personality": "calm",
        "scenario": "",
        "first_mes": "*<CHAR> waves.* Hello, <user>.",
        "mes_example": "",
        "creatorcomment": "Made for the 2023 contest.",
        "creator": "oldhand",
        "talkativeness": "0.5",
        "tags": "fantasy, sea , ,lighthouse",
        "fav": False,
        "avatar": "none",
        "chat": "Old Sera - 2023-5-1 @12h 00m 00s 000ms",
        "create_date": "2023-5-1 @12h 00m 00s 000ms",
    }


def loose_book() -> dict[str, Any]:
    """A lorebook as loose tools write them: string keys and ids, fields missing, logic in extensions."""
    return {
        "entries": [
            {"keys": "lighthouse, lamp", "content": "The lamp burns whale oil.", "id": "7"},
            {"keys": ["brother"], "secondary_keys": "Tobin", "selective": True, "content": "Tobin sailed away.",
             "extensions": {"selectiveLogic": 3}, "id": "tobin"},
            {"key": ["storm"], "keys": None, "content": "No keys: never activated by text.", "enabled": "yes"},
            {"keys": ["/sea ?shant(y|ies)/i"], "content": "Sera sings shanties.", "insertion_order": "5",
             "constant": 1},
        ],
    }


def hostile_cards() -> list[dict[str, Any]]:
    """Cards whose fields hold the wrong types, extreme numbers, deep nesting or lone surrogates."""
    deep: Any = "bottom"
    for _ in range(90):  # deep, within the readers' limit of 100 levels
        deep = {"d": deep}
    v2 = v2_card()
    data = v2["data"]
    return [
        {"name": "V1 with data", "data": 5, "tags": ["a", 1, None]},
        v2 | {"data": data | {"character_book": {"entries": 5, "scan_depth": "deep"}}},
        v2 | {"spec_version": 2, "data": data | {"name": 5, "tags": "a,b", "alternate_greetings": "hi",
                                                 "extensions": []}},
        v2 | {"data": data | {"extensions": {"deep": deep}}},
        v2 | {"data": data | {"character_book": {"entries": [{"keys": [1, None], "content": 5,
                                                            "insertion_order": 10**30, "priority": "high",
                                                            "id": {"x": 1}, "position": 3}]}}},
        v2 | {"data": data | {"name": "Lone \ud800 surrogate", "creator": 3.5}},
        v3_card() | {"data": v3_card()["data"] | {"assets": 5, "creator_notes_multilingual": "x", "nickname": 3,
                                                   "group_only_greetings": None, "source": "web"}},
    ]


def png_with_text(texts: dict[str, str], size: tuple[int, int] = (8, 12)) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def b64(card: Any) -> str:
    return base64.b64encode(json.dumps(card).encode()).decode()


def card_png(card: dict[str, Any]) -> bytes:
    key = "ccv3" if card.get("spec") == "chara_card_v3" else "chara"
    return png_with_text({key: b64(card)})


def charx(card: dict[str, Any] | None, icon: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if card is not None:
            archive.writestr("card.json", json.dumps(card))
        if icon is not None:
            archive.writestr("assets/icon/images/main.png", icon)
    return buffer.getvalue()


def write(path: Path, content: bytes | str | dict[str, Any]) -> Path:
    if isinstance(content, dict):
        content = json.dumps(content, ensure_ascii=False)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path
