"""`rolecraft build`: the whole loop for one character, resumable, as one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rolecraft.cli import app
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

    if preset not in ("tiny", "paper"):
        raise RolecraftError(f"unknown preset '{preset}'", "use --preset tiny or --preset paper")
    character = load_character(source)  # bad input fails here, before anything is written

    from rolecraft.llm import parse_spec

    for spec in (teacher, student, judge):
        parse_spec(spec)
    if not student.startswith("embedded"):
        from rolecraft.train.sft import student_path

        student_path(student)  # a student that cannot be trained fails now, not after synthesis
    from rolecraft.pipeline import PRESETS, Models, console, run_build

    def announce(name: str, number: int, total: int) -> None:
        console.rule(f"[bold]{number}/{total} {name}")

    models = Models(teacher=teacher, student=student, judge=judge, discriminator=discriminator)
    chosen = PRESETS[preset]()
    ws, runs = run_build(character, workspace, chosen.with_selfalign() if selfalign else chosen, models, on_stage=announce)
    _summary(ws, runs)


def _summary(ws, runs) -> None:
    from rich.table import Table

    from rolecraft.pipeline import console

    if all(r.cached for r in runs):
        console.print(f"Nothing to do: {ws.root} is up to date (every stage already ran with these inputs).")
    table = Table("stage", "status", "seconds", "peak MB", title=f"build of {ws.character().full_name}")
    for r in runs:
        status = "cached" if r.cached else f"skipped: {r.info['skipped']}" if "skipped" in r.info else "ran"
        table.add_row(r.name, status, f"{r.seconds:.1f}", f"{r.peak_rss_mb:.0f}")
    console.print(table)
    report = ws.path("eval/build/report.md")
    console.print(f"Report: {report}" if report.exists() else "")
    console.print(f"Cards and datasets: {ws.path('export')}")
    console.print(f"Chat:  rolecraft chat {ws.root}")
    console.print(f"Serve: rolecraft serve --workspace {ws.root}   (OpenAI-compatible; SillyTavern can connect)")
