"""`rolecraft build`: card or profile → data → SFT → discriminators → APC-DPO → evaluation → exports.

Stages run in a fixed order (see `stages.STAGES`). Each finished stage is recorded in the manifest
with a fingerprint of everything that determines it: the character, the preset's settings, the
models, and the fingerprint of the stage before. A rerun skips every stage whose fingerprint still
matches, so a second identical run does nothing, and a run interrupted anywhere resumes at the stage
it was in (whose finished model calls come back from the request cache).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.pipeline.presets import PRESETS, Preset
from rolecraft.pipeline.stages import SETTINGS, STAGES, Build, Models
from rolecraft.memory import release_memory
from rolecraft.progress import console
from rolecraft.workspace import Workspace

VERSION = 1  # bump when a stage's output format changes, to invalidate old builds


class StageRun(BaseModel):
    name: str
    cached: bool  # finished earlier with the same fingerprint: not run again
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    info: dict[str, Any] = {}


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def source_of(character: Character) -> dict[str, Any]:
    """The parts of a character that come from its file (not what stages add, such as statements)."""
    return character.model_dump(exclude={"statements", "source"})


def open_workspace(character: Character, root: str | Path | None) -> Workspace:
    """The build folder; a changed profile or card replaces the stored character (and so every stage)."""
    ws = Workspace.for_character(character, root)
    stored = ws.character()
    if source_of(stored) != source_of(character):
        ws.save_character(character)
    return ws


class _PeakMemory:
    """Samples this process's resident memory in a thread; torch frees memory between stages, so the
    process-wide peak (ru_maxrss) would not say which stage needed it."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.process, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def run_build(
    character: Character,
    workspace: str | Path | None = None,
    preset: str | Preset = "tiny",
    models: Models | None = None,
    on_stage: Callable[[str, int, int], None] | None = None,
) -> tuple[Workspace, list[StageRun]]:
    preset = PRESETS[preset]() if isinstance(preset, str) else preset
    models = models or Models()
    ws = open_workspace(character, workspace)
    build = Build(ws, preset, models)
    chain = fingerprint(VERSION, source_of(ws.character()), asdict(models))
    runs: list[StageRun] = []
    for number, stage in enumerate(STAGES, 1):
        name = stage.__name__
        chain = fingerprint(chain, name, preset.model_dump(include=SETTINGS[name]))
        key = f"build/{name}"
        done = ws.stage_info(key)
        if done.get("status") == "done" and done.get("fingerprint") == chain:
            runs.append(StageRun(name=name, cached=True, info=done.get("info", {})))
            continue
        if on_stage:
            on_stage(name, number, len(STAGES))
        ws.record_stage(key, status="running", fingerprint=chain)
        started = time.monotonic()
        with _PeakMemory() as memory:
            info = stage(build)
        release_memory()
        run = StageRun(name=name, cached=False, seconds=round(time.monotonic() - started, 1),
                       peak_rss_mb=round(memory.peak / 2**20), info=info)
        ws.record_stage(key, status="done", fingerprint=chain, seconds=run.seconds, peak_rss_mb=run.peak_rss_mb,
                        info=info, preset=preset.name, models=asdict(models))
        runs.append(run)
    return ws, runs


__all__ = ["Build", "Models", "PRESETS", "Preset", "StageRun", "console", "run_build"]
