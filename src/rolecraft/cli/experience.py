"""`rolecraft scenes`, `experiences`, `stats`, `import-charllm`: Character-LLM's experience reconstruction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Workspace as WorkspaceOption

Target = Annotated[str, typer.Argument(help="Profile or card file, or a workspace folder.")]
Teacher = Annotated[str, typer.Option(help="Teacher model: provider:name, e.g. openai:gpt-4o-mini, or 'embedded'.")]
Tiny = Annotated[bool, typer.Option("--tiny", help="Tiny counts and lengths (a quick end-to-end check).")]
FreeText = Annotated[
    bool, typer.Option("--free-text", help="Ask for free-text scripts and parse them (for teachers without JSON output).")
]
Seed = Annotated[int, typer.Option(help="Sampling seed (part of the cache key).")]


def _teacher_settings(settings, tiny_settings, tiny: bool, **update):
    return (tiny_settings if tiny else settings).model_copy(update={k: v for k, v in update.items() if v is not None})


@app.command()
def scenes(
    target: Target,
    workspace: WorkspaceOption = None,
    teacher: Teacher = "embedded",
    prompts: Annotated[Optional[int], typer.Option(min=1, help="Prompts per character (paper: 100).")] = None,
    per_prompt: Annotated[Optional[int], typer.Option(min=1, help="Scenes per prompt (paper: 20).")] = None,
    tiny: Tiny = False,
    free_text: FreeText = False,
    seed: Seed = 0,
) -> None:
    """Imagine scenes from every profile paragraph (stage 1 of experience reconstruction)."""
    from rolecraft.cli.common import open_character, run_steps
    from rolecraft.step import Models
    from rolecraft.synth.scenes import SceneSettings, ScenesStep

    _, ws = open_character(target, workspace)
    settings = _teacher_settings(SceneSettings(), SceneSettings.tiny(), tiny, prompts=prompts, per_prompt=per_prompt,
                                 structured=not free_text, seed=seed)
    run_steps([ScenesStep(settings)], ws, Models(teacher=teacher))
    typer.echo(f"wrote {ws.path('scenes.jsonl')}")


@app.command()
def experiences(
    target: Target,
    workspace: WorkspaceOption = None,
    teacher: Teacher = "embedded",
    protective: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Protective scripts per experience (0 for none).")
    ] = 0.1,
    per_paragraph: Annotated[
        bool, typer.Option("--per-paragraph", help="One protective script per profile paragraph, as the paper.")
    ] = False,
    tiny: Tiny = False,
    free_text: FreeText = False,
    seed: Seed = 0,
) -> None:
    """Write a script per scene, then the protective scripts (stages 2 and 3)."""
    from rolecraft.cli.common import open_character, run_steps
    from rolecraft.step import Models
    from rolecraft.synth.experiences import ExperienceSettings, ExperiencesStep
    from rolecraft.synth.protective import ProtectiveSettings, ProtectiveStep

    _, ws = open_character(target, workspace)
    common = {"structured": not free_text, "seed": seed}
    scripts = _teacher_settings(ExperienceSettings(), ExperienceSettings.tiny(), tiny, **common)
    guard = _teacher_settings(ProtectiveSettings(), ProtectiveSettings.tiny(), tiny, fraction=protective,
                              per_paragraph=per_paragraph, **common)
    run_steps([ExperiencesStep(scripts), ProtectiveStep(guard)], ws, Models(teacher=teacher))
    typer.echo(f"wrote {ws.path('experiences.jsonl')} and {ws.path('protective.jsonl')}")


@app.command()
def stats(
    workspaces: Annotated[list[Path], typer.Argument(help="Workspace folders (one row per character).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per-character statistics as in the paper: scenes, words, turns per scene, protective, rejections."""
    from rich.console import Console

    from rolecraft.synth.stats import character_stats, rejection_lines, stats_json, stats_table
    from rolecraft.workspace import Workspace

    rows = [character_stats(Workspace(w)) for w in workspaces]
    if as_json:
        typer.echo(stats_json(rows))
    else:
        Console().print(stats_table(rows))
        for line in rejection_lines(rows):
            typer.echo(f"rejected — {line}")


@app.command("import-charllm")
def import_charllm(
    files: Annotated[list[Path], typer.Argument(help="Character-LLM generated_*.json or prompted_*.jsonl files.")],
    character: Annotated[
        Optional[Path], typer.Option(help="The character's profile or card (default: named from the file).")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Import Character-LLM's released experience data into a workspace, ready for `rolecraft train sft`."""
    from rolecraft.pipeline import Models, run
    from rolecraft.synth.charllm_import import ImportExperiencesStep, ImportProtectiveStep, character_for
    from rolecraft.workspace import Workspace

    if character:
        from rolecraft.cards import load_character

        who = load_character(character)
    else:
        who = character_for(files[0])
    ws = Workspace.for_character(who, workspace)
    runs = run([ImportExperiencesStep(files), ImportProtectiveStep(files)], ws, Models())
    rejected = ", ".join(f"{k}: {n}" for r in runs for k, n in r.rejections.items()) or "none"
    typer.echo(f"{who.full_name}: {runs[0].rows} experiences, {runs[1].rows} protective, rejected: {rejected}")
    typer.echo(f"wrote {ws.root}")
