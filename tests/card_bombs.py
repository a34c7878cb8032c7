"""Hostile card files made on the spot: decompression bombs, path traversal, absurd lengths, deep JSON.

Each maker writes one file into a folder and returns its path; bench/fuzz_cards.py measures the peak
memory of loading and exporting each, and tests/test_card_fuzz.py checks how each is refused.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

from tests.card_samples import card_png, charx, png_with_text, v2_card, v3_card

MB = 1024 * 1024
TRAVERSAL = ("../../../tmp/evil/pwned.png", "/etc/evil.png", "C:\\evil\\pwned.png", "assets/..\\..\\evil.png",
             "assets/./../../evil.png")


def zeros_charx(folder: Path, megabytes: int = 200, name: str = "assets/other/zero.bin") -> Path:
    """A V3 CHARX holding `megabytes` of zeros: about 1,000:1 compressed, written without holding them."""
    path = folder / f"zeros-{megabytes}mb.charx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(v3_card()))
        with archive.open(_deflated(name), "w") as out:
            for _ in range(megabytes):
                out.write(bytes(MB))
    return path


def spaces_card_charx(folder: Path, megabytes: int = 1024) -> Path:
    """A CHARX whose card.json is a valid card after `megabytes` of spaces (a JSON bomb in a zip)."""
    path = folder / "card-json-bomb.charx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(_deflated("card.json"), "w") as out:
            for _ in range(megabytes):
                out.write(b" " * MB)
            out.write(json.dumps(v3_card()).encode())
    return path


def traversal_charx(folder: Path) -> Path:
    """A CHARX whose assets are named to climb out of any folder they are extracted into."""
    card = v3_card()
    card["data"]["assets"] = [{"type": "icon" if i == 0 else "emotion", "uri": f"embeded://{name}", "name": f"a{i}",
                               "ext": "png"} for i, name in enumerate(TRAVERSAL)]
    path = folder / "traversal.charx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("card.json", json.dumps(card))
        for name in TRAVERSAL:
            archive.writestr(zipfile.ZipInfo(name), png_with_text({}))
    return path


def many_entries_charx(folder: Path, count: int = 100_000) -> Path:
    path = folder / f"entries-{count}.charx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("card.json", json.dumps(v3_card()))
        for i in range(count):
            archive.writestr(f"e/{i}", b"")
    return path


def huge_chunk_png(folder: Path) -> Path:
    """A card PNG with a text chunk that claims 4 GB (the file is a few hundred bytes)."""
    blob = card_png(v2_card())
    iend = blob.rindex(b"IEND") - 4
    kind_data = b"tEXt" + b"chara\0"
    chunk = struct.pack(">I", 0xFFFFFFF0) + kind_data + struct.pack(">I", zlib.crc32(kind_data))
    path = folder / "huge-chunk.png"
    path.write_bytes(blob[:iend] + chunk + blob[iend:])
    return path


def deep_json(folder: Path, depth: int = 100_000) -> Path:
    path = folder / "deep.json"
    path.write_text('{"spec": "chara_card_v2", "data": {"name": "x", "extensions": ' + "[" * depth + "]" * depth + "}}")
    return path


def many_lore_json(folder: Path, count: int = 5000) -> Path:
    """A card with `count` lorebook entries (each pair of entries alike, as copied entries are)."""
    card = v2_card()
    card["data"]["character_book"]["entries"] = [{"keys": [f"k{i // 2}"], "content": f"Entry {i // 2}.",
                                                   "extensions": {}, "enabled": True, "insertion_order": i}
                                                  for i in range(count)]
    path = folder / f"lore-{count}.json"
    path.write_text(json.dumps(card))
    return path


def plain_json(folder: Path) -> Path:
    path = folder / "plain.json"
    path.write_text(json.dumps(v2_card()))
    return path


def plain_charx(folder: Path) -> Path:
    path = folder / "plain.charx"
    path.write_bytes(charx(v3_card(), icon=png_with_text({})))
    return path


def _deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


HOSTILE = {
    "plain card (V2 JSON)": plain_json,
    "plain CHARX": plain_charx,
    "CHARX, 200 MB zero-filled asset": zeros_charx,
    "CHARX, card.json after 1 GB of spaces": spaces_card_charx,
    "CHARX, 100,000 entries": many_entries_charx,
    "JSON, 5,000 lorebook entries": many_lore_json,
    "CHARX, traversal entry names": traversal_charx,
    "PNG, text chunk claiming 4 GB": huge_chunk_png,
    "JSON, nested 100,000 deep": deep_json,
}
