"""`rolecraft build`: the whole loop for one character, resumable, as one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Workspace


@app.command()
def build(
    source: Annotated[Path, typer.Argument(help="Profile text or character card (JSON, PNG, CHARX).")],
    workspace: Workspace = None,
    preset: Annotated[str, typer.Option(help="tiny: embedded model on CPU, small counts; paper: the papers' counts.")] = "tiny",
    teacher: Annotated[str, typer.Option(help="Writes the data (provider:name).")] = "embedded",
    student: Annotated[str, typer.Option(help="Is fine-tuned (hf:PATH or 'embedded').")] = "embedded",
    judge: Annotated[str, typer.Option(help="Judges the interviews (provider:name).")] = "embedded",
    discriminator: Annotated[str, typer.Option(help="HF encoder for the APC discriminators ('' = embedded MiniLM).")] = "",
    selfalign: Annotated[bool, typer.Option(help="Also train on Ditto-style self-aligned dialogues.")] = False,
) -> None:
    """Build a role-playing agent: statements, experiences, SFT, discriminators, APC-DPO, evaluation, exports."""
    from rolecraft.cards import load_character
    from rolecraft.errors import RolecraftError
    from rolecraft.llm import parse_spec

    if preset not in ("tiny", "paper"):
        raise RolecraftError(f"unknown preset '{preset}'", "use --preset tiny or --preset paper")
    character = load_character(source)  # bad input fails here, before anything is written
    for spec in (teacher, student, judge):
        parse_spec(spec)
    if not student.startswith("embedded"):
        from rolecraft.train.student import student_path

        student_path(student)  # a student that cannot be trained fails now, not after synthesis
    from rolecraft.cli.common import announce, summary_table
    from rolecraft.pipeline import PRESETS, Models, console, run_build

    models = Models(teacher=teacher, student=student, judge=judge, discriminator=discriminator)
    chosen = PRESETS[preset]()
    ws, runs = run_build(character, workspace, chosen.with_selfalign() if selfalign else chosen, models, on_step=announce)
    if all(r.cached for r in runs):
        console.print(f"Nothing to do: {ws.root} is up to date (every step already ran with these inputs).")
    console.print(summary_table(runs, f"build of {ws.character().full_name}"))
    report = ws.path("eval/build/report.md")
    console.print(f"Report: {report}" if report.exists() else "")
    console.print(f"Cards and datasets: {ws.path('export')}")
    console.print(f"Chat:  rolecraft chat {ws.root}")
    console.print(f"Serve: rolecraft serve --workspace {ws.root}   (OpenAI-compatible; SillyTavern can connect)")
