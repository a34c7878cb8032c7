"""Hostile card input: every crash class fuzzing found, path traversal, decompression bombs, and a short
deterministic fuzz run of every reader (bench/fuzz_cards.py runs the long ones)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from rolecraft.cards import containers, export_card, load_character
from rolecraft.errors import RolecraftError
from tests import card_bombs
from tests.card_fuzz import READERS, check
from tests.card_samples import card_png, charx, hostile_cards, png_with_text, v2_card, v3_card, write
from tests.card_schema import card_problems, unsafe_names

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "fuzz"
CRASHES = json.loads((FIXTURES / "crashes.json").read_text())


@pytest.mark.parametrize("name", sorted(CRASHES))
def test_every_input_fuzzing_broke_the_readers_with_now_loads_or_is_refused_in_one_line(tmp_path, name):
    """The first input of each crash class the fuzzer found (the class and the fault it caused are in
    fixtures/fuzz/crashes.json): now a Character whose exports are valid, or a one-line error."""
    reader = name.split("/")[0]
    assert check(reader, (FIXTURES / name).read_bytes(), tmp_path) in ("loaded", "refused")


def refused(path: Path) -> str:
    with pytest.raises(RolecraftError) as caught:
        load_character(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and caught.value.fix
    return caught.value.problem


@pytest.mark.parametrize("text,problem", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # past Python's recursion limit
    ('{"spec": "chara_card_v2", "data": {"name": "x", "extensions": ' + "[" * 150 + "]" * 150 + "}}",
     "nests deeper than 100 levels"),  # within it, but too deep to copy and save
    ('{"name": "x", "n": 1' + "0" * 5000 + "}", "an integer with too many digits"),
    ('{"name": "x", "n": NaN}', "NaN is not a JSON number"),
    ('{"name": "x", "n": 1e999}', "the number 1e999 is out of range"),
])
def test_json_that_python_cannot_hold_or_javascript_cannot_read_is_refused(tmp_path, text, problem):
    assert problem in refused(write(tmp_path / "card.json", text))


def test_lone_surrogates_become_replacement_characters_so_every_export_can_be_written(tmp_path):
    text = '{"name": "Sera \\ud800 Vale", "description": "\\udfff", "extensions": {"\\udbff": ["\\ud83d"]}}'
    character = load_character(write(tmp_path / "card.json", text))
    assert character.full_name == "Sera \ufffd Vale" and character.description == "\ufffd"
    assert character.source.card["extensions"] == {"\ufffd": ["\ufffd"]}
    for out, version in (("a.json", "v2"), ("a.png", "v3")):
        assert load_character(export_card(character, tmp_path / out, version)).full_name == "Sera \ufffd Vale"


@pytest.mark.parametrize("index", range(len(hostile_cards())))
def test_wrong_types_anywhere_in_a_card_still_export_as_valid_cards(tmp_path, index):
    """Crash classes `AttributeError` (V1 card with a `data` field), `TypeError` (entries not a list)
    and every invalid-export class: fields of the wrong type, from the card down to lorebook entries."""
    character = load_character(write(tmp_path / "card.json", json.dumps(hostile_cards()[index])))
    for out, version in (("out.json", "v2"), ("out.png", "v3"), ("out.json", "v3")):
        card = load_character(export_card(character, tmp_path / out, version)).source.card
        assert card_problems(card, version) == []


def zip_with(name: str, data: bytes, *, method: int = zipfile.ZIP_DEFLATED, patch=None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr(name, data)
    blob = bytearray(buffer.getvalue())
    if patch:
        patch(blob)
    return bytes(blob)


def _method(blob: bytearray) -> None:  # compression method 99 (AES) in both headers
    for header, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = blob.index(header) + offset
        blob[at : at + 2] = (99).to_bytes(2, "little")


def _utf8_name(blob: bytearray) -> None:  # the UTF-8 flag on a name that is not UTF-8
    for header, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = blob.index(header) + offset
        blob[at + 1] |= 0x08  # flag bit 11
        name = blob.index(b"cardX.json", at)
        blob[name + 4] = 0xFF


@pytest.mark.parametrize("make", [
    lambda: zip_with("card.json", json.dumps(v3_card()).encode(), patch=_method),
    lambda: zip_with("cardX.json", b"{}", patch=_utf8_name),
    lambda: charx(v3_card())[:-30] + b"\0" * 30,  # the end record overwritten
], ids=["unsupported compression", "bad UTF-8 name", "broken end record"])
def test_damaged_or_exotic_archives_are_one_line_errors(tmp_path, make):
    problem = refused(write(tmp_path / "card.charx", make()))
    assert "corrupt" in problem or "no card.json" in problem


def test_errors_never_show_python_byte_strings(tmp_path):
    blob = bytearray(card_png(v2_card()))
    blob[blob.index(b"tEXt") + 10] ^= 0x01  # damage the card chunk's data: its CRC no longer matches
    problem = refused(write(tmp_path / "card.png", bytes(blob)))
    assert "bad checksum in a 'tEXt' chunk" in problem and "b'" not in problem


def test_a_card_json_in_a_subfolder_is_read_as_sillytavern_reads_it(tmp_path):
    blob = zip_with("Sera Vale/card.json", json.dumps(v3_card()).encode())
    assert load_character(write(tmp_path / "sub.charx", blob)).full_name == "Seraphina Vale"


def test_path_traversal_names_never_reach_an_exported_charx(tmp_path):
    source = card_bombs.traversal_charx(tmp_path)
    character = load_character(source)  # reading writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]
    out = export_card(character, tmp_path / "out" / "clean.charx", "v3")
    archive = zipfile.ZipFile(out)
    names = archive.namelist()
    assert unsafe_names(names) == [] and len(names) == 1 + len(card_bombs.TRAVERSAL)
    card = json.loads(archive.read("card.json"))
    assert {a["uri"].removeprefix("embeded://") for a in card["data"]["assets"]} == set(names) - {"card.json"}
    assert all(info.external_attr >> 16 == 0o644 for info in archive.infolist()[1:])  # no symlink modes
    archive.extractall(tmp_path / "x")
    assert all((tmp_path / "x").resolve() in p.resolve().parents for p in (tmp_path / "x").rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "out", "x"])


def test_a_charx_that_links_assets_it_lacks_is_not_exported_silently(tmp_path):
    card = v3_card()
    card["data"]["assets"] = [{"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main",
                               "ext": "png"}]
    character = load_character(write(tmp_path / "card.json", card))
    with pytest.raises(RolecraftError, match="links 1 embedded asset.*assets/icon/images/main.png") as caught:
        export_card(character, tmp_path / "out.charx", "v3")
    assert "\n" not in str(caught.value) and not (tmp_path / "out.charx").exists()
    assert load_character(export_card(character, tmp_path / "out.png", "v3")).full_name == "Seraphina Vale"
    with_icon = load_character(write(tmp_path / "in.charx", charx(card, icon=png_with_text({}))))
    exported = zipfile.ZipFile(export_card(with_icon, tmp_path / "ok.charx", "v3"))
    assert "assets/icon/images/main.png" in exported.namelist()


@pytest.mark.parametrize("make,problem", [
    (lambda folder: card_bombs.zeros_charx(folder, megabytes=20), "decompression bomb"),
    (lambda folder: card_bombs.spaces_card_charx(folder, megabytes=80), "decompression bomb"),
])
def test_decompression_bombs_are_refused_before_anything_is_inflated(tmp_path, make, problem):
    path = make(tmp_path)
    tracemalloc.start()
    try:
        assert problem in refused(path)
        assert tracemalloc.get_traced_memory()[1] < 2 * path.stat().st_size + 2**20
    finally:
        tracemalloc.stop()


def test_limits_on_card_json_and_on_the_whole_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(containers, "MAX_CARD_JSON", 1000)
    assert "more than any card" in refused(write(tmp_path / "big.charx", charx(v3_card())))
    monkeypatch.setattr(containers, "MAX_INFLATED", 2000)
    assert "would inflate to more than" in refused(write(tmp_path / "all.charx", charx(v3_card(), icon=bytes(3000))))


def test_an_allowed_large_asset_is_copied_in_pieces_not_inflated_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(containers, "BOMB_RATIO", 10**6)  # let a 64 MB run of zeros through as an asset
    character = load_character(card_bombs.zeros_charx(tmp_path, megabytes=64))
    tracemalloc.start()
    try:
        out = export_card(character, tmp_path / "out.charx", "v3")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # the asset inflates to 64 MB; its copy never holds more than a piece
    assert zipfile.ZipFile(out).getinfo("assets/other/zero.bin").file_size == 64 * 2**20
    assert card_problems(load_character(out).source.card, "v3") == []


def test_png_chunk_claiming_4_gb_is_a_truncated_png(tmp_path):
    assert "truncated" in refused(card_bombs.huge_chunk_png(tmp_path))


def test_a_short_deterministic_fuzz_run_of_every_reader_finds_nothing(tmp_path):
    pytest.importorskip("atheris")
    command = [sys.executable, str(REPO / "bench" / "fuzz_cards.py"), "--runs", "800", "--seed", "1",
               "--skip-bombs", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [run["reader"] for run in summary["runs"]] == list(READERS)
    for run in summary["runs"]:
        assert run["inputs"] >= 800 and run["crash_classes"] == [] and run["fatal"] == [], (run, done.stderr[-2000:])
    assert done.returncode == 0
