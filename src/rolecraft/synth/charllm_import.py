"""Import Character-LLM's released data as Experiences, so users can train on it directly.

Two shapes exist (huggingface.co/datasets/fnlp/character-llm-data):

- `generated/generated_agent_dialogue_<Name>.json` (and `..._hallucination_<Name>.json`, the protective
  scripts): a JSON list of `{setting: [script background paragraphs], location, background: scene
  description, dialogue: [{role, action: "(speaking)" | "(thinking)" | "", content}], source}`;
- `prompted/prompted_agent_dialogue_<Name>.jsonl`: one `{prompt, output, source}` per line, the meta
  prompt and the rendered turns (`Role (action): content<|eot|>`); protective rows carry the neutral
  location and status, which is how they are recognised.

Imported experiences render (`formats.charllm.experience_text`) byte for byte as the reference
converter (`parser/convert_prompt_data.py`) writes them: speakers keep their names as written
("Ludwig van Beethoven" stays), `Status:` is the first setting paragraph, contents are kept as
written, and in protective scripts every turn is speech (then merged, as consecutive turns of one
speaker are). Where the reference would crash or write an empty row, rolecraft counts instead: a
malformed row, a row with no turns, a malformed turn inside a row (the row is kept without it).
Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.charllm import NEUTRAL_LOCATION, neutral_status, parse_interactions, parse_meta_prompt
from rolecraft.formats.experience import Experience, Turn, as_action
from rolecraft.formats.paper_files import refuse_lfs_pointer
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output
from rolecraft.synth.experiences import ExperiencesStep
from rolecraft.synth.protective import ProtectiveStep

_NAME_IN_FILE = re.compile(r"_([^_/\\]+)\.jsonl?$")


def name_from_file(path: Path) -> str:
    """`prompted_agent_dialogue_Beethoven.jsonl` → `Beethoven` (the short name)."""
    m = _NAME_IN_FILE.search(path.name)
    return m.group(1) if m else path.stem


def _load(path: Path) -> list[Any]:
    if not path.is_file():
        raise RolecraftError(f"{path}: no such file", "pass a generated_*.json or prompted_*.jsonl file")
    refuse_lfs_pointer(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RolecraftError(f"{path}:{e.lineno} is not valid JSON ({e.msg})", "pass the file as released") from None
    if not isinstance(data, list):
        raise RolecraftError(f"{path} does not hold a JSON list", "pass a generated_agent_*.json file")
    return data


def character_for(path: Path) -> Character:
    """A Character named from the file alone: short name from the file name, full name from the first
    meta prompt (prompted files) — enough to import when no profile is at hand."""
    short = name_from_file(path)
    if path.suffix == ".jsonl":
        for row in _load(path):
            meta = parse_meta_prompt(row.get("prompt", "")) if isinstance(row, dict) else None
            if meta:
                return Character(full_name=meta[0], short_name=short)
    return Character(full_name=short, short_name=short)


def _turn(d: Any, protective: bool) -> Turn | None:
    """A dialogue item as a Turn (None when malformed): name and content as written; a protective
    script's turns are all speech, as the reference converter makes them."""
    if not isinstance(d, dict) or not isinstance(d.get("role"), str) or not d["role"].strip():
        return None
    if not isinstance(d.get("content"), str) or not d["content"].strip():
        return None
    action = "speaking" if protective else as_action(str(d.get("action") or ""))
    return Turn(role=d["role"], action=action, content=d["content"])


def import_generated(path: Path, character: Character) -> tuple[list[Experience], Rejections]:
    protective = "hallucination" in path.name
    experiences, rejected = [], Rejections()
    for k, row in enumerate(_load(path)):
        if not isinstance(row, dict) or not isinstance(row.get("dialogue"), list):
            rejected.reject("malformed_row")
            continue
        found = [_turn(d, protective) for d in row["dialogue"]]
        turns = [t for t in found if t is not None]
        for _ in range(len(found) - len(turns)):
            rejected.reject("malformed_turn")
        if not turns:
            rejected.reject("no_turns")
            continue
        setting = row.get("setting") or [""]
        experiences.append(
            Experience(
                id=f"{'p' if protective else 'e'}{k:05d}",
                character=character.name,
                location=str(row.get("location", "")),
                setting=str(row.get("background", "")),
                background=str(setting[0] if isinstance(setting, list) else setting),  # the reference's Status
                dialogue=turns,
                source=str(row.get("source", "")),
                protective=protective,
            )
        )
    return experiences, rejected


def import_prompted(path: Path, character: Character) -> tuple[list[Experience], Rejections]:
    experiences, rejected = [], Rejections()
    for k, row in enumerate(_load(path)):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(row.get("output"), str):
            rejected.reject("malformed_row")
            continue
        meta = parse_meta_prompt(row["prompt"])
        if meta is None:
            rejected.reject("no_meta_prompt")
            continue
        turns, malformed = parse_interactions(row["output"])
        for _ in range(malformed):
            rejected.reject("malformed_turn")
        if not turns:
            rejected.reject("no_turns")
            continue
        _, location, status = meta
        protective = location == NEUTRAL_LOCATION and status == neutral_status(character)
        experiences.append(
            Experience(
                id=f"{'p' if protective else 'e'}{k:05d}",
                character=character.name,
                location="" if protective else location,
                background="" if protective else status,
                dialogue=turns,
                source=str(row.get("source", "")),
                protective=protective,
            )
        )
    return experiences, rejected


def import_charllm(path: Path, character: Character) -> tuple[list[Experience], Rejections]:
    """Experiences (regular and protective) from one released file of either shape."""
    if path.suffix == ".jsonl":
        return import_prompted(path, character)
    return import_generated(path, character)


class ImportExperiencesStep(ExperiencesStep):
    """The regular experiences of released files, in place of the teacher's (same output, same name).
    Rows that cannot be read are counted here, whichever kind they would have been."""

    reads = ()
    roles = ()

    def __init__(self, files: Sequence[Path]):
        super().__init__(None)
        self.files = [Path(f) for f in files]

    def fingerprint(self) -> Any:
        return [[str(f), hashlib.sha256(f.read_bytes()).hexdigest()] for f in self.files if f.is_file()]

    def imported(self, ctx: Context) -> tuple[list[Experience], Rejections]:
        found, rejected = [], Rejections()
        for f in self.files:
            rows, bad = import_charllm(f, ctx.character())
            found += rows
            rejected.update(bad)
        return found, rejected

    async def run(self, ctx: Context) -> Output:
        found, rejected = self.imported(ctx)
        return Output([e for e in found if not e.protective], rejected, {"files": [str(f) for f in self.files]})


class ImportProtectiveStep(ProtectiveStep):
    """The protective experiences of the same released files."""

    reads = ()
    roles = ()

    def __init__(self, files: Sequence[Path]):
        super().__init__(None)
        self.source = ImportExperiencesStep(files)

    def fingerprint(self) -> Any:
        return self.source.fingerprint()

    async def run(self, ctx: Context) -> Output:
        found, _ = self.source.imported(ctx)
        return Output([e for e in found if e.protective], info={"files": [str(f) for f in self.source.files]})
