"""One character's build folder. It owns its outputs: whoever needs the character with its extracted
statements, the best trained adapter or the discriminators asks the workspace, and nobody else decides.

Layout of a workspace (default `./workspaces/<character-slug>`, or `--workspace DIR`):

    character.json        the Character record the build started from
    manifest.json         per step: status, fingerprint, counts, rejections, calls, tokens, times
    cache.sqlite          every model call (see rolecraft.llm.cache)
    <step>.jsonl          the rows of each step (scenes.jsonl, experiences.jsonl, statements.jsonl, ...)
    adapters/<name>/      trained LoRA adapters with their settings (sft, dpo, ...)
    discriminators/       the trained APC classifiers (relevance/, nli/)
    eval/<run>/           evaluation transcripts, judgements and reports

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
from rolecraft.formats.apc import StatementRecord

R = TypeVar("R", bound=BaseModel)

DEFAULT_ROOT = "workspaces"
STATEMENTS = "statements"  # the step whose rows are the character's extracted persona statements
# A DPO adapter was trained on top of SFT, so it is the better agent when both exist.
ADAPTER_PREFERENCE = ("dpo", "sft")
DISCRIMINATOR_META = "discriminator.json"  # written next to a trained discriminator's weights


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

    def stored_character(self) -> Character:
        """The character exactly as the build started from it."""
        if not self.character_path.exists():
            raise RolecraftError(
                f"{self.root} is not a rolecraft workspace (no character.json)",
                "pass the folder a build wrote, or start one with `rolecraft build PROFILE`",
            )
        return Character.model_validate_json(self.character_path.read_text(encoding="utf-8"))

    def character(self) -> Character:
        """The character with the persona statements the statements step extracted added."""
        return with_statements(self.stored_character(), self)

    def save_character(self, character: Character) -> None:
        atomic_write_text(self.character_path, character.model_dump_json(indent=2))

    def write(self, name: str, records: Iterable[BaseModel | dict[str, Any]]) -> Path:
        path = self.root / f"{name}.jsonl"
        write_jsonl(path, records)
        return path

    def read(self, name: str, model: type[R] | None = None) -> list[Any]:
        path = self.root / f"{name}.jsonl"
        if not path.exists():
            raise RolecraftError(
                f"{path} does not exist: step '{name}' has not run in this workspace",
                f"run the `{name}` step first (or `rolecraft build`)",
            )
        return read_jsonl(path, model)

    def has(self, name: str) -> bool:
        return (self.root / f"{name}.jsonl").exists()

    # -- trained outputs ---------------------------------------------------------------------------

    def adapter(self, name: str) -> Path:
        return self.root / "adapters" / name

    def trained_adapter(self, name: str) -> Path | None:
        path = self.adapter(name)
        return path if (path / "adapter_config.json").exists() else None

    def best_adapter(self) -> Path | None:
        """DPO over SFT over the newest other adapter; None when nothing was trained."""
        found = {d.name: d for d in (self.root / "adapters").glob("*") if (d / "adapter_config.json").exists()}
        for name in ADAPTER_PREFERENCE:
            if name in found:
                return found[name]
        return max(found.values(), key=lambda d: d.stat().st_mtime, default=None)

    def find_adapter(self, choice: str | Path | None = "auto") -> Path | None:
        """`auto`: the best trained adapter (or none); `none`: prompt-only; a name under adapters/, or
        an adapter folder."""
        if choice is None or str(choice) in ("", "none"):
            return None
        if str(choice) == "auto":
            return self.best_adapter()
        path = Path(choice).expanduser()
        path = path if path.exists() else self.adapter(str(choice))
        if not (path / "adapter_config.json").exists():
            raise RolecraftError(
                f"no LoRA adapter at {path} (no adapter_config.json)",
                "pass an adapter name under WORKSPACE/adapters/, an adapter folder, 'auto' or 'none'",
            )
        return path

    def discriminator_dir(self, kind: str) -> Path:
        return self.root / "discriminators" / kind

    def has_discriminators(self) -> bool:
        return all((self.discriminator_dir(k) / DISCRIMINATOR_META).exists() for k in ("relevance", "nli"))

    # -- manifest ----------------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"steps": {}}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def record(self, step: str, **info: Any) -> None:
        """Replace the step's manifest entry (only the step runner writes entries)."""
        manifest = self.manifest()
        manifest.setdefault("steps", {})[step] = {**info, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False))

    def entry(self, step: str) -> dict[str, Any]:
        return self.manifest().get("steps", {}).get(step, {})


def with_statements(character: Character, workspace: Workspace | None) -> Character:
    """The character with the persona statements its workspace extracted (statements.jsonl) added."""
    if workspace is None or not workspace.has(STATEMENTS):
        return character
    known = set(character.statements)
    extracted = [r.statement for r in workspace.read(STATEMENTS, StatementRecord)]
    new = [s for s in dict.fromkeys(extracted) if s not in known]
    return character.model_copy(update={"statements": [*character.statements, *new]}) if new else character
