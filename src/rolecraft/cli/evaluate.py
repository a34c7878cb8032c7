"""`rolecraft eval`: interview agents and compare them in one report; judge published transcripts; WikiRoleEval.

    rolecraft eval PROFILE --agent prompt=embedded --agent long=embedded,profile --single 10 --multi 3
    rolecraft eval transcripts RESULT.json [RESULT.jsonl ...] --character PROFILE [--protocol reference --reference REPO]
    rolecraft eval wikirole TEST.jsonl --agent ditto=openai:qwen@http://127.0.0.1:8000/v1
    rolecraft eval wikirole RESULTS.jsonl          (a results file's `messages`, judged as they are)
    rolecraft eval ditto-scores OUTPUT.json ...    (Ditto's judged outputs, aggregated as its scoring.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

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
Samples = Annotated[int, typer.Option(min=1, help="Judge samples per judgement (one is greedy; several are sampled).")]
JudgeTokens = Annotated[int, typer.Option(min=32, help="Token budget of one judge answer (reasoning + verdict).")]
JudgeTemperature = Annotated[float, typer.Option(min=0.0, max=2.0, help="Judge temperature when sampling several answers.")]
Protocol = Annotated[
    Literal["rolecraft", "reference"],
    typer.Option(help="rolecraft's judging, or the paper's scorer reproduced exactly (needs --reference)."),
]
Reference = Annotated[Optional[Path], typer.Option(help="Your copy of the paper's repository (reference protocol).")]
Agents = Annotated[
    list[str],
    typer.Option("--agent", "-a", help="NAME=MODEL[,adapter=PATH][,rag[=K]][,profile][,served]; repeat to compare."),
]


def _load(character_file: Path):
    """The character, and its workspace when the argument is one; nothing is written."""
    from rolecraft.cards import load_character
    from rolecraft.workspace import Workspace

    if character_file.is_dir() and (character_file / "character.json").exists():
        ws = Workspace(character_file)
        return ws.character(), ws
    return load_character(character_file), None


def _open(character_file: Path, workspace: Optional[Path]):
    from rolecraft.workspace import Workspace

    character, ws = _load(character_file)
    return character, ws or Workspace.for_character(character, workspace)


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
    protocol: Protocol = "rolecraft",
    reference: Reference = None,
    verdict: Annotated[Optional[str], typer.Option(
        help="AGENT[:BASELINE]: the report opens with AGENT minus BASELINE (default: the first --agent) on the "
             "held-out probes, with paired intervals.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Interview one or more agents of a character on the same questions; judge; write one report."""
    from rolecraft.eval.charllm_reference import reference_rubric
    from rolecraft.eval.run import EvalConfig, evaluate
    from rolecraft.eval.targets import AgentSpec
    from rolecraft.llm import run_sync

    specs = [AgentSpec.parse(a) for a in agent]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        from rolecraft.errors import RolecraftError

        raise RolecraftError(f"agent names repeat ({', '.join(names)})", "give every --agent its own NAME=")
    served, _, baseline = (verdict or "").partition(":")
    baseline = baseline or names[0]
    if verdict and (served == baseline or not {served, baseline} <= set(names)):
        from rolecraft.errors import RolecraftError

        raise RolecraftError(f"--verdict {verdict} does not name two different agents of {', '.join(names)}",
                             "write --verdict AGENT or AGENT:BASELINE with names given by --agent NAME=...")
    reference_rubric(protocol, reference)  # the paper's files are checked before anything is written
    char, ws = _open(character, workspace)
    config = EvalConfig(
        agents=specs, judge=judge, interviewer=interviewer, teacher=teacher, questions=questions,
        multi_questions=multi_questions, bank_per_topic=bank_size, bank_probes=bank_probes, single=single,
        probes=probes, multi=multi, rounds=rounds, samples=samples, judge_tokens=judge_tokens,
        reply_tokens=reply_tokens, temperature=temperature, seed=seed, run=run, apc=apc, protocol=protocol,
        reference=reference, served=served or None, baseline=baseline,
    )
    results = run_sync(evaluate(char, ws, config))
    _print(results, ws.path(f"eval/{run}"))


@eval_app.command()
def transcripts(
    files: Annotated[list[Path], typer.Argument(help="Character-LLM result files: .json single-turn, .jsonl multi-turn.")],
    character: Annotated[Path, typer.Option(help="The interviewed character's profile or card (grounds the judge).")],
    bank: Annotated[Optional[Path], typer.Option(help="Multi-turn bank, to recover each goal's topic.")] = None,
    agent: Annotated[Optional[str], typer.Option(help="Agent name (default: from the file or result folder, e.g. 'sft').")] = None,
    judge: Judge = "embedded",
    samples: Samples = 1,
    judge_tokens: JudgeTokens = 384,
    protocol: Protocol = "rolecraft",
    reference: Reference = None,
    run: Annotated[str, typer.Option(help="Results go to WORKSPACE/eval/RUN/.")] = "transcripts",
    workspace: WorkspaceOption = None,
) -> None:
    """Judge published interview transcripts without regenerating them. Every readable file is judged;
    an unreadable one is named and skipped."""
    from rolecraft.errors import RolecraftError
    from rolecraft.eval.charllm_reference import reference_rubric
    from rolecraft.eval.questions import load_bank
    from rolecraft.eval.run import judge_transcripts
    from rolecraft.eval.transcripts import read_many
    from rolecraft.llm import run_sync
    from rolecraft.workspace import Workspace

    char, ws = _load(character)
    rubric = reference_rubric(protocol, reference)
    goals = load_bank(bank) if bank else []
    records, unreadable = read_many(files, char.full_name, agent, goals, protocol, char.name)
    if not records:
        raise RolecraftError("no transcript could be read: " + "; ".join(unreadable),
                             "pass Character-LLM interview results (.json single-turn, .jsonl multi-turn)")
    ws = ws or Workspace.for_character(char, workspace)
    results = run_sync(judge_transcripts(char, ws, records, judge, samples, judge_tokens, run, rubric))
    _print(results, ws.path(f"eval/{run}"))
    for line in unreadable:
        typer.echo(f"not judged: {line}", err=True)


