"""`rolecraft eval`: interview several agents of one character on the same questions, judge, report.

Everything lands in `WORKSPACE/eval/<run>/`: transcripts.jsonl, judgements.jsonl, results.json,
report.md, report.html and the charts. Every model call goes through the workspace's request cache,
so a killed run, rerun with the same command, repeats no finished call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from rolecraft.character import Character
from rolecraft.eval.apc_eval import apc_judgements
from rolecraft.eval.calibration import check_judge
from rolecraft.eval.charllm_reference import ReferenceCharacterLLM, reference_jobs, reference_rubric
from rolecraft.eval.cost import Cost
from rolecraft.eval.grounding import profile_for_judge
from rolecraft.eval.interview import interview_multi, interview_single, scene
from rolecraft.eval.judges import RUBRICS, Case, Rubric, run_judges
from rolecraft.eval.probing import run_probes
from rolecraft.eval.questions import default_bank, load_bank, pick, split_probes
from rolecraft.eval.records import Judgement, Transcript
from rolecraft.eval.report import write_report
from rolecraft.eval.results import EvalResults
from rolecraft.eval.targets import AgentSpec, build_target
from rolecraft.llm import ChatModel, SamplingParams
from rolecraft.llm.pool import ModelPool
from rolecraft.rejections import Rejections
from rolecraft.step import Context, Output, Step
from rolecraft.synth.probes import ProbesStep
from rolecraft.synth.statements import StatementsStep
from rolecraft.workspace import Workspace

INTERVIEWER_TOKENS = 96


class EvalCounts(BaseModel):
    """How much a build's evaluation asks: the counts and lengths of `EvalConfig` a preset sets."""

    single: int | None = None  # topic 1–3 questions asked single-turn (None: all)
    probes: int | None = None  # knowledge-boundary probes (None: all)
    multi: int | None = 10  # multi-turn goals
    rounds: int = 5
    samples: int = 1  # judge samples per judgement
    reply_tokens: int = 256
    judge_tokens: int = 384


class EvalConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    agents: list[AgentSpec]
    judge: str | ChatModel = "embedded"
    interviewer: str | ChatModel | None = None  # default: the judge
    teacher: str | ChatModel | None = None  # writes the default question bank; default: the judge
    questions: Path | None = None  # single-turn bank (Character-LLM format); default: written by the teacher
    multi_questions: Path | None = None  # multi-turn goals; default: the bank's topic 1–3 questions
    bank_per_topic: int = 8  # questions per topic 1–3 when the teacher writes the bank
    bank_probes: int = 5  # probes when the teacher writes the bank
    single: int | None = None  # topic 1–3 questions asked single-turn (None = all, 0 = none)
    probes: int | None = None  # knowledge-boundary probes (None = all)
    multi: int | None = None  # multi-turn goals (None = all, 0 = none)
    rounds: int = 5
    samples: int = 1  # judge samples per judgement
    judge_tokens: int = 384
    reply_tokens: int = 256
    temperature: float = 0.7  # the agents' and the interviewer's
    seed: int = 0
    run: str = "interview"
    apc: bool = False
    held_out: bool = True  # answer the workspace's held-out probes (synth.probes) and score them by rule
    check_judge: bool = True  # score known-good and known-bad answers before trusting the judge's rubrics
    interview: bool = True  # interview and judge (only where the judge passed its check)
    served: str | None = None  # the agent the verdict compares with `baseline`
    baseline: str = "prompt-only"
    protocol: Literal["rolecraft", "reference"] = "rolecraft"  # reference: Character-LLM's scorer, exactly
    reference: Path | None = None  # the user's copy of the paper's repository (reference protocol)


