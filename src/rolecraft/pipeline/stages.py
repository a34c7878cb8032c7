"""The stages of `rolecraft build`, in order. Each is a plain function of the build's state that
reads its inputs from the workspace, writes its outputs there, and returns a few numbers for the
manifest and the terminal. Model calls go through the workspace's request cache, so a stage cut
short by a crash or Ctrl-C resumes without repeating any finished call."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rolecraft.character import Character
from rolecraft.datasets.sft import SFTRow
from rolecraft.llm import run_sync
from rolecraft.llm.cache import CachedModel
from rolecraft.pipeline.presets import Preset
from rolecraft.synth.runner import cached_model
from rolecraft.workspace import Workspace


@dataclass
class Models:
    teacher: str = "embedded"
    student: str = "embedded"
    judge: str = "embedded"
    discriminator: str = ""  # HF encoder for the discriminators; "" = the embedded MiniLM


@dataclass
class Build:
    workspace: Workspace
    preset: Preset
    models: Models
    _cached: dict[str, CachedModel] = field(default_factory=dict)

    @property
    def character(self) -> Character:
        return self.workspace.character()  # re-read: stages add statements to it

    @cached_property
    def teacher(self) -> CachedModel:
        return cached_model(self.models.teacher, self.workspace)

    def adapter(self, name: str) -> Path:
        return self.workspace.path(f"adapters/{name}")

    def student(self, adapter: str | None) -> CachedModel:
        options = {"adapter": str(self.adapter(adapter))} if adapter else {}
        return cached_model(self.models.student, self.workspace, **options)


def statements(b: Build) -> dict[str, Any]:
    from rolecraft.synth.statements import statements_stage

    return {"statements": len(statements_stage(b.workspace, b.teacher, b.preset.statements))}


def queries(b: Build) -> dict[str, Any]:
    from rolecraft.synth.apc_records import StatementRecord
    from rolecraft.synth.queries import queries_stage

    rows = queries_stage(b.workspace, b.workspace.read("statements", StatementRecord), b.teacher, b.preset.queries)
    return {"queries": sum(len(r.queries) for r in rows)}


def experiences(b: Build) -> dict[str, Any]:
    """Character-LLM's experience reconstruction: scenes, then a script per scene, then protective scripts."""
    from rolecraft.synth.experiences import make_experiences
    from rolecraft.synth.protective import make_protective
    from rolecraft.synth.scenes import make_scenes
    from rolecraft.synth.stats import run_stage

    ws, teacher, character, p = b.workspace, b.teacher, b.character, b.preset
    scenes, _ = run_sync(run_stage(ws, "scenes", make_scenes(character, teacher, p.scenes), model=teacher, settings=p.scenes))
    kept, rejected = run_sync(
        run_stage(ws, "experiences", make_experiences(character, teacher, scenes, p.experiences), model=teacher, settings=p.experiences)
    )
    work = make_protective(character, teacher, p.protective.count(len(kept)), p.protective)
    safe, _ = run_sync(run_stage(ws, "protective", work, model=teacher, settings=p.protective))
    return {"scenes": len(scenes), "experiences": len(kept), "protective": len(safe), "rejected": sum(rejected.values())}


def selfalign(b: Build) -> dict[str, Any]:
    """Ditto's self-alignment, when asked: the teacher plays both the curious user and the character,
    answering from the profile; the dialogues join the SFT data."""
    if b.preset.selfalign is None:
        return {"asked": False, "skipped": "not asked for (--selfalign)"}
    from rolecraft.synth.selfalign_run import run_selfalign

    summary = run_selfalign([b.character], b.teacher, b.workspace, b.preset.selfalign)
    return {"asked": True, "dialogues": summary.dialogues, "turns": summary.turns, "rejections": summary.rejections}


def selfalign_rows(b: Build) -> list[SFTRow]:
    """The self-aligned dialogues as SFT rows, if this build asked for them."""
    from rolecraft.synth.selfalign import SelfAlignDialogue
    from rolecraft.synth.selfalign_run import STAGE

    if b.preset.selfalign is None:
        return []
    return [SFTRow(messages=d.messages(), source=d.id) for d in b.workspace.read(STAGE, SelfAlignDialogue)]


def sft(b: Build) -> dict[str, Any]:
    from rolecraft.errors import RolecraftError
    from rolecraft.synth.records import Experience
    from rolecraft.train.sft import train_sft

    data = b.workspace.read("experiences", Experience) + b.workspace.read("protective", Experience)
    rows = selfalign_rows(b)
    if not data and not rows:
        raise RolecraftError(
            "the teacher produced no usable experience scripts, so there is nothing to fine-tune on",
            "use a stronger --teacher, or see the rejection counts with `rolecraft stats`",
        )
    settings = b.preset.sft.model_copy(update={"student": b.models.student})
    result = train_sft(b.character, data, settings, b.adapter("sft"), config=dict(b.preset.sft_config), rows=rows)
    return {"rows": result.rows, "train_loss": result.metrics.get("train_loss"), "seconds": result.seconds}


def faithfulness_data(b: Build) -> dict[str, Any]:
    from rolecraft.synth.apc_records import StatementQueries
    from rolecraft.synth.faithfulness_data import faithfulness_data_stage

    queries = b.workspace.read("statement_queries", StatementQueries)
    relevance, nli = faithfulness_data_stage(b.workspace, queries, b.teacher, b.preset.faithfulness)
    return {"relevance": len(relevance), "nli": len(nli)}


