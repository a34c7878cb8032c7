"""`rolecraft train ...`: training commands. Each method's module adds its command to `train_app`."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Workspace as WorkspaceOption

train_app = typer.Typer(help="Train LoRA adapters for a character (SFT, DPO).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sft(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Workspace folder (or the character's profile/card file).")],
    workspace: WorkspaceOption = None,
    student: Annotated[str, typer.Option(help="Model to fine-tune: hf:PATH or 'embedded'.")] = "embedded",
    name: Annotated[str, typer.Option(help="Adapter name: saved to WORKSPACE/adapters/NAME.")] = "sft",
    method: Annotated[
        Literal["lora", "qlora", "full"], typer.Option(help="LoRA, 4-bit QLoRA (GPU), or full fine-tune.")
    ] = "lora",
    format: Annotated[
        Literal["auto", "prompted", "chat"],
        typer.Option(help="Character-LLM text format, chat messages, or auto (chat if the student has a chat template)."),
    ] = "auto",
    loss: Annotated[
        Literal["target", "all"], typer.Option(help="Train on the character's turns only, or on every line (the paper).")
    ] = "target",
    eval_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of rows held out for evaluation.")] = 0.02,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank (alpha = 2 × rank).")] = 16,
    protective: Annotated[bool, typer.Option(help="Include the protective experiences.")] = True,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints of an interrupted run.")] = False,
    seed: int = 0,
) -> None:
    """Experience upload: fine-tune a student on the workspace's experiences (TRL SFTTrainer).

    Any TRL SFTConfig option may follow after `--`, e.g. `-- --num_train_epochs 1 --max_length 512`.
    An interrupted run resumes from its last checkpoint when rerun.
    """
    from rolecraft.cli.common import open_character, run_steps
    from rolecraft.pipeline import Models
    from rolecraft.synth.experiences import ExperiencesStep
    from rolecraft.synth.protective import ProtectiveStep
    from rolecraft.train.sft import SFTSettings, SFTStep
    from rolecraft.train.sft_config import sft_overrides

    overrides = sft_overrides(ctx.args)
    _, ws = open_character(target, workspace)
    settings = SFTSettings(
        method=method, format=format, loss=loss, eval_fraction=eval_fraction, lora_r=lora_r, lora_alpha=2 * lora_r,
        seed=seed,
    )
    reads = (ExperiencesStep, ProtectiveStep) if protective and ws.has(ProtectiveStep.name) else (ExperiencesStep,)
    [done] = run_steps([SFTStep(settings, overrides, reads=reads, adapter=name, resume=not fresh)], ws, Models(student=student))
    rows = done.info.get("rows", {})
    if rows:
        dropped = rows["dropped_train"] + rows["dropped_eval"]
        typer.echo(
            f"trained on {rows['train']} rows ({rows['eval']} held out, {dropped} dropped by max_length, "
            f"{rows['rejected']} without the character's speech) in {done.info['seconds']:.0f}s; "
            f"train loss {done.info.get('train_loss') or float('nan'):.3f}"
        )
    typer.echo(f"wrote {ws.adapter(name)}")