def interview_jobs(transcripts: list[Transcript], character: Character,
                   reference: ReferenceCharacterLLM | None = None) -> list[tuple[Case, Rubric, str]]:
    """Character-LLM's dimensions for every transcript; probes are also judged for pleading ignorance.
    With the `reference` rubric, the paper's scorer's jobs instead (charllm_reference)."""
    if reference is not None:
        return reference_jobs(transcripts, character, reference)
    jobs = []
    for t in transcripts:
        case = Case(
            agent=t.agent, item=t.id, kind=t.kind, topic_id=t.question.topic_id, probe=t.question.probe,
            name=character.name, dialogue=t.turns,
            profile=profile_for_judge(character, " ".join(m.content for m in t.turns)),
        )
        rubric = RUBRICS["character-llm"]
        jobs += [(case, rubric, d) for d in rubric.dimensions(t.kind)]
        if t.question.probe:
            jobs.append((case.model_copy(update={"label": 1}), RUBRICS["ditto-rejection"], "ditto-rejection"))
    return jobs


async def evaluate(character: Character, workspace: Workspace, config: EvalConfig,
                   pool: ModelPool | None = None) -> EvalResults:
    """Held-out probes scored by rule, the judge's check, then (where it passed) interviews judged by
    it; one report. Models come from `pool` (a build's), else from a pool of its own."""
    reference = reference_rubric(config.protocol, config.reference)
    own = pool is None
    pool = pool or ModelPool(workspace.cache_path)
    cost = Cost()
    folder = f"eval/{config.run}"
    try:
        judge = pool.get(config.judge)
        where = scene(character, *reference.scene(character.name)) if reference else scene(character)
        targets = [build_target(spec, character, pool, workspace, where) for spec in config.agents]
        params = SamplingParams(max_tokens=config.reply_tokens, temperature=config.temperature, seed=config.seed)
        probe_results, check = [], None
        if config.held_out and workspace.has(ProbesStep.name):
            probes = workspace.read(ProbesStep.name, ProbesStep.record)
            greedy = params.model_copy(update={"temperature": 0.0})
            probe_results = await run_probes(character, workspace, targets, probes, greedy, cost)
            workspace.write(f"{folder}/probes", probe_results)
            if config.check_judge:
                facts = workspace.read(StatementsStep.name, StatementsStep.record)
                check = await check_judge(judge, character, facts, probes, config.judge_tokens, cost)
        transcripts, judgements, rejected = [], [], Rejections()
        if config.interview and (check is None or check.passed):
            transcripts, judgements, rejected = await interview(character, workspace, targets, pool, config, params,
                                                              cost, reference)
        workspace.write(f"{folder}/transcripts", transcripts)
        shown = config.judge if isinstance(config.judge, str) else judge.spec  # "embedded", not its cache path
        return finish(workspace, folder, character.full_name, transcripts, judgements, cost, shown, config.samples,
                      rejected, probe_results=probe_results, judge_check=check, served=config.served,
                      baseline=config.baseline, protocol=config.protocol)
    finally:
        if own:
            await pool.aclose()


async def interview(character: Character, workspace: Workspace, targets: list, pool: ModelPool, config: EvalConfig,
                    params: SamplingParams, cost: Cost, reference: ReferenceCharacterLLM | None = None,
                    ) -> tuple[list[Transcript], list[Judgement], Rejections]:
    """Character-LLM's interviews (single- and multi-turn) of every target, judged on its dimensions."""
    judge = pool.get(config.judge)
    bank, rejected = ((load_bank(config.questions), Rejections()) if config.questions
                      else await default_bank(character, workspace, pool.get(config.teacher or config.judge),
                                              per_topic=config.bank_per_topic, probes=config.bank_probes))
    plain, probes = split_probes(bank)
    goals = split_probes(load_bank(config.multi_questions))[0] if config.multi_questions else plain
    asked = pick(plain, config.single) + pick(probes, config.probes)
    goals = pick(goals, config.multi)
    transcripts = await interview_single(character, targets, asked, params, cost) if asked else []
    if goals and config.rounds > 0:
        interviewer = pool.get(config.interviewer or config.judge)
        # One line of speech is asked for; the first blank line ends it (clean_question keeps no more).
        ask = SamplingParams(max_tokens=INTERVIEWER_TOKENS, temperature=config.temperature, seed=config.seed,
                             stop=["\n\n"])
        transcripts += await interview_multi(character, targets, goals, interviewer, config.rounds, params, ask, cost)
    judgements = await run_judges(judge, interview_jobs(transcripts, character, reference), config.samples,
                                  config.judge_tokens, cost=cost)
    if config.apc:
        judgements += apc_judgements(workspace, transcripts)
    return transcripts, judgements, rejected


