"""Where an agent's parts come from: the character a user names, and the facts it retrieves."""

from __future__ import annotations

from pathlib import Path

from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.workspace import DEFAULT_ROOT, Workspace, default_workspace


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

        character = load_character(path)
        built = default_workspace(character)
        return character, (Workspace(built) if (built / "character.json").exists() else None)
    built = default_workspace(Character(full_name=str(target)))
    if (built / "character.json").exists():
        ws = Workspace(built)
        return ws.character(), ws
    raise RolecraftError(
        f"'{target}' is neither a file, a workspace folder, nor a character built in {built.parent}",
        f"pass a profile or card file or --workspace DIR, or build it first (default root: ./{DEFAULT_ROOT})",
    )


def fact_retriever(character: Character, workspace: Workspace | None = None):
    """Retrieval for the prompt, or None. In a workspace: APC's RAG over every statement and lore
    entry (faithfulness.retrieval.FactRetriever), ranked by the trained relevance discriminator, or by
    embedding similarity where statements exist but no discriminator was trained. (A card's lorebook
    is activated by the Agent itself, as front ends do: rolecraft.agent.lorebook.)"""
    if workspace is not None and character.facts():
        from rolecraft.faithfulness.discriminators import workspace_discriminator
        from rolecraft.faithfulness.retrieval import FactRetriever

        trained = workspace_discriminator(workspace, "relevance")
        if trained or character.statements:
            return FactRetriever(character.name, character.facts(), trained)
    return None
