"""Where an agent's parts come from: a character file or a workspace, its trained adapter, its facts."""

from __future__ import annotations

from pathlib import Path

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.workspace import DEFAULT_ROOT, Workspace

# A DPO adapter was trained on top of SFT, so it is the better agent when both exist.
ADAPTER_PREFERENCE = ("dpo", "sft")


def resolve_character(
    target: str | Path | None, workspace: str | Path | None = None
) -> tuple[Character, Workspace | None]:
    """A character and its workspace (if it has one) from what a user types: a workspace folder, a
    profile or card file, or the name of a character built under ./workspaces (or $ROLECRAFT_WORKSPACES)."""
    if workspace is not None:
        ws = Workspace(workspace)
        if ws.character_path.exists() or target is None:
            return ws.character(), ws
        return resolve_character(target)[0], ws  # a file whose build folder is `workspace`
    if target is None:
        raise RolecraftError("no character given", "name a character, a profile or card file, or pass --workspace DIR")
    path = Path(target).expanduser()
    if path.is_dir():
        ws = Workspace(path)
        return ws.character(), ws
    if path.is_file():
        from rolecraft.cards import load_character
        from rolecraft.workspace import default_workspace

        character = load_character(path)
        built = default_workspace(character)
        return character, (Workspace(built) if (built / "character.json").exists() else None)
    from rolecraft.workspace import default_workspace

    built = default_workspace(Character(full_name=str(target)))
    if (built / "character.json").exists():
        ws = Workspace(built)
        return ws.character(), ws
    raise RolecraftError(
        f"'{target}' is neither a file, a workspace folder, nor a character built in {built.parent}",
        f"pass a profile or card file or --workspace DIR, or build it first (default root: ./{DEFAULT_ROOT})",
    )


def find_adapter(workspace: Workspace | None, choice: str | Path | None = "auto") -> Path | None:
    """The LoRA adapter to use. `auto`: the workspace's best trained adapter (dpo, then sft, then the
    newest), or none; `none`: prompt-only; a name under WORKSPACE/adapters/; or an adapter folder."""
    if choice is None or str(choice) in ("", "none"):
        return None
    if str(choice) == "auto":
        if workspace is None:
            return None
        found = {d.name: d for d in (workspace.root / "adapters").glob("*") if (d / "adapter_config.json").exists()}
        for name in ADAPTER_PREFERENCE:
            if name in found:
                return found[name]
        return max(found.values(), key=lambda d: d.stat().st_mtime, default=None)
    path = Path(choice).expanduser()
    if workspace is not None and not path.exists():
        path = workspace.root / "adapters" / str(choice)
    if not (path / "adapter_config.json").exists():
        raise RolecraftError(
            f"no LoRA adapter at {path} (no adapter_config.json)",
            "pass an adapter name under WORKSPACE/adapters/, an adapter folder, 'auto' or 'none'",
        )
    return path


def with_statements(character: Character, workspace: Workspace | None) -> Character:
    """The character with the persona statements its workspace extracted (statements.jsonl) added."""
    if workspace is None or not workspace.has("statements"):
        return character
    from rolecraft.synth.apc_records import StatementRecord

    known = set(character.statements)
    extracted = [r.statement for r in workspace.read("statements", StatementRecord)]
    new = [s for s in dict.fromkeys(extracted) if s not in known]
    return character.model_copy(update={"statements": [*character.statements, *new]}) if new else character


def fact_retriever(character: Character, workspace: Workspace | None = None):
    """Retrieval for the prompt, or None. In a workspace: APC's RAG over every statement and lore
    entry (faithfulness.retrieval.FactRetriever), ranked by the trained relevance discriminator, or by
    embedding similarity where statements exist but no discriminator was trained. (A card's lorebook
    is activated by the Agent itself, as front ends do: rolecraft.agent.lorebook.)"""
    if workspace is not None and character.facts():
        from rolecraft.faithfulness.discriminators import META, ClassifierDiscriminator, discriminator_dir
        from rolecraft.faithfulness.retrieval import FactRetriever

        relevance = discriminator_dir(workspace, "relevance")
        trained = ClassifierDiscriminator(relevance) if (relevance / META).exists() else None
        if trained or character.statements:
            return FactRetriever(character.name, character.facts(), trained)
    return None
