"""WikiRoleEval (Ditto): running its test set (`formats.wikirole`) on agents, or judging the conversations a
results file already holds, with the three Ditto judges; and Ditto's aggregation (its `scoring.py`)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import mean

from pydantic import BaseModel

from rolecraft.eval.cost import Cost
from rolecraft.eval.judges import RUBRICS, Case, Rubric, run_judges
from rolecraft.eval.records import Judgement, Question, Transcript
from rolecraft.eval.targets import AgentSpec, build_target
from rolecraft.formats.wikirole import DittoScores, WikiRoleItem
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.pool import ModelPool
from rolecraft.progress import progress

DOMAINS = ("consistency", "rejection", "knowledge")


def _transcript(n: int, item: WikiRoleItem, agent: str, turns: list[Message]) -> Transcript:
    return Transcript(id=f"wikirole-{n:04d}", agent=agent, kind="wikirole", character=item.label,
                      question=Question(question=item.prompts[0]), turns=turns)


async def converse(items: Sequence[WikiRoleItem], spec: AgentSpec, pool: ModelPool, params: SamplingParams,
                   cost: Cost | None = None) -> list[Transcript]:
    """Each item is one conversation: prompt i is asked after the replies to prompts 0..i-1."""
    targets = [build_target(spec, item.character(), pool) for item in items]
    turns: list[list[Message]] = [[] for _ in items]
    with progress(sum(len(i.prompts) for i in items), f"WikiRoleEval: {spec.name}") as advance:
        for step in range(max(len(i.prompts) for i in items)):
            live = [n for n, item in enumerate(items) if step < len(item.prompts)]
            for n in live:
                turns[n].append(Message(role="user", content=items[n].prompts[step]))
            replies = await asyncio.gather(*(targets[n].reply(turns[n], params) for n in live))
            for n, reply in zip(live, replies):
                turns[n].append(Message(role="assistant", content=reply.text))
                if cost:
                    cost.add(f"agent:{spec.name}", reply.completion)
            advance(len(live))
    return [_transcript(n, item, spec.name, turns[n]) for n, item in enumerate(items)]


def recorded(items: Sequence[WikiRoleItem], agent: str) -> list[Transcript]:
    """The conversations a results file holds (`messages`, as Ditto's `data/results/` files), judged as
    they are, without regenerating them."""
    return [_transcript(n, item, agent, item.replies()) for n, item in enumerate(items)]


def wikirole_jobs(items: Sequence[WikiRoleItem], transcripts: Sequence[Transcript],
                  rubrics: Mapping[str, Rubric] = RUBRICS) -> list[tuple[Case, Rubric, str]]:
    """Per turn: consistency (when there are candidates), knowledge against evidence, rejection (when labelled).
    The judge sees the role's whole summary, as Ditto's judge does."""
    jobs = []
    for item, t in zip(items, transcripts):
        about = str(item.meta.get("summary") or item.meta.get("description") or "")
        for i, (question, answer) in enumerate(zip(t.turns[::2], t.turns[1::2])):
            case = Case(agent=t.agent, item=f"{t.id}#turn{i}", kind="wikirole", name=item.label, profile=about,
                        dialogue=[question, answer], candidates=item.role_consist_cands, lang=item.lang,
                        evidence=item.evidence[i] if i < len(item.evidence) else "",
                        label=item.rejection_labels[i] if i < len(item.rejection_labels) else None)
            names = ["ditto-knowledge"]
            names += ["ditto-consistency"] if item.role_consist_cands else []
            names += ["ditto-rejection"] if item.rejection_labels else []
            jobs += [(case, rubrics[name], name) for name in names]
    return jobs


async def run_wikirole(items: Sequence[WikiRoleItem], specs: Sequence[AgentSpec], pool: ModelPool, judge: str,
                       params: SamplingParams, samples: int = 1, judge_tokens: int = 384,
                       cost: Cost | None = None, rubrics: Mapping[str, Rubric] = RUBRICS,
                       temperature: float = 0.2, transcripts: Sequence[Transcript] = ()) -> tuple[list[Transcript], list[Judgement]]:
    """Have every agent play every item (or judge the given `transcripts` as they are), then judge."""
    transcripts = list(transcripts)
    for spec in specs:
        transcripts += await converse(items, spec, pool, params, cost)
    agents = list(dict.fromkeys(t.agent for t in transcripts))
    jobs = [job for a in agents for job in wikirole_jobs(items, [t for t in transcripts if t.agent == a], rubrics)]
    judgements = await run_judges(pool.get(judge), jobs, samples, judge_tokens, temperature, cost=cost)
    return transcripts, judgements


# -- Ditto's aggregation (scoring.py) -----------------------------------------------------------------


class TurnScores(BaseModel):
    """One judged turn, as Ditto's scoring script sees it (None: no value for this turn)."""

    lang: str
    consistency: float | None
    rejection: float | None  # 1 if the judged refusal matches the label
    knowledge: float | None  # a knowledge score of 0 or none counts as missing, as in Ditto


def turns_of_ditto(rows: Iterable[DittoScores]) -> list[TurnScores]:
    """Ditto's judged output files, per turn."""
    return [
        TurnScores(lang=r.lang, consistency=c, rejection=float(p == t), knowledge=k or None)
        for r in rows
        for c, p, t, k in zip(r.consist_scores, r.reject_scores, r.rejection_labels, r.knowledge_scores)
    ]


def turns_of_judgements(items: Sequence[WikiRoleItem], judgements: Sequence[Judgement]) -> dict[str, list[TurnScores]]:
    """rolecraft's judgements of a WikiRoleEval run, per agent and turn."""
    found: dict[tuple[str, str], dict[str, float | None]] = {}
    for j in judgements:
        found.setdefault((j.agent, j.item), {})[j.rubric.removeprefix("ditto-")] = j.score
    out: dict[str, list[TurnScores]] = {}
    for (agent, item), scores in found.items():
        lang = items[int(item.split("#")[0].removeprefix("wikirole-"))].lang
        out.setdefault(agent, []).append(TurnScores(
            lang=lang, consistency=scores.get("consistency"), rejection=scores.get("rejection"),
            knowledge=scores.get("knowledge") or None))
    return out


def ditto_table(turns: Sequence[TurnScores]) -> dict[str, dict[str, float]]:
    """{language: {domain: mean}} plus "all" (every turn pooled), missing values skipped, rounded to two
    places: the numbers Ditto's scoring.py prints."""
    def means(rows: Sequence[TurnScores]) -> dict[str, float]:
        out = {}
        for domain in DOMAINS:
            values = [v for r in rows if (v := getattr(r, domain)) is not None]
            out[domain] = round(mean(values), 2) if values else math.nan
        return out

    langs = sorted({t.lang for t in turns})
    return {**{lang: means([t for t in turns if t.lang == lang]) for lang in langs}, "all": means(turns)}