@eval_app.command()
def wikirole(
    file: Annotated[Path, typer.Argument(help="WikiRoleEval JSONL (Ditto's test schema, or a results file with `messages`).")],
    agent: Annotated[
        Optional[list[str]],
        typer.Option("--agent", "-a", help="NAME=MODEL[,...]; repeat to compare. None: judge the file's own `messages`."),
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="Agent name for the file's own `messages` (default: the file's stem).")] = None,
    judge: Judge = "embedded",
    samples: Annotated[int, typer.Option(min=1, help="Judge samples per judgement (Ditto: 3).")] = 3,
    judge_temperature: JudgeTemperature = 0.2,
    judge_tokens: JudgeTokens = 384,
    protocol: Protocol = "rolecraft",
    reference: Annotated[Optional[Path], typer.Option(help="Your copy of OFA-Sys/Ditto (reference protocol).")] = None,
    reply_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    seed: int = 0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N items.")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Folder for cache and report (default ./workspaces/wikirole-<file>).")
    ] = None,
) -> None:
    """Run WikiRoleEval: consistency (4 candidates), knowledge (1–10 vs evidence), rejection accuracy; then
    Ditto's summary per language."""
    from rolecraft.character import Character
    from rolecraft.errors import RolecraftError
    from rolecraft.eval.cost import Cost
    from rolecraft.eval.judges import RUBRICS
    from rolecraft.eval.run import finish
    from rolecraft.eval.targets import AgentSpec
    from rolecraft.eval.wikiroleeval import recorded, run_wikirole
    from rolecraft.formats.wikirole import read_wikirole
    from rolecraft.llm import SamplingParams, run_sync
    from rolecraft.llm.pool import ModelPool
    from rolecraft.workspace import Workspace, default_workspace

    items = read_wikirole(file)[:limit]
    specs = [AgentSpec.parse(a) for a in agent or []]
    given: list = []
    if not specs:
        if not all(item.messages for item in items):
            raise RolecraftError(f"{file} holds no `messages` to judge", "give agents to play the roles: --agent NAME=MODEL")
        given = recorded(items, name or file.stem)
    if protocol == "reference":
        if reference is None:
            raise RolecraftError("the reference protocol needs Ditto's judge prompts", "pass --reference PATH: your copy of OFA-Sys/Ditto")
        from rolecraft.eval.ditto_reference import ditto_rubrics

        rubrics = ditto_rubrics(reference)
    else:
        rubrics = RUBRICS
    ws = Workspace(out or default_workspace(Character(full_name=f"wikirole-{file.stem}")))
    params = SamplingParams(max_tokens=reply_tokens, temperature=temperature, seed=seed)

    async def go():
        pool, cost = ModelPool(ws.cache_path), Cost()
        try:
            records, judgements = await run_wikirole(items, specs, pool, judge, params, samples, judge_tokens, cost,
                                                     rubrics, judge_temperature, given)
        finally:
            await pool.aclose()
        results = finish(ws, "eval/wikirole", f"WikiRoleEval ({file.name})", records, judgements, cost, judge,
                         samples, protocol=protocol)
        return results, judgements

    results, judgements = run_sync(go())
    _print(results, ws.path("eval/wikirole"))
    _print_ditto(ditto_tables(items, judgements), ws.path("eval/wikirole/ditto_scores.json"))


def ditto_tables(items, judgements) -> dict:
    from rolecraft.eval.wikiroleeval import ditto_table, turns_of_judgements

    return {agent: ditto_table(turns) for agent, turns in turns_of_judgements(items, judgements).items()}


def _print_ditto(tables: dict, path: Optional[Path] = None) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from rolecraft.eval.wikiroleeval import DOMAINS

    table = Table(title="Ditto's summary (as its scoring.py): mean per language and over all turns", title_justify="left")
    for column in ("model", "lang", *DOMAINS):
        table.add_column(column)
    for model, by_lang in tables.items():
        for lang, scores in by_lang.items():
            table.add_row(model, lang, *(f"{scores[d]:.2f}" for d in DOMAINS))
    Console().print(table)
    if path is not None:
        from rolecraft.workspace import atomic_write_text

        atomic_write_text(path, json.dumps(tables, indent=2))
        typer.echo(f"Ditto's summary: {path}")


@eval_app.command("ditto-scores")
def ditto_scores(
    files: Annotated[list[Path], typer.Argument(help="Ditto's judged outputs (eval/output/*_output.json).")],
    model_name: Annotated[Optional[list[str]], typer.Option("--model-name", help="A name per file (default: the file's stem).")] = None,
) -> None:
    """Aggregate Ditto's judged outputs exactly as its scoring.py: consistency, rejection accuracy and
    knowledge, per language and over all turns."""
    from rolecraft.errors import RolecraftError
    from rolecraft.eval.wikiroleeval import ditto_table, turns_of_ditto
    from rolecraft.formats.wikirole import read_ditto_scores

    names = model_name or [f.stem for f in files]
    if len(names) != len(files):
        raise RolecraftError(f"{len(names)} --model-name for {len(files)} files", "give one name per file, or none")
    _print_ditto({n: ditto_table(turns_of_ditto(read_ditto_scores(f))) for n, f in zip(names, files)})
