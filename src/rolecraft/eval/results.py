"""Typed results of an evaluation: every number of the report, aggregated from the stored per-question
results here and nowhere else (as Inspect's logs are the one source of its views).

Judge-free, from the held-out probes (`eval.probing`):
- `metrics`: per agent, fact recall, boundary leak and APC, each a mean with its 95 % interval;
- `verdict`: the served agent against the prompt-only one on the same probes (paired differences);
- `judge_check`: whether the judge told known-good from known-bad answers before it was trusted.
From the judge's judgements (only when it passed its check, or was not checked):

- `cells`: mean score per agent × kind × dimension, knowledge-boundary probes left out;
- `overall`: the same with all kinds pooled per dimension;
- `topics`: the same per interview topic (topic-4 = the probes);
- `probes`: per agent, the probes alone — how often it pleaded ignorance, rejection accuracy, its
  Character-LLM scores on them, and each answer;
- `worst`: the lowest-scored answers (relative to each rubric's scale) with the judge's reasons;
- `parse_failures`: judge answers that could not be read, out of how many samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from statistics import mean
from typing import Any

from pydantic import BaseModel, Field

from rolecraft.eval.probing import ProbeResult
from rolecraft.eval.records import Judgement, Kind, Transcript
from rolecraft.eval.stats import Estimate, bootstrap, paired

WORST = 5
CLIP = 400


class Cell(BaseModel):
    """The mean of the scores of one group of judgements."""

    agent: str
    kind: Kind | None = None  # None: every kind pooled
    topic_id: str | None = None
    dimension: str
    rubric: str
    scale: tuple[float, float]
    mean: float | None
    n: int  # judgements with a score
    unscored: int = 0  # judgements whose samples could not be read


class ProbeAnswer(BaseModel):
    item: str
    question: str
    reply: str
    pleaded_ignorance: float | None
    reasoning: str = ""


class ProbeSummary(BaseModel):
    agent: str
    n: int
    pleaded_ignorance: float | None
    rejection_accuracy: float | None
    scores: list[Cell] = Field(default_factory=list)
    answers: list[ProbeAnswer] = Field(default_factory=list)


class WorstAnswer(BaseModel):
    agent: str
    item: str
    kind: Kind
    dimension: str
    score: float
    scale: tuple[float, float]
    question: str
    reply: str
    reasoning: str


# metric → (ProbeResult field, whether higher is better)
METRICS: dict[str, tuple[str, bool]] = {"fact_recall": ("recalled", True), "boundary_leak": ("leaked", False),
                                        "boundary_held": ("held", True), "apc": ("apc", True)}
METRIC_TITLES = {"fact_recall": "fact recall", "boundary_leak": "boundary leak", "boundary_held": "boundary held",
                 "apc": "APC"}


class Metric(BaseModel):
    agent: str
    metric: str  # a key of METRICS
    estimate: Estimate


class Difference(BaseModel):
    metric: str
    estimate: Estimate  # agent − baseline, paired on the same probes

    @property
    def better(self) -> bool | None:
        """True / False when significant in the wanted / the wrong direction, None when not significant."""
        if not self.estimate.significant:
            return None
        return (self.estimate.mean > 0) == METRICS[self.metric][1]


class Verdict(BaseModel):
    agent: str
    baseline: str
    differences: list[Difference]

    def text(self) -> str:
        parts = []
        for d in self.differences:
            note = "" if d.estimate.significant else " (not significant)"
            parts.append(f"{METRIC_TITLES[d.metric]} {d.estimate.text(signed=True)}{note}")
        return f"{self.agent} vs {self.baseline}: " + ", ".join(parts)


class JudgeCheck(BaseModel):
    """The judge scored answers known to be good and known to be bad before its rubrics were trusted."""

    judge: str
    pairs: int
    ordered: int  # pairs where the good answer scored higher than the bad one
    good: float | None  # mean score of the good answers
    bad: float | None
    passed: bool

    def text(self) -> str:
        scores = f"good {self.good:.2f} vs bad {self.bad:.2f}" if self.good is not None and self.bad is not None else "unreadable scores"
        verdict = "trusted" if self.passed else "could not tell them apart, so its rubric scores are not reported"
        return f"judge `{self.judge}` on {self.pairs} known-good / known-bad pairs: {scores}, {self.ordered} ordered right — {verdict}"


class ParseFailures(BaseModel):
    agent: str
    rubric: str
    failed: int
    samples: int


class EvalResults(BaseModel):
    character: str = ""
    judge: str = ""
    samples: int = 1
    protocol: str = "rolecraft"  # rolecraft's judging, or "reference": the paper's scorer reproduced
    cost: dict[str, dict[str, int]] = Field(default_factory=dict)
    rejections: dict[str, int] = Field(default_factory=dict)  # teacher-written questions that were not used
    agents: list[str]
    metrics: list[Metric] = Field(default_factory=list)
    verdict: Verdict | None = None
    judge_check: JudgeCheck | None = None
    probe_results: int = 0
    changed: dict[str, float] = Field(default_factory=dict)  # agent → share of probe replies unlike the baseline's
    cells: list[Cell]
    overall: list[Cell]
    topics: list[Cell]
    probes: list[ProbeSummary]
    worst: list[WorstAnswer]
    parse_failures: list[ParseFailures]
    transcripts: int
    judgements: int

    def cell(self, agent: str, kind: Kind | None, dimension: str) -> Cell | None:
        cells = self.overall if kind is None else self.cells
        return next((c for c in cells if (c.agent, c.kind, c.dimension) == (agent, kind, dimension)), None)

    def metric(self, agent: str, metric: str) -> Estimate | None:
        return next((m.estimate for m in self.metrics if (m.agent, m.metric) == (agent, metric)), None)

    def probe(self, agent: str) -> ProbeSummary | None:
        return next((p for p in self.probes if p.agent == agent), None)

    def kinds(self) -> list[Kind]:
        return list(dict.fromkeys(c.kind for c in self.cells if c.kind))

    def dimensions(self, kind: Kind) -> list[str]:
        return list(dict.fromkeys(c.dimension for c in self.cells if c.kind == kind))


def cells(judgements: Sequence[Judgement], key: Callable[[Judgement], tuple[Any, ...]], **fixed: Any) -> list[Cell]:
    """One Cell per group of judgements; `key` returns (agent, kind, topic_id, dimension)."""
    groups: dict[tuple[Any, ...], list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[key(j)].append(j)
    out = []
    for (agent, kind, topic_id, dimension), group in groups.items():
        scored = [j.score for j in group if j.score is not None]
        out.append(Cell(agent=agent, kind=kind, topic_id=topic_id, dimension=dimension, rubric=group[0].rubric,
                        scale=group[0].scale, mean=mean(scored) if scored else None, n=len(scored),
                        unscored=len(group) - len(scored), **fixed))
    return out


def clip(text: str, limit: int = CLIP) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def exchange(by_id: dict[tuple[str, str], Transcript], agent: str, item: str) -> tuple[str, str]:
    """(question, reply) an item refers to: a whole transcript, or one turn of it ("<id>#turn<i>")."""
    tid, _, turn = item.partition("#turn")
    t = by_id.get((agent, tid))
    if t is None:
        return "", ""
    if turn.isdigit():
        asked, said, i = [m.content for m in t.turns if m.role == "user"], t.replies(), int(turn)
        return clip(asked[i] if i < len(asked) else ""), clip(said[i] if i < len(said) else "")
    return clip(t.question.question), clip(" / ".join(t.replies()))


def probe_summary(agent: str, transcripts: Sequence[Transcript], judgements: Sequence[Judgement]) -> ProbeSummary:
    mine = [j for j in judgements if j.agent == agent and j.probe]
    refusals = [j for j in mine if j.rubric == "ditto-rejection" and j.verdict is not None]
    verdicts = {j.item: j for j in refusals}
    answers = [
        ProbeAnswer(item=t.id, question=clip(t.question.question), reply=clip(" / ".join(t.replies())),
                    pleaded_ignorance=verdicts[t.id].verdict if t.id in verdicts else None,
                    reasoning=clip(verdicts[t.id].reasoning, 200) if t.id in verdicts else "")
        for t in transcripts if t.agent == agent and t.question.probe
    ]
    return ProbeSummary(
        agent=agent, n=len({j.item for j in mine}),
        pleaded_ignorance=mean(j.verdict for j in refusals) if refusals else None,
        rejection_accuracy=mean(j.score for j in refusals) if refusals else None,
        scores=cells([j for j in mine if j.rubric != "ditto-rejection"], lambda j: (j.agent, None, None, j.dimension)),
        answers=answers,
    )


def worst_answers(agent: str, judgements: Sequence[Judgement], by_id: dict[tuple[str, str], Transcript]) -> list[WorstAnswer]:
    scored = [j for j in judgements if j.agent == agent and j.score is not None and j.scale[1] > j.scale[0]]
    scored.sort(key=lambda j: ((j.score - j.scale[0]) / (j.scale[1] - j.scale[0]), j.item, j.dimension))
    return [WorstAnswer(agent=agent, item=j.item, kind=j.kind, dimension=j.dimension, score=j.score, scale=j.scale,
                        question=(qa := exchange(by_id, agent, j.item))[0], reply=qa[1], reasoning=clip(j.reasoning))
            for j in scored[:WORST]]


def values(results: Sequence[ProbeResult], agent: str, metric: str) -> dict[str, float]:
    """probe id → the metric's value for one agent (booleans as 0 / 1), for the probes that have one."""
    field = METRICS[metric][0]
    return {r.probe: float(v) for r in results if r.agent == agent and (v := getattr(r, field)) is not None}


