"""Character Card import/export: V1/V2/V3 as JSON, PNG and CHARX; round trips; every bad input."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from PIL import Image

from rolecraft.cards import card_to_character, character_to_card, export_card, load_character
from rolecraft.cards.containers import png_chunks
from rolecraft.errors import RolecraftError
from tests.card_samples import (
    SECRET,
    b64,
    card_png,
    charx,
    loose_book,
    png_with_text,
    st_v1_card,
    v1_card,
    v2_card,
    v3_card,
    write,
)
from tests.card_schema import card_problems


def fields(character):
    return character.model_dump(exclude={"source"})


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def png_texts(blob: bytes) -> dict[str, dict]:
    image = Image.open(io.BytesIO(blob))
    image.load()  # Pillow, not our reader, checks what we wrote
    return {key: json.loads(base64.b64decode(value)) for key, value in image.text.items()}


def test_v2_card_becomes_character(tmp_path):
    character = load_character(write(tmp_path / "sera.json", v2_card()))
    assert (character.full_name, character.short_name) == ("Seraphina Vale", "Seraphina Vale")
    assert character.paragraphs == [
        "{{char}} keeps the lighthouse on an island.",
        "{{char}} tells {{user}} about storms.",
        "calm, wry, stubborn",
        "{{user}} washes ashore below {{char}}'s lighthouse.",
    ]
    assert character.greeting.startswith("*{{char}} lifts")
    assert character.examples.startswith("<START>")
    assert character.alternate_greetings == ["Storm's coming, {{user}}."]
    assert [(e.keys, e.name, e.enabled) for e in character.lore] == [
        (["lighthouse"], "Tower", True), (["brother"], "Family", False)]
    assert (character.source.kind, character.source.container) == ("card_v2", "json")
    assert character.source.card == v2_card()


def test_macros_expand_and_disabled_lore_is_not_knowledge(tmp_path):
    character = load_character(write(tmp_path / "sera.json", v2_card()))
    assert character.expand(character.greeting, user="Ann") == "*Seraphina Vale lifts the lantern.* Who are you, Ann?"
    knowledge = character.knowledge(user="Ann")
    assert "Seraphina Vale tells Ann about storms." in knowledge
    assert "The lighthouse was built in 1820." in knowledge
    assert not any("Tobin" in text for text in knowledge)
    assert not any("{{" in text for text in knowledge)


@pytest.mark.parametrize("make", [v1_card, v2_card, v3_card])
def test_creator_notes_never_reach_the_character(tmp_path, make):
    character = load_character(write(tmp_path / "card.json", make()))
    assert not any(SECRET in text for text in strings(fields(character)))
    assert not any(SECRET in text for text in character.knowledge() + character.facts())


def test_v3_nickname_decorators_and_ccv3(tmp_path):
    character = load_character(write(tmp_path / "sera.png", card_png(v3_card())))
    assert (character.source.kind, character.source.container) == ("card_v3", "png")
    assert character.short_name == "Sera" and character.expand("{{char}}") == "Sera"
    assert character.lore[0].content == "The lighthouse was built in 1820."


@pytest.mark.parametrize("first", ["chara", "ccv3"])
def test_ccv3_wins_over_chara(tmp_path, first):
    old, new = v2_card(), v3_card()
    old["data"]["name"] = "Old Name"
    texts = {"chara": b64(old), "ccv3": b64(new)}
    blob = png_with_text({first: texts[first]} | texts)
    assert load_character(write(tmp_path / "both.png", blob)).full_name == "Seraphina Vale"


@pytest.mark.parametrize("make,version,container", [
    (v2_card, "v2", "json"), (v2_card, "v2", "png"), (v3_card, "v3", "json"), (v3_card, "v3", "png"),
    (v3_card, "v3", "charx"),  # CHARX holds V3 cards only
])
def test_round_trip_keeps_every_field(tmp_path, make, version, container):
    source = {"json": lambda c: json.dumps(c), "png": card_png, "charx": charx}[container](make())
    character = load_character(write(tmp_path / f"in.{container}", source))
    out = export_card(character, tmp_path / f"out.{container}", version)
    again = load_character(out)
    assert fields(again) == fields(character)
    assert again.source.card == make()  # unknown fields, extensions, creator_notes, decorators: all kept


def test_v1_upgrades_to_v2_and_keeps_its_fields(tmp_path):
    character = load_character(write(tmp_path / "v1.json", v1_card()))
    assert character.source.kind == "card_v1" and character.greeting
    card = character_to_card(character, "v2")
    assert card["spec"] == "chara_card_v2" and card["data"]["first_mes"] == v1_card()["first_mes"]
    assert {k: card[k] for k in v1_card()} == v1_card()  # V1 fields stay as a top-level copy
    for container in ("json", "png"):
        again = load_character(export_card(character, tmp_path / f"v2.{container}"))
        assert fields(again) == fields(character)
    character.greeting = "Hi."
    card = character_to_card(character, "v3")
    assert card["first_mes"] == card["data"]["first_mes"] == "Hi."  # the top-level copy follows edits


def test_v2_to_v3_to_v2_is_exact(tmp_path):
    v2 = load_character(write(tmp_path / "v2.json", v2_card()))
    v3 = load_character(export_card(v2, tmp_path / "v3.json", "v3"))
    assert v3.source.card["spec"] == "chara_card_v3" and v3.source.card["data"]["group_only_greetings"] == []
    assert v3.source.card["data"]["character_book"]["entries"][0]["use_regex"] is False
    back = load_character(export_card(v3, tmp_path / "back.json", "v2"))
    assert back.source.card == v2_card()
    assert fields(back) == fields(v2) == fields(v3)


def test_v3_to_v2_to_v3_is_exact(tmp_path):
    v3 = load_character(write(tmp_path / "v3.json", v3_card()))
    v2 = load_character(export_card(v3, tmp_path / "v2.png", "v2"))
    assert v2.source.card["spec"] == "chara_card_v2" and v2.short_name == "Sera"  # nickname kept as extra field
    back = load_character(export_card(v2, tmp_path / "back.json", "v3"))
    assert back.source.card == v3_card()


def test_edits_are_exported_and_untouched_lore_keeps_its_settings(tmp_path):
    character = load_character(write(tmp_path / "v3.json", v3_card()))
    character.greeting = "Hello, {{user}}."
    character.lore.append(character.lore[0].model_copy(update={"content": "The lamp burns whale oil.", "name": "Lamp"}))
    card = character_to_card(character, "v3", extensions={"rolecraft": {"adapter": "sera-sft"}})
    data = card["data"]
    assert data["first_mes"] == "Hello, {{user}}."
    assert data["character_book"]["entries"][:2] == v3_card()["data"]["character_book"]["entries"]
    assert data["character_book"]["entries"][2] | {"insertion_order": 0} == {
        "keys": ["lighthouse"], "content": "The lamp burns whale oil.", "extensions": {}, "enabled": True,
        "insertion_order": 0, "name": "Lamp", "use_regex": False, "priority": 5}  # activation settings travel
    assert data["extensions"] == v3_card()["data"]["extensions"] | {"rolecraft": {"keep": 1, "adapter": "sera-sft"}}
    assert character.source.card == v3_card()  # exporting does not touch the loaded card


def test_profile_exports_as_a_proper_card(tmp_path):
    text = "# Ludwig van Beethoven\n\nA German composer.\n\nHe went deaf.\n"
    profile = load_character(write(tmp_path / "wiki_Beethoven.txt", text))
    card = character_to_card(profile, "v3")
    assert card["spec"] == "chara_card_v3" and card["data"]["name"] == "Ludwig van Beethoven"
    assert card["data"]["description"] == "A German composer.\n\nHe went deaf."
    assert card["data"]["nickname"] == "Beethoven"
    for version in ("v2", "v3"):
        again = load_character(export_card(profile, tmp_path / f"b-{version}.png", version))
        assert (again.full_name, again.short_name) == ("Ludwig van Beethoven", "Beethoven")
        assert again.paragraphs == profile.paragraphs


def test_png_export_keeps_the_image_and_writes_both_chunks_for_v3(tmp_path):
    source = card_png(v2_card())
    character = load_character(write(tmp_path / "in.png", source))
    blob = export_card(character, tmp_path / "out.png", "v3").read_bytes()
    pixels = [chunk for chunk in png_chunks(blob, "out") if chunk[0] in (b"IHDR", b"IDAT")]
    assert pixels == [chunk for chunk in png_chunks(source, "in") if chunk[0] in (b"IHDR", b"IDAT")]
    texts = png_texts(blob)
    assert texts["ccv3"]["spec"] == "chara_card_v3" and texts["chara"] == v2_card()


def test_png_image_comes_from_argument_or_placeholder_or_charx_icon(tmp_path):
    character = load_character(write(tmp_path / "in.json", v2_card()))
    placeholder = Image.open(export_card(character, tmp_path / "p.png"))
    assert placeholder.size == (64, 96) and png_texts((tmp_path / "p.png").read_bytes())["chara"] == v2_card()
    given = png_with_text({}, size=(5, 7))
    assert Image.open(export_card(character, tmp_path / "g.png", image=given)).size == (5, 7)

    card = v3_card()
    icon = {"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"}
    card["data"]["assets"] = [icon]
    from_charx = load_character(write(tmp_path / "in.charx", charx(card, icon=png_with_text({}, size=(3, 4)))))
    assert Image.open(export_card(from_charx, tmp_path / "c.png", "v3")).size == (3, 4)
    archive = zipfile.ZipFile(export_card(from_charx, tmp_path / "c.charx", "v3"))
    assert archive.read("assets/icon/images/main.png").startswith(b"\x89PNG")  # assets travel along


GOOD_PNG = png_with_text({"chara": b64(v2_card())})


def _with_name(card, name):
    card["data"]["name"] = name
    return card


BAD_INPUTS = {
    "empty file": ("empty.txt", b"", "empty"),
    "blank file": ("blank.txt", b" \n\n \n", "empty"),
    "header only": ("wiki_X.txt", "# Only A Header\n\n", "no text"),
    "binary garbage": ("junk.bin", bytes(range(256)) * 4, "binary"),
    "invalid UTF-8": ("latin1.txt", "Zoë lives in Zürich.".encode("latin-1"), "UTF-8"),
    "truncated PNG": ("cut.png", GOOD_PNG[: len(GOOD_PNG) // 2], "truncated"),
    "corrupt PNG": ("bad.png", GOOD_PNG[:40] + bytes([GOOD_PNG[40] ^ 0xFF]) + GOOD_PNG[41:], "corrupt"),
    "PNG without card": ("plain.png", png_with_text({"Comment": "hi"}), "no character card"),
    "bad base64": ("b64.png", png_with_text({"chara": "not*base64!"}), "base64"),
    "base64 of non-JSON": ("nojson.png", png_with_text({"ccv3": "aGVsbG8="}), "invalid card JSON"),  # "hello"
    "unknown spec": ("spec.json", json.dumps(v2_card() | {"spec": "chara_card_v9"}), "unknown card spec"),
    "card without name": ("noname.json", json.dumps(_with_name(v2_card(), " ")), "no name"),
    "JSON without spec or name": ("what.json", json.dumps({"hello": 1}), "not a character card"),
    "JSON list": ("list.json", "[1, 2]", "not a character card"),
    "invalid JSON": ("broken.json", '{"spec": "chara_card_v2", ', "invalid card JSON"),
    "V2 without data": ("nodata.json", json.dumps({"spec": "chara_card_v2"}), "no `data`"),
    "CHARX without card.json": ("empty.charx", charx(None, icon=GOOD_PNG), "no card.json"),
    "corrupt CHARX": ("cut.charx", charx(v3_card())[:30], "corrupt"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_a_one_line_error_naming_file_problem_and_fix(tmp_path, name):
    filename, content, problem = BAD_INPUTS[name]
    path = write(tmp_path / filename, content)
    with pytest.raises(RolecraftError) as caught:
        load_character(path)
    message = str(caught.value)
    assert str(path) in message and problem in caught.value.problem and caught.value.fix
    assert "\n" not in message


def test_missing_file_and_folder(tmp_path):
    for path, problem in ((tmp_path / "nope.json", "no such file"), (tmp_path, "folder")):
        with pytest.raises(RolecraftError, match=problem):
            load_character(path)


def test_failed_export_writes_nothing(tmp_path):
    character = load_character(write(tmp_path / "in.json", v2_card()))
    failures = [
        (tmp_path / "out" / "card.txt", {}, "extension"),
        (tmp_path / "out" / "card.charx", {"version": "v2"}, "V3 cards only"),
        (tmp_path / "out" / "card.png", {"image": GOOD_PNG[:50]}, "truncated"),
        (tmp_path / "out" / "card.json", {"version": "v4"}, "unknown card version"),
    ]
    for out, options, problem in failures:
        with pytest.raises(RolecraftError, match=problem):
            export_card(character, out, **options)
    assert not (tmp_path / "out").exists()
    existing = write(tmp_path / "keep.png", b"old bytes")
    with pytest.raises(RolecraftError):
        export_card(character, existing, image=GOOD_PNG[:50])
    assert existing.read_bytes() == b"old bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "keep.png"]  # no temp file left


# --- SillyTavern's V1-era cards and loose lorebooks (what SillyTavern's importer does with them) -------

@pytest.mark.parametrize("version", ["v2", "v3"])
def test_sillytavern_v1_fields_arrive_in_data(tmp_path, version):
    character = load_character(write(tmp_path / "old.json", st_v1_card()))
    assert character.tags == ["fantasy", "sea", "lighthouse"]  # split on commas, trimmed, empties dropped
    assert not any("contest" in text for text in strings(fields(character)))  # creator notes stay out
    card = load_character(export_card(character, tmp_path / f"new.{version}.json", version)).source.card
    data = card["data"]
    assert data["creator_notes"] == "Made for the 2023 contest." and data["creator"] == "oldhand"
    assert data["tags"] == ["fantasy", "sea", "lighthouse"] and data["extensions"]["talkativeness"] == "0.5"
    assert card_problems(card, version) == []
    assert card["creatorcomment"] == st_v1_card()["creatorcomment"]  # the V1 copy stays at top level


def test_creator_notes_under_their_v1_name_fall_back_and_string_tags_in_v2_are_kept(tmp_path):
    card = st_v1_card()
    del card["creatorcomment"]
    card["creator_notes"] = "Notes."
    character = load_character(write(tmp_path / "a.json", card))
    assert character_to_card(character, "v2")["data"]["creator_notes"] == "Notes."
    v2 = v2_card()
    v2["data"]["tags"] = "fantasy,  sea"
    character = load_character(write(tmp_path / "b.json", v2))
    assert character.tags == ["fantasy", "sea"] and character_to_card(character)["data"]["tags"] == ["fantasy", "sea"]
    v2["data"]["alternate_greetings"] = "Storm's coming."  # one greeting as a string, as SillyTavern accepts
    assert load_character(write(tmp_path / "c.json", v2)).alternate_greetings == ["Storm's coming."]


def test_legacy_macros_expand_like_bot():
    character = card_to_character(st_v1_card())
    assert character.expand(character.description, user="Ann") == (
        "Old Sera keeps the lighthouse.\n\nOld Sera tells Ann about storms.")
    assert character.expand("<char>, {{charIfNotGroup}}, <GROUP>, <user>", "Ann") == "Old Sera, Old Sera, Old Sera, Ann"


def test_original_is_the_default_prompt_in_any_case():
    from rolecraft.formats.persona import chat_system_prompt, post_history_instructions

    character = card_to_character(v2_card() | {"data": v2_card()["data"] | {
        "system_prompt": "{{Original}} Speak in verse.", "post_history_instructions": "{{ORIGINAL}}Stay brief."}})
    assert chat_system_prompt(character).startswith("You are Seraphina Vale. Stay in character")
    assert "{{" not in chat_system_prompt(character) and post_history_instructions(character) == "Stay brief."


def test_a_loose_lorebook_is_read_and_exported_as_a_strict_one(tmp_path):
    card = v2_card()
    card["data"]["character_book"] = loose_book()
    character = load_character(write(tmp_path / "loose.json", card))
    lamp, tobin, storm, shanty = character.lore
    assert lamp.keys == ["lighthouse", "lamp"]  # a string of keys keeps every key
    assert (tobin.secondary_keys, tobin.selective, tobin.selective_logic) == (["Tobin"], True, "and_all")
    assert storm.keys == [] and storm.enabled  # "yes"
    assert (shanty.keys, shanty.insertion_order, shanty.constant) == (["/sea ?shant(y|ies)/i"], 5, True)
    for version in ("v2", "v3"):
        exported = load_character(export_card(character, tmp_path / f"out-{version}.json", version))
        entries = exported.source.card["data"]["character_book"]["entries"]
        assert card_problems(exported.source.card, version) == []
        ids = [7, None, None, None] if version == "v2" else ["7", "tobin", None, None]  # V3 allows string ids
        assert [e.get("id") for e in entries] == ids
        assert entries[0]["insertion_order"] == 100 and entries[0]["extensions"] == {} and entries[0]["enabled"] is True
        assert [e.model_dump() for e in exported.lore] == [e.model_dump() for e in character.lore]
