"""The files cards travel in: card JSON, PNG `tEXt` chunks (`chara` = V2, `ccv3` = V3) and CHARX zips.

These files come from strangers, so every reader is bounded: JSON at most MAX_DEPTH levels deep (lone
UTF-16 surrogates, which no UTF-8 file can hold, become U+FFFD); PNG chunks are walked by their
lengths without copying the image; a CHARX is refused when its entries would inflate past
MAX_INFLATED in all or look like a decompression bomb (over BOMB_RATIO:1 and over 1 MiB), and its
card.json past MAX_CARD_JSON. Assets are copied to an exported CHARX in pieces, under names that
cannot leave the folder they are extracted into.

PNG chunks are read and written directly (not through an image decoder) so that the image and every
other chunk come back byte for byte, large card chunks are never truncated, and a damaged file is
caught by its lengths and CRCs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from rolecraft.errors import RolecraftError, shown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
CARD_KEYWORDS = ("ccv3", "chara")  # in order of preference: ccv3 wins when both are present
CHARX_CARD = "card.json"
EMBEDDED = "embeded://"  # sic: the CHARX spec spells it this way
MAX_DEPTH = 100  # nesting levels of card JSON; real cards use under 10
MAX_CARD_JSON = 64 * 2**20
MAX_INFLATED = 2 * 2**30
BOMB_RATIO = 100
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError,
               struct.error, OverflowError, KeyError)  # what zipfile raises on damaged or exotic archives


def parse_card_json(raw: bytes | str, where: str) -> Any:
    try:
        value = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except UnicodeDecodeError:
        raise RolecraftError(f"{where}: the card JSON is not valid UTF-8", "re-save the card as UTF-8") from None
    except json.JSONDecodeError as e:
        problem = f"{e.msg} at line {e.lineno}, column {e.colno}"
    except _NotJSON as e:  # NaN, Infinity, 1e999: JavaScript readers cannot take them
        problem = str(e)
    except RecursionError:
        problem = "nested too deeply"
    except ValueError:  # an integer past Python's digit limit
        problem = "an integer with too many digits"
    else:
        return _bounded(value, where)
    raise RolecraftError(f"{where}: invalid card JSON ({problem})",
                         "fix the JSON or export the card again from its editor")


class _NotJSON(ValueError):
    pass


def _not_json(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise _NotJSON(f"the number {literal[:20]} is out of range")
    return value


def _bounded(value: Any, where: str) -> Any:
    """`value` with lone surrogates replaced, or a RolecraftError when it nests past MAX_DEPTH."""
    root = [value]
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RolecraftError(f"{where}: the card JSON nests deeper than {MAX_DEPTH} levels",
                                 "no real card nests this deep; export the card again from its editor")
        if isinstance(node, dict):
            if any(_SURROGATE.search(k) for k in node):
                fixed = {_SURROGATE.sub("\ufffd", k): v for k, v in node.items()}
                node.clear()
                node.update(fixed)
            items = node.items()
        else:
            items = enumerate(node)
        for key, item in list(items):
            if isinstance(item, str):
                if _SURROGATE.search(item):
                    node[key] = _SURROGATE.sub("\ufffd", item)
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    return root[0]


# --- PNG ---------------------------------------------------------------------------------------

def png_chunks(blob: bytes, where: str) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of every chunk up to IEND; a RolecraftError if the PNG is truncated or corrupt."""
    if not blob.startswith(PNG_SIGNATURE):
        raise RolecraftError(f"{where}: not a PNG image", "give a PNG character card")
    pos, kind = len(PNG_SIGNATURE), b""
    while kind != b"IEND":
        if pos + 12 > len(blob):
            raise RolecraftError(f"{where}: the PNG is truncated", "download or export the card image again")
        length, kind = struct.unpack(">I4s", blob[pos : pos + 8])
        end = pos + 12 + length
        if end > len(blob):
            raise RolecraftError(f"{where}: the PNG is truncated", "download or export the card image again")
        data = blob[pos + 8 : end - 4]
        if zlib.crc32(kind + data) != struct.unpack(">I", blob[end - 4 : end])[0]:
            raise RolecraftError(f"{where}: the PNG is corrupt (bad checksum in a {shown(kind)} chunk)",
                                 "download or export the card image again")
        yield kind, data
        pos = end


