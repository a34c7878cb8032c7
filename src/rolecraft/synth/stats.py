"""What the experience steps produced and rejected: the per-character table of the paper (# scenes,
# words, # turns per scene) plus protective scripts and rejections by reason (from the manifest)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from rolecraft.synth.experiences import ExperiencesStep
from rolecraft.synth.protective import ProtectiveStep
from rolecraft.synth.scenes import ScenesStep
from rolecraft.workspace import Workspace, atomic_write_text

STEPS = (ScenesStep, ExperiencesStep, ProtectiveStep)


class CharacterStats(BaseModel):
    character: str
    scenes: int = 0
    experiences: int = 0
    protective: int = 0
    words: int = 0  # words in every kept script (experiences and protective)
    turns_per_scene: float = 0.0  # mean turns of the regular experiences
    rejections: dict[str, dict[str, int]] = Field(default_factory=dict)  # stage → reason → count

    @property
    def rejected(self) -> int:
        return sum(sum(r.values()) for r in self.rejections.values())


def character_stats(workspace: Workspace) -> CharacterStats:
    """Statistics of one workspace; also saved as `stats.json` there."""
    character = workspace.character()
    scenes, regular, protective = (workspace.read(s.name, s.record) if workspace.has(s.name) else [] for s in STEPS)
    stats = CharacterStats(
        character=character.full_name,
        scenes=len(scenes),
        experiences=len(regular),
        protective=len(protective),
        words=sum(e.words() for e in [*regular, *protective]),
        turns_per_scene=round(sum(len(e.dialogue) for e in regular) / len(regular), 1) if regular else 0.0,
        rejections={s.name: r for s in STEPS if (r := workspace.entry(s.name).get("rejections"))},
    )
    atomic_write_text(workspace.path("stats.json"), stats.model_dump_json(indent=2))
    return stats


def stats_table(rows: Sequence[CharacterStats]) -> Any:
    """A rich table in the paper's layout (its # scenes = scripts kept = # experiences here), with the
    imagined scenes, protective scripts and rejections added."""
    from rich.table import Table

    table = Table(title="Experience data")
    for column in ("character", "scenes", "experiences", "words", "turns/scene", "protective", "rejected"):
        table.add_column(column, justify="left" if column == "character" else "right")
    for s in rows:
        table.add_row(
            s.character, str(s.scenes), str(s.experiences), f"{s.words:,}", f"{s.turns_per_scene:.1f}",
            str(s.protective), str(s.rejected),
        )
    return table


def rejection_lines(rows: Sequence[CharacterStats]) -> list[str]:
    """`Name: stage/reason n, ...` for every character with rejections."""
    return [
        f"{s.character}: " + ", ".join(f"{stage}/{k} {v}" for stage, r in s.rejections.items() for k, v in r.items())
        for s in rows
        if s.rejected
    ]


def stats_json(rows: Sequence[CharacterStats]) -> str:
    return json.dumps([r.model_dump() for r in rows], indent=2, ensure_ascii=False)
