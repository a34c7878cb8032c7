"""Persona faithfulness (APC): `rolecraft statements`, `rolecraft discriminators train`,
`rolecraft apc score` and `rolecraft train dpo`.

    rolecraft statements wiki_Alice.txt --teacher openai:gpt-4o-mini
    rolecraft discriminators train wiki_Alice.txt
    rolecraft apc score wiki_Alice.txt -q "What do you do, Alice?" -r "I play guitar." -r "I'm a pilot."
    rolecraft train dpo wiki_Alice.txt --student embedded --samples 4
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from rolecraft.cli.app import app
from rolecraft.cli.options import Model
from rolecraft.cli.options import Workspace as WorkspaceOption
from rolecraft.cli.train import train_app

Target = Annotated[
    Optional[str],
    typer.Argument(help="Profile or card file, workspace folder, or the name of a built character."),
]
Tiny = Annotated[bool, typer.Option("--tiny", help="Small counts everywhere: a quick end-to-end check.")]

discriminators_app = typer.Typer(help="APC's relevance and NLI discriminators.", no_args_is_help=True)
apc_app = typer.Typer(help="The Active-Passive-Constraint persona-faithfulness score.", no_args_is_help=True)
app.add_typer(discriminators_app, name="discriminators")
app.add_typer(apc_app, name="apc")


@app.command()
def statements(
    target: Target = None,
    workspace: WorkspaceOption = None,
    teacher: Model = "embedded",
    tiny: Tiny = False,
    queries_per_statement: Annotated[Optional[int], typer.Option(min=1, help="Queries per statement (default 3).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed of every step (default 0).")] = None,
    source: Annotated[Literal["profile", "teacher"], typer.Option(
        help="profile: the profile's own sentences (faithful by construction); teacher: listed by the teacher (APC).")] = "profile",
) -> None:
    """Persona statements, held-out probes, queries per statement and the discriminators' training data."""
    from rolecraft.cli.common import open_character, run_steps
    from rolecraft.step import Models
    from rolecraft.synth.nli import NLILabelsStep, NLIResponsesStep
    from rolecraft.synth.probes import ProbesStep
    from rolecraft.synth.queries import QueriesStep, QuerySettings
    from rolecraft.synth.relevance import FaithfulnessDataSettings, RelevanceStep
    from rolecraft.synth.statements import StatementSettings, StatementsStep

    _, ws = open_character(target, workspace)
    data = _settings(FaithfulnessDataSettings, tiny, seed=seed)
    runs = run_steps([
        StatementsStep(_settings(StatementSettings, tiny, seed=seed, source=source)),
        ProbesStep(),
        QueriesStep(_settings(QuerySettings, tiny, per_statement=queries_per_statement, seed=seed)),
        RelevanceStep(data), NLIResponsesStep(data), NLILabelsStep(data),
    ], ws, Models(teacher=teacher))
    typer.echo(f"teacher calls: {sum(r.calls for r in runs)} new, {sum(r.cached_calls for r in runs)} from cache")