def read_png_card(blob: bytes, where: str) -> Any:
    """The card JSON inside a PNG: from `ccv3` when present, else from `chara`."""
    texts = {}
    for kind, data in png_chunks(blob, where):
        if kind == b"tEXt":
            keyword, _, value = data.partition(b"\0")
            texts.setdefault(keyword.decode("latin-1").lower(), value)
    keyword = next((k for k in CARD_KEYWORDS if k in texts), None)
    if keyword is None:
        raise RolecraftError(f"{where}: the PNG holds no character card (no `chara` or `ccv3` text chunk)",
                             "export the card as PNG from your front end, or give the card JSON")
    value = b"".join(texts[keyword].split())
    try:
        raw = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except binascii.Error:
        raise RolecraftError(f"{where}: the PNG's `{keyword}` chunk is not valid base64",
                             "export the card again; the image's card data is damaged") from None
    return parse_card_json(raw, f"{where} (`{keyword}` chunk)")


def write_png_card(image: bytes, cards: dict[str, dict[str, Any]]) -> bytes:
    """`image` with its card chunks replaced by `cards` (keyword -> card), every other chunk kept."""
    chunks = [(k, d) for k, d in png_chunks(image, "the card image") if not _is_card_chunk(k, d)]
    text = [(b"tEXt", key.encode("latin-1") + b"\0" + _b64_json(card)) for key, card in cards.items()]
    chunks[-1:-1] = text  # before IEND
    return PNG_SIGNATURE + b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                                    for k, d in chunks)


def placeholder_png() -> bytes:
    """A small plain portrait image for cards that had none."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 96), (96, 110, 140)).save(buffer, format="PNG")
    return buffer.getvalue()


def _is_card_chunk(kind: bytes, data: bytes) -> bool:
    return kind == b"tEXt" and data.partition(b"\0")[0].decode("latin-1").lower() in CARD_KEYWORDS


def _b64_json(card: dict[str, Any]) -> bytes:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))


# --- CHARX -------------------------------------------------------------------------------------

@contextlib.contextmanager
def _damaged(where: str) -> Iterator[None]:
    """Whatever zipfile raises on a damaged or exotic archive, as one RolecraftError."""
    try:
        yield
    except _ZIP_ERRORS:
        raise RolecraftError(f"{where}: the CHARX (zip) file is corrupt or uses an unsupported feature "
                             "(encryption, an unknown compression)", "export the card again") from None


def open_charx(blob: bytes, where: str) -> zipfile.ZipFile:
    """The archive, once its entries are known to inflate within bounds."""
    with _damaged(where):
        archive = zipfile.ZipFile(io.BytesIO(blob))
    entries = archive.infolist()
    for info in entries:
        if info.file_size > 2**20 and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise RolecraftError(f"{where}: {shown(info.filename)} would inflate from {info.compress_size:,} to "
                                 f"{info.file_size:,} bytes, a decompression bomb",
                                 "do not use this file; get the card from a source you trust")
    if sum(info.file_size for info in entries) > MAX_INFLATED:
        raise RolecraftError(f"{where}: the CHARX would inflate to more than {MAX_INFLATED:,} bytes",
                             "remove large assets from the card, or give the card JSON or PNG instead")
    return archive


def read_charx_card(blob: bytes, where: str) -> Any:
    archive = open_charx(blob, where)
    info = _card_entry(archive)
    if info is None:
        raise RolecraftError(f"{where}: the CHARX archive has no {CHARX_CARD}",
                             "a CHARX file is a zip with the V3 card at card.json; export it again")
    if info.file_size > MAX_CARD_JSON:
        raise RolecraftError(f"{where}: {CHARX_CARD} is {info.file_size:,} bytes, more than any card "
                             f"({MAX_CARD_JSON:,} at most)", "export the card again")
    with _damaged(where):
        raw = archive.read(info)
    return parse_card_json(raw, f"{where} ({CHARX_CARD})")


def charx_icon(blob: bytes, card: dict[str, Any]) -> bytes | None:
    """The card's embedded PNG icon, if it has one (used as the image of a PNG export)."""
    archive = open_charx(blob, "CHARX")
    names = set(archive.namelist())
    for asset in _assets(card):
        member = asset["uri"].removeprefix(EMBEDDED)
        if asset.get("type") == "icon" and asset["uri"].startswith(EMBEDDED) and member in names:
            with _damaged("CHARX"):
                icon = archive.read(member)
            if icon.startswith(PNG_SIGNATURE):
                return icon
    return None


