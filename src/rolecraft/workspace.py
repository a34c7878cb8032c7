"""One character's build folder: stage outputs as JSONL, a manifest of what ran, the call cache.

Layout of a workspace (default `./workspaces/<character-slug>`, or `--workspace DIR`):

    character.json        the Character record the build started from
    manifest.json         per stage: status, models, settings, calls, tokens, times
    cache.sqlite          every model call (see rolecraft.llm.cache)
    <stage>.jsonl         one file per stage (scenes.jsonl, experiences.jsonl, statements.jsonl, ...)
    adapters/<name>/      trained LoRA adapters with their settings

Every write is atomic (temp file + rename), so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.errors import RolecraftError

R = TypeVar("R", bound=BaseModel)

DEFAULT_ROOT = "workspaces"


def default_workspace(character: Character) -> Path:
    return Path(os.environ.get("ROLECRAFT_WORKSPACES", DEFAULT_ROOT)) / character.slug


def atomic_write_bytes(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def folder_in_place(target: Path) -> Iterator[Path]:
    """A fresh sibling folder to write `target`'s new contents into. When the block finishes it
    replaces `target` in one move; when it fails it is deleted, so `target` is never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(finished: Path, target: Path) -> None:
    """Move a completely written folder (e.g. a trained adapter) into place over an older one."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(finished, target)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    lines = [
        r.model_dump_json() if isinstance(r, BaseModel) else json.dumps(r, ensure_ascii=False)
        for r in records
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path, model: type[R] | None = None) -> list[Any]:
    rows: list[Any] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RolecraftError(
                    f"{path}:{number} is not valid JSON ({e.msg})", "fix or delete that line"
                ) from None
            rows.append(model.model_validate(row) if model else row)
    return rows


class Workspace:
    """A character's build folder. Stages read and write typed records through it."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def for_character(cls, character: Character, root: str | Path | None = None) -> Workspace:
        ws = cls(root or default_workspace(character))
        ws.root.mkdir(parents=True, exist_ok=True)
        if not ws.character_path.exists():
            atomic_write_text(ws.character_path, character.model_dump_json(indent=2))
        return ws

    @property
    def character_path(self) -> Path:
        return self.root / "character.json"

    @property
    def cache_path(self) -> Path:
        return self.root / "cache.sqlite"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def path(self, name: str) -> Path:
        return self.root / name

    def character(self) -> Character:
        if not self.character_path.exists():
            raise RolecraftError(
                f"{self.root} is not a rolecraft workspace (no character.json)",
                "pass the folder a build wrote, or start one with `rolecraft build PROFILE`",
            )
        return Character.model_validate_json(self.character_path.read_text(encoding="utf-8"))

    def save_character(self, character: Character) -> None:
        atomic_write_text(self.character_path, character.model_dump_json(indent=2))

    def write(self, stage: str, records: Iterable[BaseModel | dict[str, Any]]) -> Path:
        path = self.root / f"{stage}.jsonl"
        write_jsonl(path, records)
        return path

    def read(self, stage: str, model: type[R] | None = None) -> list[Any]:
        path = self.root / f"{stage}.jsonl"
        if not path.exists():
            raise RolecraftError(
                f"{path} does not exist: stage '{stage}' has not run in this workspace",
                f"run the `{stage}` step first (or `rolecraft build`)",
            )
        return read_jsonl(path, model)

    def has(self, stage: str) -> bool:
        return (self.root / f"{stage}.jsonl").exists()

    # -- manifest ---------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"stages": {}}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def record_stage(self, stage: str, **info: Any) -> None:
        """Merge `info` (models, settings, counts, status…) into the stage's manifest entry."""
        manifest = self.manifest()
        entry = manifest["stages"].setdefault(stage, {})
        entry.update(info)
        entry["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False))

    def stage_info(self, stage: str) -> dict[str, Any]:
        return self.manifest()["stages"].get(stage, {})