@discriminators_app.command("train")
def discriminators_train(
    target: Target = None,
    workspace: WorkspaceOption = None,
    base: Annotated[Optional[str], typer.Option(help="HF encoder to fine-tune (default: the embedded all-MiniLM-L6-v2).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Default: 5 relevance, 10 NLI.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--lr", help="Default 1e-4.")] = None,
    max_length: Annotated[Optional[int], typer.Option(min=32, help="Default 256 tokens.")] = None,
    held_out: Annotated[Optional[float], typer.Option(min=0.0, max=0.9, help="Share of rows held out for the accuracy report (default 0.2).")] = None,
    held_out_by: Annotated[Optional[Literal["query", "statement"]], typer.Option(help="query: hold out whole questions (default); statement: whole statements (harder).")] = None,
    relevance_file: Annotated[Optional[Path], typer.Option("--relevance", help="Relevance rows instead of the workspace's (APC JSON or JSONL).")] = None,
    nli_file: Annotated[Optional[Path], typer.Option("--nli", help="Labelled NLI rows instead of the workspace's (APC .nli.v2 JSON or JSONL).")] = None,
    tiny: Tiny = False,
) -> None:
    """Fine-tune the relevance (2-way) and NLI (3-way) classifiers; prints held-out accuracy."""
    from rich.console import Console
    from rich.table import Table

    from rolecraft.cli.common import open_character
    from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord, load_reference
    from rolecraft.pipeline import Models, run
    from rolecraft.train.discriminators import DiscriminatorSettings, DiscriminatorsStep

    _, ws = open_character(target, workspace)
    settings = _settings(DiscriminatorSettings, tiny, base=base, epochs=epochs, learning_rate=learning_rate,
                         max_length=max_length, held_out=held_out, held_out_by=held_out_by)
    step = DiscriminatorsStep(
        settings,
        relevance=load_reference(relevance_file, RelevanceRecord) if relevance_file else None,
        nli=load_reference(nli_file, NLILabelRecord) if nli_file else None,
    )
    [done] = run([step], ws, Models())
    if done.skipped:
        typer.echo(f"no discriminators trained: {done.skipped}")
        return
    table = Table(title=f"discriminators in {ws.root / 'discriminators'}")
    for column in ("kind", "train", "held out", "accuracy", "majority", "epochs", "seconds"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for r in ws.read(step.name, step.record):
        accuracy, majority = (f"{x:.3f}" if x is not None else "-" for x in (r.accuracy, r.majority))
        table.add_row(r.kind, str(r.train_items), str(r.test_items), accuracy, majority, str(r.epochs), f"{r.seconds:.0f}")
    Console().print(table)


def _settings(model, tiny: bool, **options):
    """The stage's settings (its tiny preset with --tiny), with the options the user gave on top."""
    settings = model.tiny() if tiny else model()
    return settings.model_copy(update={k: v for k, v in options.items() if v is not None})


@apc_app.command("score")
def apc_score(
    target: Target = None,
    query: Annotated[str, typer.Option("--query", "-q", help="The user's turn the responses answer.")] = ...,
    responses: Annotated[list[str], typer.Option("--response", "-r", help="A response to score (repeatable).")] = ...,
    statement: Annotated[Optional[list[str]], typer.Option("--statement", "-s", help="Score against these statements instead of the character's (repeatable).")] = None,
    history: Annotated[Optional[Path], typer.Option(help="JSON list of earlier {role, content} messages (multi-turn).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Character name (default: the character's).")] = None,
    workspace: WorkspaceOption = None,
    discriminators: Annotated[Optional[Path], typer.Option(help="Folder with relevance/ and nli/ (default: WORKSPACE/discriminators); plain HF classifiers (APC's published ones) need --apc-prompts.")] = None,
    apc_prompts: Annotated[Optional[Path], typer.Option(help="APC's prompt.py (prompt_zh.py) from your copy of its repository: the templates its published classifiers read.")] = None,
    judge: Annotated[Optional[str], typer.Option(help="Use this LLM as both discriminators instead of the trained classifiers.")] = None,
    prune_below: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Skip NLI for statements less relevant than this (approximation).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Score responses to a query: per-statement relevance, NLI and contribution, the APC total and ΔAPC."""
    from rolecraft.errors import RolecraftError
    from rolecraft.faithfulness.apc import APCScorer

    if target is None and workspace is None and not (statement and name):
        raise RolecraftError("no character given", "name a character (file, workspace or built name), or pass --name and --statement")
    if target or workspace:
        from rolecraft.cli.common import open_character

        _, ws = open_character(target, workspace)
        character = ws.character()
    else:
        character, ws = None, None
    statements = statement or (character.statements or character.facts() if character else [])
    who = name or character.name
    relevance, nli = _discriminators(ws, discriminators, judge, apc_prompts)
    scorer = APCScorer(who, statements, relevance, nli, prune_below=prune_below)
    turn = [*(json.loads(history.read_text(encoding="utf-8")) if history else []), {"role": "user", "content": query}]
    results = scorer.score([turn], [list(responses)])[0]
    if as_json:
        typer.echo(json.dumps([{**r.model_dump(), "apc": r.total, "delta_apc": r.delta} for r in results], indent=2, ensure_ascii=False))
        return
    _print_scores(results)


def _discriminators(ws, folder: Path | None, judge: str | None, apc_prompts: Path | None = None):
    from rolecraft.errors import RolecraftError
    from rolecraft.faithfulness.judge import JudgeDiscriminator
    from rolecraft.faithfulness.reference import load_discriminator

    if judge:
        from rolecraft.llm import load_model

        model = load_model(judge)
        return JudgeDiscriminator(model, "relevance"), JudgeDiscriminator(model, "nli")
    folder = folder or (ws.discriminator_dir("relevance").parent if ws else None)
    if folder is None or not (folder / "relevance").exists() or not (folder / "nli").exists():
        raise RolecraftError(
            f"no trained discriminators in {folder or 'the workspace'}",
            "run `rolecraft discriminators train` first, pass --discriminators DIR, or --judge MODEL",
        )
    return load_discriminator(folder / "relevance", "relevance", apc_prompts), load_discriminator(folder / "nli", "nli", apc_prompts)


def _print_scores(results) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for n, result in enumerate(results, 1):
        table = Table(title=f"response {n}: {result.response}", title_justify="left", show_footer=True)
        table.add_column("statement", footer="APC (ΔAPC)", overflow="fold")
        for column in ("P_g", "entailed", "neutral", "contradicted"):
            table.add_column(column, justify="right")
        table.add_column("score", justify="right", footer=f"{result.total:.3f} ({result.delta:+.3f})")
        for s in result.statements:
            style = "bold" if s.active else ""
            table.add_row(s.statement, f"{s.relevance:.3f}", f"{s.entailed:.3f}", f"{s.neutral:.3f}",
                          f"{s.contradicted:.3f}" + (" (pruned)" if s.pruned else ""), f"{s.score:.3f}", style=style)
        console.print(table)
    if len(results) > 1:
        summary = Table(title="summary (bold rows above are active statements, P_g ≥ 0.5)", title_justify="left")
        for column in ("response", "APC", "ΔAPC"):
            summary.add_column(column, justify="left" if column == "response" else "right")
        for r in results:
            summary.add_row(r.response, f"{r.total:.3f}", f"{r.delta:+.3f}")
        console.print(summary)


@train_app.command("dpo")
def train_dpo_command(
    target: Target = None,
    workspace: WorkspaceOption = None,
    student: Model = "embedded",
    adapter: Annotated[str, typer.Option(help="Adapter to start from: auto (the workspace's sft adapter, if any), none, a name or a folder.")] = "auto",
    name: Annotated[str, typer.Option(help="Adapter name: written to WORKSPACE/adapters/NAME.")] = "dpo",
    rag: Annotated[bool, typer.Option("--rag/--no-rag", help="Sample with retrieved facts in the prompt.")] = True,
    samples: Annotated[Optional[int], typer.Option(min=2, help="Replies sampled per query (default 2).")] = None,
    margin: Annotated[Optional[float], typer.Option(min=0.0, help="Keep pairs whose APC gap exceeds this (default 0.2).")] = None,
    max_queries: Annotated[Optional[int], typer.Option(min=1, help="User turns to sample (default 200).")] = None,
    turns: Annotated[Optional[int], typer.Option(min=1, help="User turns per sampled conversation; >1 gives multi-turn contexts (default 1).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(min=8, help="Reply length in tokens (default 128).")] = None,
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    learning_rate: Annotated[float, typer.Option("--lr")] = 2e-4,
    beta: float = 0.1,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank of a fresh adapter.")] = 32,
    pairs: Annotated[Optional[Path], typer.Option(help="Train on these pairs (APC .rag.dpo JSON or JSONL) instead of sampling.")] = None,
    tiny: Tiny = False,
) -> None:
    """APC-based DPO: sample replies, score them, keep clear wins, train a LoRA adapter with TRL."""
    from rolecraft.cli.common import open_character, run_steps
    from rolecraft.pipeline import Models
    from rolecraft.synth.preference import ImportPreferenceStep, PreferenceSettings, PreferenceStep
    from rolecraft.train.dpo import DPOStep

    _, ws = open_character(target, workspace)
    # "auto" starts from the SFT adapter when there is one, never from an earlier DPO run.
    start = {"auto": "sft" if ws.trained_adapter("sft") else None, "none": None}.get(adapter, adapter)
    config = {"num_train_epochs": epochs, "learning_rate": learning_rate, "beta": beta}
    settings = _settings(PreferenceSettings, tiny, samples=samples, margin=margin, turns=turns,
                         max_contexts=max_queries, max_tokens=max_tokens)
    pairs_step = ImportPreferenceStep(pairs) if pairs else PreferenceStep(settings, adapter=start, rag=rag)
    runs = run_steps([pairs_step, DPOStep(config, rank, start=start, adapter=name)], ws, Models(student=student))
    if pairs:
        converted = runs[0].info.get("converted_from_gemma_markup", 0)
        note = f" ({converted} converted from Gemma's markup to messages for the student's own template)" if converted else ""
        typer.echo(f"{runs[0].rows or 0} preference pairs from {pairs}{note}")
    else:
        typer.echo(f"{runs[0].rows or 0} preference pairs from {runs[0].info.get('contexts', 0)} contexts")
    if not runs[1].skipped:
        typer.echo(f"adapter written to {ws.adapter(name)} (loss {runs[1].info.get('train_loss') or float('nan'):.4f})")