def probe_metrics(results: Sequence[ProbeResult], agents: Sequence[str]) -> list[Metric]:
    return [Metric(agent=a, metric=m, estimate=e) for a in agents for m in METRICS
            if (e := bootstrap(list(values(results, a, m).values())))]


def verdict(results: Sequence[ProbeResult], agent: str, baseline: str) -> Verdict:
    differences = []
    for metric in METRICS:
        mine, theirs = values(results, agent, metric), values(results, baseline, metric)
        common = sorted(set(mine) & set(theirs))
        if common and (e := paired([mine[p] for p in common], [theirs[p] for p in common])):
            differences.append(Difference(metric=metric, estimate=e))
    return Verdict(agent=agent, baseline=baseline, differences=differences)


def aggregate(transcripts: Sequence[Transcript], judgements: Sequence[Judgement], probe_results: Sequence[ProbeResult] = (),
              served: str | None = None, baseline: str = "prompt-only", **meta: Any) -> EvalResults:
    """`served`: the agent the verdict is about (compared with `baseline` on the same probes)."""
    by_id = {(t.agent, t.id): t for t in transcripts}
    agents = list(dict.fromkeys([r.agent for r in probe_results] + [t.agent for t in transcripts]
                                + [j.agent for j in judgements]))
    found = {r.agent for r in probe_results}
    if served in found and baseline in found and served != baseline:
        meta["verdict"] = verdict(probe_results, served, baseline)
    main = [j for j in judgements if not j.probe]
    failures: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for j in judgements:
        failures[(j.agent, j.rubric)][0] += j.parse_failures
        failures[(j.agent, j.rubric)][1] += len(j.samples)
    return EvalResults(
        **meta,
        agents=agents,
        cells=cells(main, lambda j: (j.agent, j.kind, None, j.dimension)),
        overall=cells(main, lambda j: (j.agent, None, None, j.dimension)),
        topics=cells([j for j in judgements if j.topic_id], lambda j: (j.agent, j.kind, j.topic_id, j.dimension)),
        probes=[probe_summary(a, transcripts, judgements) for a in agents],
        worst=[w for a in agents for w in worst_answers(a, judgements, by_id)],
        parse_failures=[ParseFailures(agent=a, rubric=r, failed=f, samples=s) for (a, r), (f, s) in failures.items()],
        transcripts=len(transcripts),
        judgements=len(judgements),
        metrics=probe_metrics(probe_results, agents),
        probe_results=len(probe_results),
        changed=changed(probe_results, baseline) if baseline in found else {},
    )


def changed(results: Sequence[ProbeResult], baseline: str) -> dict[str, float]:
    """agent → share of the probes its reply differs from the baseline's (a trained adapter that changed
    nothing would show 0)."""
    theirs = {r.probe: r.reply.strip() for r in results if r.agent == baseline}
    out: dict[str, list[bool]] = {}
    for r in results:
        if r.agent != baseline and r.probe in theirs:
            out.setdefault(r.agent, []).append(r.reply.strip() != theirs[r.probe])
    return {agent: sum(flags) / len(flags) for agent, flags in out.items()}
