"""The card fuzzing harness: a target per reader, its seed inputs, and the rule every outcome keeps.

Every input ends in a loaded Character or a one-line RolecraftError. A loaded character must export
as JSON, PNG and CHARX cards that pass strict validation (tests/card_schema.py), hold only safe
archive names, load again, and leave nothing in the work folder but the outputs; a lorebook must
activate over a chat. Anything else raises a `Violation`, classed by kind and place so that one
fault met a thousand times counts once.

Used by tests/test_card_fuzz.py (short deterministic runs) and bench/fuzz_cards.py (long atheris runs).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import tempfile
import traceback
import zipfile
import zlib
from pathlib import Path

from rolecraft.cards import export_card, load_character
from rolecraft.errors import RolecraftError
from tests.card_bombs import huge_chunk_png
from tests.card_samples import SHARED_PROFILES, charx, hostile_cards, loose_book, st_v1_card, v1_card, v2_card, v3_card
from tests.card_schema import card_problems, unsafe_names

READERS = ("profile", "json", "png", "charx", "lorebook")
CHAT = [
    {"role": "user", "content": "Tell me about the lighthouse and your brother."},
    {"role": "assistant", "content": "The lamp was lit in 1820; Tobin left on the Kestrel."},
    {"role": "user", "content": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"},
]
_EXPORTS = (("out.json", "v2"), ("out.png", "v3"), ("out.charx", "v3"))
_BOOK = "<the fuzzed lorebook>"
_BYTES_REPR = re.compile(r"(?<![\w'\"])b'[^']*'|(?<![\w'\"])b\"[^\"]*\"")  # b'tEXt' in a message


class Violation(Exception):
    """An outcome the readers must never produce: `kind` and `where` class it, `detail` explains it."""

    def __init__(self, kind: str, where: str, detail: str):
        super().__init__(f"{kind} at {where}: {detail}")
        self.kind, self.where, self.detail = kind, where, detail

    @property
    def key(self) -> str:
        return f"{self.kind}@{self.where}"


def check(reader: str, data: bytes, workdir: Path) -> str:
    """Run one fuzz input through `reader` inside the empty folder `workdir`: 'loaded' or 'refused'."""
    name, blob = arrange(reader, data)
    for stale in workdir.iterdir():
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    source = workdir / name
    source.write_bytes(blob)
    try:
        character = _guarded("load", load_character, source)
    except RolecraftError as e:
        _one_line(e, "load")
        return "refused"
    written = {name}
    for out, version in _EXPORTS:
        try:
            path = _guarded("export", export_card, character, workdir / out, version)
        except RolecraftError as e:
            _one_line(e, "export")
            continue
        written.add(out)
        _exported(path, version)
    if reader == "lorebook":
        _guarded("lorebook", _activate, character)
    stray = {p.name for p in workdir.iterdir()} - written
    if stray:
        raise Violation("stray-file", "export", ", ".join(sorted(stray)))
    return "loaded"


def arrange(reader: str, data: bytes) -> tuple[str, bytes]:
    """The file a reader sees for fuzz `data`: the bytes as they are, or built around them."""
    if reader == "png":
        return "card.png", fix_png_crcs(data)
    if reader == "charx":
        return "card.charx", charx_from_fuzz(data)
    if reader == "lorebook":  # the book's JSON text inside a card, so the real loader parses it
        card = v2_card()
        card["data"]["character_book"] = _BOOK
        return "card.json", json.dumps(card).encode().replace(json.dumps(_BOOK).encode(), data)
    return ("wiki_Fuzz.txt" if reader == "profile" else "card.json"), data


def seeds(reader: str) -> list[bytes]:
    """Real and crafted inputs each run starts from."""
    cards = [v1_card(), v2_card(), v3_card(), st_v1_card(), *hostile_cards()]
    if reader == "profile":
        texts = [p.read_bytes() for p in SHARED_PROFILES if p.exists()]
        return texts + [b"# Ada Lovelace\n\nAda wrote the first program.\n\nShe met Babbage.",
                        "名称：爱丽丝·卡特。\n年龄：26岁。".encode(), b"Name: " + b" " * 3000 + b"x",
                        b"{{char}} keeps a lighthouse.\n\n<BOT> hates fog.", b'[Character("Sera")]']
    if reader == "json":  # cards, a saved Character record (`rolecraft show --json`), and JSON at the limits
        from rolecraft.cards.convert import card_to_character

        record = card_to_character(v3_card()).model_dump_json().encode()
        limits = [b"[" * 5000, b'{"name": "x", "v": 1' + b"0" * 5000 + b"}"]
        return [json.dumps(c).encode() for c in cards] + [record, *limits]
    if reader == "png":
        from tests.card_samples import b64, card_png, png_with_text

        with tempfile.TemporaryDirectory() as folder:
            huge = huge_chunk_png(Path(folder)).read_bytes()
        both = png_with_text({"chara": b64(v2_card()), "ccv3": b64(v3_card())})
        return [card_png(v2_card()), card_png(v3_card()), both, huge]
    if reader == "charx":
        traversal = v3_card()
        traversal["data"]["assets"] = [{"type": "icon", "uri": "embeded://../../../tmp/evil/pwned.png", "name": "x",
                                        "ext": "png"}]
        return [b"\x01" + charx(v3_card(), icon=b"\x89PNG\r\n\x1a\n"),
                fuzz_charx([("card.json", json.dumps(v3_card()).encode())]),
                fuzz_charx([("Sera/card.json", json.dumps(v3_card()).encode()), ("Sera/assets/a.png", b"x" * 40)]),
                fuzz_charx([("card.json", json.dumps(traversal).encode()), ("../../../tmp/evil/pwned.png", b"pwned")]),
                fuzz_charx([("card.json", json.dumps(v3_card()).encode()), ("assets/zero.bin", b"\0" * 200_000)])]
    return [json.dumps(book).encode() for book in (v2_card()["data"]["character_book"], loose_book())]


# --- containers built from fuzz bytes ----------------------------------------------------------

def fix_png_crcs(data: bytes) -> bytes:
    """`data` with every whole chunk's CRC made right (unless the first byte is odd), so mutations
    reach the chunks' contents instead of stopping at the checksum."""
    if not data or data[0] & 1 or not data.startswith(b"\x89PNG"):
        return data
    out, pos = bytearray(data), 8
    while pos + 12 <= len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 12 + length
        if end > len(out):
            break
        out[end - 4 : end] = struct.pack(">I", zlib.crc32(out[pos + 4 : end - 4]))
        pos = end
    return bytes(out)


