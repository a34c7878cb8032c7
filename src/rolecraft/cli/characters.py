"""`rolecraft show` and `rolecraft export`: look at a character file, convert it to a card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rolecraft.cli.app import app

CharacterFile = Annotated[Path, typer.Argument(help="Profile text, or a character card (JSON, PNG or CHARX).")]


@app.command()
def show(
    file: CharacterFile,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Character record as JSON.")] = False,
) -> None:
    """Summarise a character: names, paragraphs, lore, greetings, where it came from."""
    from rich.console import Console
    from rich.table import Table

    from rolecraft.cards import load_character

    character = load_character(file)
    if as_json:
        typer.echo(character.model_dump_json(indent=2))
        return
    source = character.source
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("name", character.full_name),
        ("short name", character.short_name),
        ("source", f"{source.kind} ({source.container}) {source.path}"),
        ("paragraphs", f"{len(character.paragraphs)} ({sum(map(len, character.paragraphs))} characters)"),
        ("lore entries", f"{len(character.lore)} ({sum(e.enabled for e in character.lore)} enabled)"),
        ("greetings", str(bool(character.greeting) + len(character.alternate_greetings))),
        ("tags", ", ".join(character.tags) or "-"),
        ("description", _preview(character.expand(character.description))),
    ]
    for label, value in rows:
        table.add_row(label, value)
    Console().print(table)


@app.command()
def export(
    file: CharacterFile,
    out: Annotated[Path, typer.Argument(help="Output card: .png, .json or .charx (format by extension).")],
    spec: Annotated[Literal["v2", "v3"], typer.Option(help="Card spec to write.")] = "v2",
) -> None:
    """Convert a profile or card into a Character Card V2/V3 (JSON, PNG or CHARX)."""
    from rolecraft.cards import export_card, load_character

    path = export_card(load_character(file), out, version=spec)
    typer.echo(f"wrote {path} (card {spec})")


def _preview(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
