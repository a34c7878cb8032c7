"""`rolecraft eval`: interview agents and compare them in one report; judge published transcripts; WikiRoleEval.

    rolecraft eval PROFILE --agent prompt=embedded --agent long=embedded,profile --single 10 --multi 3
    rolecraft eval transcripts RESULT.json [RESULT.jsonl ...] --character PROFILE
    rolecraft eval wikirole TEST.jsonl --agent ditto=openai:qwen@http://127.0.0.1:8000/v1
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from rolecraft.cli.app import app
from rolecraft.cli.options import Workspace as WorkspaceOption


class _InterviewByDefault(TyperGroup):
    """`rolecraft eval PROFILE ...` means `rolecraft eval interview PROFILE ...`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["interview", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(cls=_InterviewByDefault, no_args_is_help=True,
                       help="Interview agents with an LLM judge; judge published transcripts; run WikiRoleEval.")
app.add_typer(eval_app, name="eval")

Judge = Annotated[str, typer.Option(help="Judge model (provider:name). Use a strong model for real numbers.")]
Samples = Annotated[int, typer.Option(min=1, help="Judge samples per judgement (more than 1 samples at T=0.7).")]
JudgeTokens = Annotated[int, typer.Option(min=32, help="Token budget of one judge answer (reasoning + verdict).")]
Agents = Annotated[
    list[str],
    typer.Option("--agent", "-a", help="NAME=MODEL[,adapter=PATH][,rag[=K]][,profile][,served]; repeat to compare."),
]


def _open(character_file: Path, workspace: Optional[Path]):
    from rolecraft.cards import load_character
    from rolecraft.workspace import Workspace

    if character_file.is_dir() and (character_file / "character.json").exists():
        ws = Workspace(character_file)
        return ws.character(), ws
    character = load_character(character_file)
    return character, Workspace.for_character(character, workspace)


def _print(results, folder: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from rolecraft.eval.report import tables

    console = Console()
    for title, header, rows in tables(results):
        table = Table(title=title, title_justify="left")
        for h in header:
            table.add_column(h)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(f"report: {folder / 'report.md'} ({folder / 'report.html'}, results.json, charts)")


@eval_app.command()
def interview(
    character: Annotated[Path, typer.Argument(help="Profile, card, or a workspace folder.")],
    agent: Agents = ["prompt=embedded"],  # noqa: B006 (typer reads the default, never mutates it)
    judge: Judge = "embedded",
    interviewer: Annotated[Optional[str], typer.Option(help="Multi-turn interviewer model (default: the judge).")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Writes the default question bank (default: the judge).")] = None,
    questions: Annotated[Optional[Path], typer.Option(help="Single-turn bank, Character-LLM format.")] = None,
    multi_questions: Annotated[
        Optional[Path], typer.Option(help="Multi-turn goals (default: the bank's topics 1–3).")
    ] = None,
    bank_size: Annotated[int, typer.Option(min=1, help="Questions per topic when the teacher writes the bank.")] = 8,
    bank_probes: Annotated[int, typer.Option(min=1, help="Probes when the teacher writes the bank.")] = 5,
    single: Annotated[Optional[int], typer.Option(min=0, help="Topic 1–3 questions to ask (default all).")] = None,
    probes: Annotated[Optional[int], typer.Option(min=0, help="Knowledge-boundary probes to ask (default all).")] = None,
    multi: Annotated[Optional[int], typer.Option(min=0, help="Multi-turn goals to pursue (default all).")] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per multi-turn interview.")] = 5,
    samples: Samples = 1,
    judge_tokens: JudgeTokens = 384,
    reply_tokens: Annotated[int, typer.Option(min=1, help="Token limit of one agent reply.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="Agents' and interviewer's temperature.")] = 0.7,
    seed: int = 0,
    run: Annotated[str, typer.Option(help="Name of this run: results go to WORKSPACE/eval/RUN/.")] = "interview",
    apc: Annotated[bool, typer.Option(help="Also score every reply with APC / ΔAPC.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Interview one or more agents of a character on the same questions; judge; write one report."""
    from rolecraft.eval.run import EvalConfig, evaluate
    from rolecraft.eval.targets import AgentSpec
    from rolecraft.llm import run_sync

    specs = [AgentSpec.parse(a) for a in agent]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        from rolecraft.errors import RolecraftError

        raise RolecraftError(f"agent names repeat ({', '.join(names)})", "give every --agent its own NAME=")
    char, ws = _open(character, workspace)
    config = EvalConfig(
        agents=specs, judge=judge, interviewer=interviewer, teacher=teacher, questions=questions,
        multi_questions=multi_questions, bank_per_topic=bank_size, bank_probes=bank_probes, single=single,
        probes=probes, multi=multi, rounds=rounds, samples=samples, judge_tokens=judge_tokens,
        reply_tokens=reply_tokens, temperature=temperature, seed=seed, run=run, apc=apc,
    )
    results = run_sync(evaluate(char, ws, config))
    _print(results, ws.path(f"eval/{run}"))


@eval_app.command()
def transcripts(
    files: Annotated[list[Path], typer.Argument(help="Character-LLM result files: .json single-turn, .jsonl multi-turn.")],
    character: Annotated[Path, typer.Option(help="The interviewed character's profile or card (grounds the judge).")],
    bank: Annotated[Optional[Path], typer.Option(help="Multi-turn bank, to recover each goal's topic.")] = None,
    agent: Annotated[Optional[str], typer.Option(help="Agent name (default: from the result folder, e.g. 'sft').")] = None,
    judge: Judge = "embedded",
    samples: Samples = 1,
    judge_tokens: JudgeTokens = 384,
    run: Annotated[str, typer.Option(help="Results go to WORKSPACE/eval/RUN/.")] = "transcripts",
    workspace: WorkspaceOption = None,
) -> None:
    """Judge published interview transcripts without regenerating them."""
    from rolecraft.eval.questions import load_bank
    from rolecraft.eval.run import judge_transcripts
    from rolecraft.eval.transcripts import read_transcripts
    from rolecraft.llm import run_sync

    char, ws = _open(character, workspace)
    goals = load_bank(bank) if bank else []
    records = [t for f in files for t in read_transcripts(f, char.full_name, agent, goals)]
    results = run_sync(judge_transcripts(char, ws, records, judge, samples, judge_tokens, run))
    _print(results, ws.path(f"eval/{run}"))


@eval_app.command()
def wikirole(
    file: Annotated[Path, typer.Argument(help="WikiRoleEval JSONL (Ditto's test schema).")],
    agent: Agents = ["base=embedded"],  # noqa: B006
    judge: Judge = "embedded",
    samples: Samples = 1,
    judge_tokens: JudgeTokens = 384,
    reply_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    seed: int = 0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N items.")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Folder for cache and report (default ./workspaces/wikirole-<file>).")
    ] = None,
) -> None:
    """Run WikiRoleEval: consistency (4 candidates), knowledge (1–10 vs evidence), rejection accuracy."""
    from rolecraft.character import Character
    from rolecraft.eval.cost import Cost
    from rolecraft.eval.run import finish
    from rolecraft.eval.targets import AgentSpec
    from rolecraft.eval.wikiroleeval import run_wikirole
    from rolecraft.formats.wikirole import read_wikirole
    from rolecraft.llm import SamplingParams, run_sync
    from rolecraft.llm.pool import ModelPool
    from rolecraft.workspace import Workspace, default_workspace

    items = read_wikirole(file)[:limit]
    ws = Workspace(out or default_workspace(Character(full_name=f"wikirole-{file.stem}")))
    specs = [AgentSpec.parse(a) for a in agent]
    params = SamplingParams(max_tokens=reply_tokens, temperature=temperature, seed=seed)

    async def go() -> dict:
        pool, cost = ModelPool(ws.cache_path), Cost()
        try:
            records, judgements = await run_wikirole(items, specs, pool, judge, params, samples, judge_tokens, cost)
        finally:
            await pool.aclose()
        return finish(ws, "eval/wikirole", f"WikiRoleEval ({file.name})", records, judgements, cost, judge, samples)

    results = run_sync(go())
    _print(results, ws.path("eval/wikirole"))
