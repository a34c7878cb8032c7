"""The header of a GGUF file: its integer and string metadata and its tensors' names.

gguf.GGUFReader builds a view of every metadata item, which takes 3 s for the embedded model's 98,000
vocabulary strings; converting an adapter (rolecraft.llm.gguf_lora) needs only the model's shape and
its tensors' names, read here while skipping the vocabulary (0.2 s).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from rolecraft.errors import RolecraftError

MAGIC = b"GGUF"
# GGUF metadata value types with a fixed size (uint8 … float64), by type id; 8 = string, 9 = array.
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
INTEGER = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 10: "Q", 11: "q"}


@dataclass(frozen=True)
class Header:
    """A GGUF file's integer and string metadata (arrays skipped) and its tensors' names."""

    integers: dict[str, int]
    strings: dict[str, str]
    tensors: list[str]


def read_header(path: Path) -> Header:
    """The header of the GGUF file at `path` (version 2 or later)."""
    with open(path, "rb") as f:
        data = f.read(1 << 20)
        pos = 0

        def take(n: int) -> bytes:
            nonlocal data, pos
            while pos + n > len(data):
                more = f.read(max(1 << 20, n))
                if not more:
                    raise RolecraftError(f"{path} ends inside its GGUF header", "pass a complete GGUF model file")
                data = data[pos:] + more
                pos = 0
            chunk = data[pos : pos + n]
            pos += n
            return chunk

        def number(fmt: str) -> int:
            return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

        def string() -> str:
            return take(number("Q")).decode("utf-8", "replace")

        def skip(kind: int, count: int = 1) -> None:
            if kind in FIXED:
                take(FIXED[kind] * count)
            elif kind == 8:
                for _ in range(count):
                    take(number("Q"))
            elif kind == 9:
                for _ in range(count):
                    item, n = number("I"), number("Q")
                    skip(item, n)
            else:
                raise RolecraftError(f"{path} has a metadata value of unknown type {kind}", "pass a GGUF v3 model file")

        if take(4) != MAGIC:
            raise RolecraftError(f"{path} is not a GGUF file", "pass a GGUF model file")
        version, n_tensors, n_kv = number("I"), number("Q"), number("Q")
        if version < 2:
            raise RolecraftError(f"{path} is GGUF version {version}", "convert it with a current llama.cpp")
        integers: dict[str, int] = {}
        strings: dict[str, str] = {}
        for _ in range(n_kv):
            key, kind = string(), number("I")
            if kind in INTEGER:
                integers[key] = number(INTEGER[kind])
            elif kind == 8:
                strings[key] = string()
            else:
                skip(kind)
        tensors = []
        for _ in range(n_tensors):
            tensors.append(string())
            take(8 * number("I") + 4 + 8)  # its dimensions, type and offset
    return Header(integers, strings, tensors)


def model_facts(header: Header) -> tuple[str, dict[str, int]]:
    """(architecture, block count and head counts): what maps and permutes an adapter's matrices."""
    arch = header.strings.get("general.architecture", "")
    keys = {"block_count": "block_count", "head_count": "attention.head_count", "head_count_kv": "attention.head_count_kv"}
    missing = [f"{arch}.{key}" for key in keys.values() if f"{arch}.{key}" not in header.integers]
    if missing:
        raise RolecraftError(f"the GGUF header has no {', '.join(missing)}", "pass a transformer model's GGUF file")
    return arch, {name: header.integers[f"{arch}.{key}"] for name, key in keys.items()}