def finish(workspace: Workspace, folder: str, title: str, transcripts: list[Transcript],
           judgements: list[Judgement], cost: Cost, judge: str, samples: int,
           rejected: Rejections | None = None, **results: Any) -> EvalResults:
    """Store the judgements and write the report from everything stored."""
    workspace.write(f"{folder}/judgements", judgements)
    return write_report(workspace.path(folder), transcripts, judgements, character=title, judge=judge,
                        samples=samples, cost=cost.as_dict(), rejections=dict(rejected or {}), **results)


async def judge_transcripts(character: Character, workspace: Workspace, transcripts: list[Transcript], judge: str,
                            samples: int = 1, judge_tokens: int = 384, run: str = "transcripts",
                            reference: ReferenceCharacterLLM | None = None) -> EvalResults:
    """Judge transcripts made elsewhere (e.g. Character-LLM's published results) exactly as our own, or
    as the paper's scorer did (`reference`)."""
    pool = ModelPool(workspace.cache_path)
    cost = Cost()
    try:
        folder = f"eval/{run}"
        workspace.write(f"{folder}/transcripts", transcripts)
        jobs = interview_jobs(transcripts, character, reference)
        judgements = await run_judges(pool.get(judge), jobs, samples, judge_tokens, cost=cost)
        return finish(workspace, folder, character.full_name, transcripts, judgements, cost, judge, samples,
                      protocol="reference" if reference else "rolecraft")
    finally:
        await pool.aclose()


class EvaluationStep(Step):
    """The build's report: the prompt-only, long-context (whole profile) and RAG agents, and the trained
    ones with nothing but the persona prompt (SFT, SFT+DPO), on the same held-out probes, scored without
    a judge; the judge checked on known-good and known-bad answers; interviews judged only where it
    passed. The verdict compares the agent the build serves with the prompt-only one. Writes `eval/build/`."""

    name = "evaluation"
    roles = ("student", "judge", "teacher")

    def __init__(self, counts: EvalCounts, reads=None):
        super().__init__(counts, reads)

    async def run(self, ctx: Context) -> Output:
        ws, student = ctx.workspace, ctx.models.student
        agents = [AgentSpec(name="prompt-only", model=student), AgentSpec(name="long-context", model=student, retrieval="profile"),
                  AgentSpec(name="rag", model=student, retrieval="rag")]
        served = None
        for name, adapter in (("sft", "sft"), ("sft+dpo", "dpo")):
            if ws.trained_adapter(adapter):
                agents.append(AgentSpec(name=name, model=student, adapter=adapter))
                served = name
        c = self.settings
        config = EvalConfig(
            agents=agents, judge=ctx.models.judge, teacher=ctx.models.teacher, single=c.single, probes=c.probes,
            multi=c.multi, rounds=c.rounds, samples=c.samples, reply_tokens=c.reply_tokens,
            judge_tokens=c.judge_tokens, run="build", apc=ws.has_discriminators(), served=served,
        )
        results = await evaluate(ctx.character(), ws, config, ctx.pool)
        metrics = {f"{m.agent}/{m.metric}": round(m.estimate.mean, 3) for m in results.metrics}
        info = {"report": str(ws.path("eval/build/report.md")), "agents": results.agents, "metrics": metrics,
                "verdict": results.verdict.text() if results.verdict else None,
                "judge_trusted": results.judge_check.passed if results.judge_check else None,
                "changed": {a: round(v, 3) for a, v in results.changed.items()}}
        return Output(rejections=Rejections(results.rejections), info=info)
