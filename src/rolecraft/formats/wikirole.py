"""WikiRoleEval's file format (Ditto): one JSON object per line.

    system               the role configuration given to the model as its system prompt
    prompts[]            the user turns, asked in order within one conversation
    role_consist_cands   4 candidate names, one of them the role (identity consistency)
    rejection_labels     per prompt, 1 if it lies outside the role's knowledge (the role should refuse)
    evidence             per prompt, the facts a correct answer uses (a Markdown list, or a list of lines)
    meta                 label (the role's name), description, aliases, claims, lang, summary, wiki
    messages             (results files) the conversation a model had: system, then user / assistant

The three scoring fields may sit at the top level (the published input file) or under `meta` (Ditto's
scoring script); both are read. Writing puts them at the top level and keeps every other field.
Ditto's judged output files (`eval/output/*_output.json`) add per-turn `consist_scores`,
`reject_scores` and `knowledge_scores`; `read_ditto_scores` reads those. Ditto keeps its data in Git
LFS: a pointer file is named as one. This module is the one place that reads or writes the format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.paper_files import refuse_lfs_pointer
from rolecraft.llm.base import Message
from rolecraft.workspace import atomic_write_text

SCORING_FIELDS = ("role_consist_cands", "rejection_labels", "evidence")


class WikiRoleItem(BaseModel):
    model_config = ConfigDict(extra="allow")  # ref_messages, type, source, ... survive a round trip

    system: str
    prompts: list[str] = Field(min_length=1)
    role_consist_cands: list[str] = Field(default_factory=list)
    rejection_labels: list[int] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    messages: list[Message] | None = None  # a model's conversation, in Ditto's results files

    @model_validator(mode="before")
    @classmethod
    def _lift(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        meta = dict(data.get("meta") or {})
        if "rejection labels" in data:  # the spelling in Ditto's README
            data.setdefault("rejection_labels", data.pop("rejection labels"))
        for key in SCORING_FIELDS:
            if key in meta:
                value = meta.pop(key)
                data.setdefault(key, value)
        data["meta"] = meta
        data["evidence"] = [_bullets(e) for e in data.get("evidence") or []]
        return data

    @model_validator(mode="after")
    def _lengths(self) -> WikiRoleItem:
        for key in ("rejection_labels", "evidence"):
            given = getattr(self, key)
            if given and len(given) != len(self.prompts):
                raise ValueError(f"{key} has {len(given)} entries for {len(self.prompts)} prompts")
        if not self.label:
            raise ValueError("meta.label (the role's name) is missing")
        return self

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or "").strip()

    @property
    def lang(self) -> str:
        return str(self.meta.get("lang") or "en")

    def replies(self) -> list[Message]:
        """The recorded conversation without its system message (Ditto scores `messages[1:]`)."""
        messages = list(self.messages or [])
        return messages[1:] if messages and messages[0].role == "system" else messages

    def character(self) -> Character:
        """The role as a Character whose persona prompt is exactly `system` (knowledge comes from weights)."""
        return Character(full_name=self.label, system_prompt=self.system)


def _bullets(evidence: Any) -> str:
    if isinstance(evidence, list):
        return "\n".join(f"- {e}" for e in evidence)
    return str(evidence)


def _lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed object) of a JSONL file; a Git LFS pointer or bad JSON is one clear error."""
    if not path.exists():
        raise RolecraftError(f"{path}: no such file", "pass a WikiRoleEval JSONL file")
    refuse_lfs_pointer(path)
    rows = []
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise RolecraftError(f"{path}:{number} is not valid JSON ({e.msg})", "one JSON object per line") from None
    if not rows:
        raise RolecraftError(f"{path}: no items", "one JSON object per line")
    return rows


def read_wikirole(path: str | Path) -> list[WikiRoleItem]:
    path = Path(path)
    items = []
    for number, row in _lines(path):
        try:
            items.append(WikiRoleItem.model_validate(row))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise RolecraftError(
                f"{path}:{number} is not a WikiRoleEval item ({where}: {first['msg']})",
                "give system, prompts[], meta.label, and per-prompt rejection_labels / evidence",
            ) from None
    return items


class DittoScores(BaseModel):
    """One judged item of Ditto's output files: per-turn scores, the labels and the language."""

    consist_scores: list[float]
    reject_scores: list[int]
    knowledge_scores: list[float | None]
    rejection_labels: list[int]
    lang: str


def read_ditto_scores(path: str | Path) -> list[DittoScores]:
    path = Path(path)
    out = []
    for number, row in _lines(path):
        meta = row.get("meta") if isinstance(row, dict) else None
        try:
            out.append(DittoScores.model_validate(
                {**row, "rejection_labels": (meta or {}).get("rejection_labels"), "lang": (meta or {}).get("lang")}))
        except (ValidationError, TypeError):
            raise RolecraftError(
                f"{path}:{number} is not one of Ditto's judged items",
                "pass a file from Ditto's eval/output/ (consist_scores, reject_scores, knowledge_scores, meta)",
            ) from None
    return out


def write_wikirole(path: str | Path, items: Iterable[WikiRoleItem]) -> Path:
    path = Path(path)
    lines = [json.dumps(item.model_dump(exclude={"messages"} if item.messages is None else None), ensure_ascii=False)
             for item in items]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