def write_charx(card: dict[str, Any], original: bytes | None = None, where: str = "CHARX") -> bytes:
    """A CHARX zip holding `card` and every asset of the `original` archive, under safe names (the
    card's `embeded://` links follow a renamed asset). An asset the card links but the archive lacks
    is a RolecraftError: the CHARX would not be what the card promises."""
    source = open_charx(original, where) if original is not None else None
    copies: dict[str, zipfile.ZipInfo] = {}  # safe name -> source entry
    card_entry = _card_entry(source) if source else None
    for info in source.infolist() if source else []:
        # (not ZipInfo.is_dir: it fails on an empty name)
        if (name := safe_name(info.filename)) and not info.filename.endswith("/") and info is not card_entry:
            copies[_unused(name, copies)] = info
    renamed = {info.filename: name for name, info in copies.items() if info.filename != name}
    card = _relinked(card, renamed)
    links = [a["uri"] for a in _assets(card) if a["uri"].startswith(EMBEDDED)]
    missing = [uri for uri in links if uri.removeprefix(EMBEDDED) not in copies]
    if missing:
        raise RolecraftError(f"{where}: the card links {len(missing)} embedded asset(s) that no CHARX holds here: "
                             f"{', '.join(shown(uri, 40) for uri in missing[:3])}",
                             "export from the .charx file that holds them, or write a .json or .png card")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(CHARX_CARD, json.dumps(card, ensure_ascii=False, indent=2))
        for name, info in copies.items():
            target = zipfile.ZipInfo(name, info.date_time)
            target.compress_type = zipfile.ZIP_DEFLATED
            target.external_attr = 0o644 << 16  # a plain file: never the source's symlink or device mode
            with _damaged(where), source.open(info) as src, out.open(target, "w") as dst:
                shutil.copyfileobj(src, dst, 2**20)
    return buffer.getvalue()


def safe_name(name: str) -> str:
    """An archive entry name that stays inside the folder it is extracted into ('' if none is left):
    backslashes as separators, no drive, no absolute path, no `.` or `..`, no control characters."""
    parts = re.sub(r"^[A-Za-z]:", "", name.replace("\\", "/")).split("/")
    parts = ("".join(c for c in part if c.isprintable()) for part in parts)
    return "/".join(part for part in parts if part not in ("", ".", ".."))


def _unused(name: str, taken: dict[str, Any]) -> str:
    """`name`, or `name-2.ext`, `name-3.ext` ... when cleaning gave two entries (or card.json) one name."""
    stem, dot, ext = name.rpartition(".") if "." in name.rsplit("/", 1)[-1] else (name, "", "")
    n, unused = 1, name
    while unused == CHARX_CARD or unused in taken:
        n += 1
        unused = f"{stem}-{n}{dot}{ext}"
    return unused


def _card_entry(archive: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    """card.json at the root, else (as SillyTavern accepts) the first card.json in a subfolder."""
    entries = [i for i in archive.infolist() if not i.filename.startswith("__MACOSX/")]
    root = next((i for i in entries if i.filename == CHARX_CARD), None)
    return root or next((i for i in entries if i.filename.rsplit("/", 1)[-1] == CHARX_CARD), None)


def _assets(card: dict[str, Any]) -> list[dict[str, Any]]:
    data = card.get("data") if isinstance(card.get("data"), dict) else {}
    assets = data.get("assets") if isinstance(data.get("assets"), list) else []
    return [a for a in assets if isinstance(a, dict) and isinstance(a.get("uri"), str)]


def _relinked(card: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    """`card` with each `embeded://` asset link pointing at its entry's new name."""
    moves = {f"{EMBEDDED}{old}": f"{EMBEDDED}{new}" for old, new in renamed.items()}
    if not moves or not any(a["uri"] in moves for a in _assets(card)):
        return card
    data = dict(card["data"])
    data["assets"] = [a | {"uri": moves[a["uri"]]} if isinstance(a, dict) and a.get("uri") in moves else a
                      for a in data["assets"]]
    return card | {"data": data}
