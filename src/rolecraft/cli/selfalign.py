"""`rolecraft selfalign`: Ditto self-alignment for a whole set of characters, in-process or on Ray.

    rolecraft selfalign characters/ --model embedded --queries 6 --turns 3
    rolecraft selfalign ditto_meta.jsonl --model hf:Qwen/Qwen2.5-7B-Instruct --ray --workers 8 --train
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Model
from rolecraft.cli.options import Workspace as WorkspaceOption


@app.command()
def selfalign(
    characters: Annotated[Path, typer.Argument(help="A folder of profiles/cards, or a JSONL of Ditto `meta` records.")],
    model: Model = "embedded",
    workspace: WorkspaceOption = None,
    queries: Annotated[int, typer.Option(min=1, help="Training queries per character.")] = 6,
    turns: Annotated[int, typer.Option(min=1, help="Queries per dialogue.")] = 3,
    contrastive: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of queries from another character's knowledge.")] = 0.33,
    eval_queries: Annotated[int, typer.Option(min=0, help="Held-out queries per character, written as a WikiRoleEval set.")] = 0,
    shard_size: Annotated[int, typer.Option(min=1, help="Characters per shard (the unit of resume and of Ray work).")] = 8,
    seed: int = 0,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    max_tokens: Annotated[int, typer.Option(min=8, help="Token budget of one simulated answer.")] = 96,
    ray: Annotated[bool, typer.Option("--ray", help="Run on Ray Data, one model replica per worker.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Ray workers (model replicas).")] = 2,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join, e.g. 'auto' on a cluster node.")] = None,
    gpus: Annotated[float, typer.Option(min=0.0, help="GPUs per Ray worker (1 for a vllm: model on GPU nodes).")] = 0.0,
    train: Annotated[bool, typer.Option("--train", help="Then fine-tune one LoRA adapter on all characters' dialogues.")] = False,
    student: Annotated[Optional[str], typer.Option(help="Model to fine-tune with --train (default: --model; hf:PATH or 'embedded').")] = None,
    epochs: Annotated[float, typer.Option(min=0.0, help="Training epochs with --train.")] = 3.0,
) -> None:
    """Let the model write multi-turn role-play dialogues for every character, then (optionally) train one model.

    Ditto's self-alignment: the student writes its own data, so `--student` defaults to `--model`.
    Training uses the same SFT trainer as `rolecraft train sft` (LoRA, loss on the characters' answers).
    """
    from rolecraft.charset import load_characters
    from rolecraft.pipeline import Models, run
    from rolecraft.synth.selfalign import SelfAlignConfig
    from rolecraft.synth.selfalign_run import SelfAlignStep
    from rolecraft.workspace import Workspace

    cast = load_characters(characters)
    root = workspace or Path(os.environ.get("ROLECRAFT_WORKSPACES", "workspaces")) / f"selfalign-{characters.stem}"
    ws = Workspace(root)
    config = SelfAlignConfig(
        queries=queries, turns=turns, contrastive_share=contrastive, eval_queries=eval_queries,
        shard_size=shard_size, seed=seed, temperature=temperature, response_tokens=max_tokens,
    )
    ray_options = {"workers": workers, "address": address, "num_gpus": gpus} if ray else None
    [done] = run([SelfAlignStep(config, characters=cast, ray=ray_options)], ws, Models(teacher=model))
    s = done.info
    rejected = ", ".join(f"{k} {v}" for k, v in done.rejections.items()) or "none"
    typer.echo(
        f"{s['characters']} characters -> {s['dialogues']} dialogues, {s['turns']} turns "
        f"({s['contrastive_turns']} contrastive) in {s['seconds']:.1f}s [{s['backend']}; "
        f"{s['shards_reused']}/{s['shards']} shards reused; rejected: {rejected}]"
    )
    typer.echo(f"wrote {ws.path('selfalign.jsonl')}")
    if s["eval_dialogues"]:
        typer.echo(f"wrote {ws.path('selfalign-eval.jsonl')} ({s['eval_dialogues']} WikiRoleEval items)")
    if train:
        from rolecraft.train.sft import SFTSettings, SFTStep

        step = SFTStep(SFTSettings(format="chat"), {"num_train_epochs": epochs}, reads=(SelfAlignStep,), adapter="selfalign")
        [trained] = run([step], ws, Models(student=student or model))
        typer.echo(f"trained one adapter on {trained.info['rows']['train']} dialogues in {trained.info['seconds']:.0f}s; "
                   f"train loss {trained.info.get('train_loss') or float('nan'):.3f}")
        typer.echo(f"wrote {ws.adapter('selfalign')}")
