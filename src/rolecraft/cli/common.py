"""What the commands that run steps share: opening the character's workspace, running steps with the
build's display, and the summary table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rolecraft.progress import console


def open_character(target: str | None, workspace: Path | None):
    """The character a user names and its build folder (created on first use)."""
    from rolecraft.agent.loading import resolve_character
    from rolecraft.workspace import Workspace

    character, ws = resolve_character(target, workspace)
    return character, Workspace.for_character(character, ws.root if ws else workspace)


def announce(step, number: int, total: int) -> None:
    console.rule(f"[bold]{number}/{total} {step.name}")


def run_steps(steps: Sequence, workspace, models) -> list:
    """Run steps through the pipeline's runner (fingerprints, manifest, resume) and print the summary."""
    from rolecraft.pipeline import run

    runs = run(steps, workspace, models, announce)
    Console().print(summary_table(runs, f"{workspace.root}"))  # results on stdout, progress on stderr
    return runs


def summary_table(runs: Sequence, title: str) -> Table:
    """One line per step on an 80-column terminal: why a step was skipped and its rejections by reason
    (which a step that ran printed as it ended, and manifest.json keeps) go under the table."""
    skipped: dict[str, list[str]] = {}
    for r in runs:
        if r.skipped:
            skipped.setdefault(r.skipped, []).append(r.name)
    notes = [f"{', '.join(names)} skipped: {reason}" for reason, names in skipped.items()]
    if any(r.rejections for r in runs):
        notes.append("rejected: the reasons are in manifest.json and each step's line above")
    table = Table("step", "status", "rows", "rejected", "seconds", "peak MB", title=title,
                  caption="\n".join(notes) or None, caption_justify="left")
    for r in runs:
        status = "cached" if r.cached else "skipped" if r.skipped else "ran"
        rejected = str(sum(r.rejections.values())) if r.rejections else "-"
        rows = "-" if r.rows is None else str(r.rows)
        table.add_row(r.name, status, rows, rejected, f"{r.seconds:.1f}", f"{r.peak_rss_mb:.0f}")
    return table
