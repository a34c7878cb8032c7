"""Many characters at once: load a set, give each a stable id, find who is confusable with whom.

A set is either a folder of profiles / cards (each read by `rolecraft.cards.load_character`), or a
JSONL file of records in the Ditto `meta` shape — `label`, `description`, `aliases`, `claims` /
`trans_claims`, `lang`, `summary`, `wiki` — at the top level or under `meta` (so a WikiRoleEval file
also reads as a character set). The raw record is kept in `Character.source.card`, which is where
`aliases` and `lang` are read from later.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rolecraft.character import Character, Source
from rolecraft.encoder import embed
from rolecraft.errors import RolecraftError
from rolecraft.profile import split_paragraphs

CHARACTER_FILES = (".txt", ".md", ".json", ".png", ".charx")
_WIKIDATA_ID = re.compile(r"^[PQ]\d+$")


def load_characters(path: str | Path) -> list[Character]:
    """Every character in a folder (sorted by file name) or in a JSONL file (in line order)."""
    path = Path(path)
    if path.is_dir():
        return _load_folder(path)
    if path.is_file():
        return _load_records(path)
    raise RolecraftError(f"{path}: no such file or folder", "give a folder of profiles/cards or a JSONL of records")


def _load_folder(folder: Path) -> list[Character]:
    from rolecraft.cards import load_character

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in CHARACTER_FILES and not f.name.startswith("."))
    if not files:
        raise RolecraftError(
            f"{folder}: no character files in this folder",
            f"put profiles or cards ({', '.join(CHARACTER_FILES)}) in it, or give a JSONL of records",
        )
    return [load_character(f) for f in files]


def _load_records(path: Path) -> list[Character]:
    characters = []
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise RolecraftError(f"{where} is not valid JSON ({e.msg})", "one JSON object per line") from None
            characters.append(character_from_record(record, where))
    if not characters:
        raise RolecraftError(f"{path}: no records", "one JSON object per line with at least `label`")
    return characters


def character_from_record(record: Any, where: str = "record") -> Character:
    """A Ditto `meta` record (or a WikiRoleEval line holding one under `meta`) as a Character."""
    if isinstance(record, dict) and isinstance(record.get("meta"), dict):
        record = record["meta"]
    if not isinstance(record, dict) or not str(record.get("label") or record.get("name") or "").strip():
        raise RolecraftError(
            f"{where}: not a character record (no `label`)",
            "give each line `label`, `description` and `summary` / `wiki` text (the Ditto meta shape)",
        )
    label = str(record.get("label") or record.get("name")).strip()
    paragraphs = split_paragraphs(str(record.get("summary") or ""))
    wiki = record.get("wiki")
    wiki_text = str(wiki.get("content") or "") if isinstance(wiki, dict) else str(wiki or "")
    # A Wikipedia article usually opens with the summary: keep each paragraph once.
    paragraphs += [p for p in split_paragraphs(wiki_text) if p not in paragraphs]
    description = str(record.get("description") or "").strip()
    if not paragraphs and not description:
        raise RolecraftError(f"{where}: the record for {label} has no text",
                             "give it a `description`, `summary` or `wiki` text")
    return Character(
        full_name=label,
        paragraphs=paragraphs or [description],
        statements=_claims(record),
        description=description or paragraphs[0],
        source=Source(kind="records", path=where, container="jsonl", card=record),
    )


def _claims(record: dict[str, Any]) -> list[str]:
    """Wikidata claims as `property: value` facts; raw P/Q ids say nothing and are skipped."""
    claims = record.get("trans_claims") or record.get("claims") or []
    facts = []
    for claim in claims if isinstance(claims, list) else []:
        parts = [str(p).strip() for p in (claim if isinstance(claim, list) else [claim]) if str(p).strip()]
        if parts and not all(_WIKIDATA_ID.match(p) for p in parts):
            facts.append(": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0])
    return facts


def aliases(character: Character) -> list[str]:
    """Other names a record gives the character (Ditto `aliases`); cards and profiles have none."""
    card = character.source.card or {}
    found = card.get("aliases") if character.source.kind == "records" else None
    return [str(a) for a in found] if isinstance(found, list) else []


def language(character: Character) -> str:
    card = character.source.card or {}
    return str(card.get("lang") or "en") if character.source.kind == "records" else "en"


def unique_ids(characters: Sequence[Character]) -> list[str]:
    """Slugs, with `-2`, `-3`… appended to repeats, so every member of a set has its own id."""
    ids, seen = [], {}
    for c in characters:
        seen[c.slug] = seen.get(c.slug, 0) + 1
        ids.append(c.slug if seen[c.slug] == 1 else f"{c.slug}-{seen[c.slug]}")
    return ids


def _names(character: Character) -> set[str]:
    return {" ".join(n.lower().split()) for n in [character.full_name, *aliases(character)] if n.strip()}


def neighbours(
    characters: Sequence[Character], k: int, duplicate_above: float = 0.95, encoder: str | Path | None = None
) -> list[list[int]]:
    """For each character, the indices of the `k` most similar *other* characters, nearest first.

    Similarity is the cosine of MiniLM embeddings of the short descriptions: a neighbour is
    plausibly confusable (same trade, same world) yet a different person. Near-duplicates — the same
    name or alias, or descriptions more similar than `duplicate_above` — are excluded, because an
    alias of oneself is not knowledge one should reject.
    """
    if len(characters) < 2 or k < 1:
        return [[] for _ in characters]
    import torch

    vectors = torch.from_numpy(embed([c.expand(c.description or c.full_name)[:1000] for c in characters], encoder))
    similarity = vectors @ vectors.T
    similarity[similarity >= duplicate_above] = -torch.inf  # also the diagonal: oneself
    sharing = defaultdict(list)
    for i, character in enumerate(characters):
        for name in _names(character):
            sharing[name].append(i)
    for group in (torch.tensor(g) for g in sharing.values() if len(g) > 1):
        similarity[group[:, None], group[None, :]] = -torch.inf
    values, order = similarity.topk(min(k, len(characters) - 1), dim=1)
    return [[j for j, v in zip(row, vals) if v > -torch.inf] for row, vals in zip(order.tolist(), values.tolist())]


