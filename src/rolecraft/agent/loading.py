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
    embedding similarity where statements exist but no discriminator was trained. Otherwise a card's
    lorebook works as front ends use it: entries whose keys the user's turn mentions."""
    if workspace is not None and character.facts():
        from rolecraft.faithfulness.discriminators import META, ClassifierDiscriminator
        from rolecraft.faithfulness.retrieval import FactRetriever

        relevance = workspace.discriminator_dir("relevance")
        trained = ClassifierDiscriminator(relevance) if (relevance / META).exists() else None
        if trained or character.statements:
            return FactRetriever(character.name, character.facts(), trained)
    if any(e.enabled and e.keys for e in character.lore):
        return LoreKeywords(character)
    return None


class LoreKeywords:
    """Lorebook entries whose keys (case-insensitive) occur in the query, in lorebook order."""

    def __init__(self, character: Character):
        self.entries = [(tuple(k.lower() for k in e.keys if k.strip()), character.expand(e.content))
                        for e in character.lore if e.enabled and e.keys and e.content.strip()]

    def search(self, query: str, k: int) -> list[str]:
        text = query.lower()
        return [content for keys, content in self.entries if any(key in text for key in keys)][:k]
