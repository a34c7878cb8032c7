"""A discriminator's tokenizer, read with the `tokenizers` library itself.

transformers' tokenizer classes import torch (2.9 s on the project's machine), which scoring on ONNX
Runtime otherwise never needs: through `tokenizers`, `rolecraft chat` and `rolecraft serve` with a
trained workspace start in half the time. It is the same tokenizer (transformers' fast tokenizers
wrap this library) called the same way, so the ids are the same (tests/test_discriminator_engines.py
checks them against transformers). A folder without a `tokenizer.json` is read by transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class PairTokenizer:
    """Text pairs → input_ids, token_type_ids and attention_mask, as transformers' fast tokenizer
    gives them for `tokenizer(firsts, seconds, truncation=True, max_length=n)`."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend.no_padding()
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = (self.backend.token_to_id(pad) if pad else None) or 0

    def __call__(self, firsts: Sequence[str], seconds: Sequence[str], truncation: bool = True,
                 max_length: int = 512) -> dict[str, list[list[int]]]:
        if truncation:
            self.backend.enable_truncation(max_length, strategy="longest_first")
        else:
            self.backend.no_truncation()
        return as_inputs(self.backend.encode_batch(list(zip(firsts, seconds))))


def as_inputs(encodings) -> dict[str, list[list[int]]]:
    """`tokenizers` encodings as the model inputs transformers' fast tokenizer names (unpadded rows)."""
    return {
        "input_ids": [e.ids for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
    }


def load_tokenizer(folder: Path):
    """The folder's tokenizer: a PairTokenizer where a fast tokenizer was saved, else transformers'."""
    if (folder / "tokenizer.json").exists():
        return PairTokenizer(folder)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def padded_batch(encoded, rows: Sequence[int], pad_token_id: int) -> dict[str, np.ndarray]:
    """The chosen rows of a tokenizer's output as one right-padded batch of int64 arrays."""
    batch = {}
    for name in encoded.keys():
        chosen = [encoded[name][i] for i in rows]
        array = np.full((len(chosen), max(map(len, chosen))), pad_token_id if name == "input_ids" else 0, dtype=np.int64)
        for r, row in enumerate(chosen):
            array[r, : len(row)] = row
        batch[name] = array
    return batch


def by_length(encoded, size: int) -> list[list[int]]:
    """Row indices in batches of `size`, shortest rows first, so a batch pads almost nothing."""
    order = sorted(range(len(encoded["input_ids"])), key=lambda i: len(encoded["input_ids"][i]))
    return [order[start : start + size] for start in range(0, len(order), size)]
