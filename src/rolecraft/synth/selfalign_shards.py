"""Self-alignment shards: the unit of work and of resume, shared by the in-process run (`selfalign_run`)
and the Ray run (`selfalign_ray`), so both produce the same files.

    WORKSPACE/selfalign-shards/00000-<key>.jsonl   one CharacterResult per line; present = finished
    WORKSPACE/selfalign.jsonl                      the training dialogues, in character order (the step's rows)
    WORKSPACE/selfalign-eval.jsonl                 held-out questions in the WikiRoleEval schema

A shard's key hashes the settings, the model spec and the shard's planned work, so a rerun with the
same inputs skips finished shards, and a changed setting never reuses a stale one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.charset import aliases, language
from rolecraft.errors import RolecraftError
from rolecraft.formats.wikirole import WikiRoleItem, write_wikirole
from rolecraft.synth.selfalign import CharacterResult, SelfAlignConfig, SelfAlignDialogue, SelfAlignTask, plan
from rolecraft.workspace import Workspace, read_jsonl, write_jsonl

STAGE = "selfalign"
EVAL_STAGE = "selfalign-eval"
SHARDS = "selfalign-shards"


class Shard(BaseModel):
    index: int
    key: str  # hash of everything that decides the shard's rows: a changed setting is a new shard
    tasks: list[SelfAlignTask]

    @property
    def file_name(self) -> str:
        return f"{self.index:05d}-{self.key}.jsonl"


def make_shards(tasks: Sequence[SelfAlignTask], config: SelfAlignConfig, model_identity: dict[str, Any]) -> list[Shard]:
    shards = []
    for index, start in enumerate(range(0, len(tasks), config.shard_size)):
        chunk = list(tasks[start : start + config.shard_size])
        blob = json.dumps(
            {"config": config.model_dump(), "model": model_identity, "tasks": [t.model_dump(mode="json") for t in chunk]},
            sort_keys=True,
            ensure_ascii=False,
        )
        shards.append(Shard(index=index, key=hashlib.sha256(blob.encode()).hexdigest()[:12], tasks=chunk))
    return shards


class SelfAlignSummary(BaseModel):
    characters: int
    shards: int
    shards_reused: int
    dialogues: int
    turns: int
    contrastive_turns: int
    eval_dialogues: int
    rejections: dict[str, int]
    completion_tokens: int
    seconds: float
    backend: str


@dataclass
class SelfAlignResult:
    train: list[SelfAlignDialogue]
    held_out: list[SelfAlignDialogue]
    summary: SelfAlignSummary


def prepare(
    characters: Sequence[Character], model: str, config: SelfAlignConfig, options: dict[str, Any] | None = None,
    encoder: str | Path | None = None,
) -> list[Shard]:
    """Plan every character and cut the plan into shards. The model is named, never loaded, here:
    building a vLLM backend would start an engine on the driver."""
    if not characters:
        raise RolecraftError("the character set is empty", "give a folder of profiles/cards or a JSONL of records")
    return make_shards(plan(characters, config, encoder), config, {"spec": model, "options": options or {}})


def shard_path(workspace: Workspace, shard: Shard) -> Path:
    return workspace.path(SHARDS) / shard.file_name


def pending(workspace: Workspace, shards: Sequence[Shard]) -> list[Shard]:
    """Shards without a finished file: the work a (re)run still has to do."""
    return [s for s in shards if not shard_path(workspace, s).exists()]


def save_shard(workspace: Workspace, shard: Shard, results: Sequence[CharacterResult]) -> None:
    write_jsonl(shard_path(workspace, shard), results)  # atomic: a file that exists is a finished shard


def collect(workspace: Workspace, shards: Sequence[Shard], reused: int, started: float, backend: str) -> SelfAlignResult:
    """Join the shard files in order (and write the held-out WikiRoleEval set, if one was planned)."""
    results = [r for s in shards for r in read_jsonl(shard_path(workspace, s), CharacterResult)]
    dialogues = [d for r in results for d in r.dialogues]
    train = [d for d in dialogues if d.split == "train"]
    held_out = [d for d in dialogues if d.split == "eval"]
    if held_out:
        write_eval_set(workspace, held_out, {t.id: t.character for s in shards for t in s.tasks})
    rejections = sum((Counter(r.rejections) for r in results), Counter())
    summary = SelfAlignSummary(
        characters=len(results), shards=len(shards), shards_reused=reused, dialogues=len(train),
        turns=sum(len(d.turns) for d in train),
        contrastive_turns=sum(not t.query.should_know for d in train for t in d.turns),
        eval_dialogues=len(held_out), rejections=dict(rejections),
        completion_tokens=sum(r.completion_tokens for r in results),
        seconds=round(time.perf_counter() - started, 2), backend=backend,
    )
    return SelfAlignResult(train, held_out, summary)


def write_eval_set(workspace: Workspace, dialogues: Sequence[SelfAlignDialogue], characters: dict[str, Character]) -> Path:
    """Held-out dialogues as WikiRoleEval items: the questions, labels and evidence; no answers —
    the model under test gives those. Written through the one WikiRoleEval reader/writer."""
    items = []
    for d in dialogues:
        c = characters[d.character]
        record = dict(c.source.card or {}) if c.source.kind == "records" else {}
        items.append(
            WikiRoleItem(
                system=d.system,
                prompts=[t.query.question for t in d.turns],
                role_consist_cands=d.candidates,
                rejection_labels=[int(not t.query.should_know) for t in d.turns],
                # A contrastive turn's evidence says whose fact it is, so a knowledge judge does not
                # expect the role to recite another character's life.
                evidence=[
                    f"- {t.query.knowledge}" if t.query.should_know
                    else f"- This is about {t.query.source_name}, not {c.full_name}: {t.query.knowledge}"
                    for t in d.turns
                ],
                meta={
                    **record,
                    "label": c.full_name,
                    "description": c.expand(c.description),
                    "aliases": aliases(c),
                    "lang": language(c),
                    "summary": record.get("summary") or c.profile_text()[:1500],
                },
                source="rolecraft-selfalign",
                id=d.id,
                source_characters=[t.query.source_character for t in d.turns],
            )
        )
    return write_wikirole(workspace.path(f"{EVAL_STAGE}.jsonl"), items)