def discriminators(b: Build) -> dict[str, Any]:
    """Trains the APC classifiers; with no relevance or NLI rows (a teacher too weak to write usable
    queries) the build goes on without APC: no DPO, no APC in the evaluation, the reason recorded."""
    import shutil

    from rolecraft.faithfulness.discriminators import discriminator_dir, discriminators_stage
    from rolecraft.synth.apc_records import NLILabelRecord, RelevanceRecord

    ws = b.workspace
    rows = {name: ws.read(name, record) if ws.has(name) else []
            for name, record in (("relevance", RelevanceRecord), ("nli_labels", NLILabelRecord))}
    missing = [name for name, found in rows.items() if not found]
    if missing:
        for kind in ("relevance", "nli"):  # never score with classifiers left from older data
            shutil.rmtree(discriminator_dir(ws, kind), ignore_errors=True)
        reason = f"the teacher wrote no usable {' or '.join(missing)} rows"
        ws.record_stage("discriminators", status="skipped", reason=reason)
        return {"trained": False, "skipped": reason}
    settings = b.preset.discriminators.model_copy(update={"base": b.models.discriminator})
    reports = discriminators_stage(ws, settings, relevance=rows["relevance"], nli=rows["nli_labels"])
    return {kind: {"accuracy": r.accuracy, "majority": r.majority} for kind, r in reports.items()}


def held_out_split(b: Build) -> tuple[list[str], list[str]]:
    """DPO trains on most queries; the rest are kept for evaluating the agents on unseen questions."""
    import random

    from rolecraft.synth.apc_records import StatementQueries

    queries = sorted({q for row in b.workspace.read("statement_queries", StatementQueries) for q in row.queries})
    random.Random(0).shuffle(queries)
    cut = max(1, round(len(queries) * b.preset.held_out_queries))
    return queries[cut:], queries[:cut]


def dpo(b: Build) -> dict[str, Any]:
    from rolecraft.agent import Agent
    from rolecraft.datasets.preference import preference_stage
    from rolecraft.faithfulness.apc import APCScorer
    from rolecraft.faithfulness.discriminators import has_discriminators, workspace_discriminators
    from rolecraft.train.dpo import dpo_config, lora_config, train_dpo

    ws = b.workspace
    if not has_discriminators(ws):
        reason = "no APC discriminators to score replies with"
        ws.record_stage("dpo", status="skipped", reason=reason)
        return {"pairs": 0, "trained": False, "skipped": reason}
    agent = Agent.from_workspace(ws, model=b.student("sft"), retrieval=True)
    scorer = APCScorer(agent.character.name, agent.character.statements, *workspace_discriminators(ws))
    train_queries, _ = held_out_split(b)
    pairs = preference_stage(ws, agent, scorer, train_queries, b.preset.preference)
    if not pairs:
        reason = "no pair of replies passed the APC margin"
        ws.record_stage("dpo", status="skipped", reason=reason)
        return {"pairs": 0, "trained": False, "skipped": reason}
    config = dpo_config(ws.path("adapters/.dpo-run"), **b.preset.dpo_config)
    result = train_dpo(b.models.student, pairs, b.adapter("dpo"), config=config,
                       lora=lora_config(b.preset.dpo_rank), adapter=b.adapter("sft"))
    return {"pairs": len(pairs), "trained": True, "seconds": result.seconds}


def evaluation(b: Build) -> dict[str, Any]:
    """Interview prompt-only, RAG, SFT and SFT+DPO agents on the same questions; judge; APC; report."""
    from rolecraft.eval.run import EvalConfig, evaluate
    from rolecraft.eval.targets import AgentSpec
    from rolecraft.faithfulness.discriminators import has_discriminators

    student = b.models.student
    agents = [AgentSpec(name="prompt-only", model=student), AgentSpec(name="rag", model=student, retrieval="rag"),
              AgentSpec(name="sft", model=student, adapter="sft", retrieval="rag")]
    if (b.adapter("dpo") / "adapter_config.json").exists():
        agents.append(AgentSpec(name="sft+dpo", model=student, adapter="dpo", retrieval="rag"))
    counts = b.preset.eval
    config = EvalConfig(
        agents=agents, judge=b.models.judge, teacher=b.models.teacher, single=counts.single, probes=counts.probes,
        multi=counts.multi, rounds=counts.rounds, samples=counts.samples, reply_tokens=counts.reply_tokens,
        judge_tokens=counts.judge_tokens, run="build", apc=has_discriminators(b.workspace),
    )
    results = run_sync(evaluate(b.character, b.workspace, config))
    return {"report": str(b.workspace.path("eval/build/report.md")), "agents": [a.name for a in agents],
            "overall": results.get("overall", {})}


def export(b: Build) -> dict[str, Any]:
    from rolecraft.pipeline.exports import export_build

    return export_build(b)


STAGES = [statements, queries, experiences, selfalign, sft, faithfulness_data, discriminators, dpo, evaluation, export]

# The preset fields each stage depends on (part of its fingerprint).
SETTINGS: dict[str, set[str]] = {
    "statements": {"statements"},
    "queries": {"queries"},
    "experiences": {"scenes", "experiences", "protective"},
    "selfalign": {"selfalign"},
    "sft": {"sft", "sft_config"},
    "faithfulness_data": {"faithfulness"},
    "discriminators": {"discriminators"},
    "dpo": {"preference", "dpo_config", "dpo_rank", "held_out_queries"},
    "evaluation": {"eval", "held_out_queries"},
    "export": set(),
}