def fuzz_charx(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """The fuzz encoding of a CHARX built from entries: 0x00, then per entry a name length byte,
    the name, a method byte, a 3-byte size and the data (see charx_from_fuzz)."""
    out = bytearray(b"\x00")
    for name, blob in entries:
        raw = name.encode()
        out += bytes([len(raw)]) + raw + bytes([method]) + len(blob).to_bytes(3, "big") + blob
    return bytes(out)


def charx_from_fuzz(data: bytes) -> bytes:
    """A zip archive: `data` itself after a first byte 0x01 (the zip reader's own robustness), else
    the archive that fuzz_charx's encoding describes (names, methods and sizes under the fuzzer's
    control, so traversal names, subfolders and duplicate entries come up)."""
    if data[:1] == b"\x01":
        return data[1:]
    buffer, pos = io.BytesIO(), 1
    with zipfile.ZipFile(buffer, "w") as archive:
        while pos < len(data):
            size = data[pos]
            name = data[pos + 1 : pos + 1 + size].decode("utf-8", "replace") or "_"
            pos += 1 + size
            method = zipfile.ZIP_DEFLATED if data[pos : pos + 1] != b"\x00" else zipfile.ZIP_STORED
            length = int.from_bytes(data[pos + 1 : pos + 4], "big")
            blob, pos = data[pos + 4 : pos + 4 + length], pos + 4 + length
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), blob, compress_type=method)
    return buffer.getvalue()


# --- the rules -----------------------------------------------------------------------------------

def _guarded(stage: str, fn, *args):
    """`fn(*args)`; a RolecraftError passes, any other exception becomes a Violation named by the
    innermost frame of rolecraft's own code (else the innermost frame)."""
    try:
        return fn(*args)
    except RolecraftError:
        raise
    except Exception as e:  # noqa: BLE001 - classifying every other exception is the point
        frames = traceback.extract_tb(e.__traceback__)
        ours = [f for f in frames if "/rolecraft/" in f.filename] or frames
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else stage
        raise Violation(f"{stage}:{type(e).__name__}", where, str(e)[:200]) from e


def _one_line(error: RolecraftError, stage: str) -> None:
    text = str(error)
    if "\n" in text or "\r" in text or len(text) > 600 or _BYTES_REPR.search(text):
        raise Violation(f"{stage}:bad-message", "RolecraftError", text[:200])


def _exported(path: Path, version: str) -> None:
    if path.suffix == ".charx":
        names = zipfile.ZipFile(path).namelist()
        if bad := unsafe_names(names):
            raise Violation("unsafe-entry", "export", repr(bad[:3]))
    card = _guarded("reload", load_character, path).source.card
    if problems := card_problems(card, version):
        raise Violation("invalid-card", problems[0].split(":")[0], "; ".join(problems[:3]))


def _activate(character) -> None:
    try:
        from rolecraft.agent.lorebook import Lorebook
    except ImportError:  # a rolecraft from before lorebook activation (bench/fuzz_cards.py --baseline-src)
        return
    from rolecraft.llm.base import as_messages

    book = Lorebook.from_character(character)
    if book is not None:
        book.activate(as_messages(CHAT))
