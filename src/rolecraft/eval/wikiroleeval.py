"""WikiRoleEval (Ditto): running its test set (`formats.wikirole`) on agents, with the three Ditto judges."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rolecraft.eval.cost import Cost
from rolecraft.eval.judges import RUBRICS, Case, Rubric, run_judges
from rolecraft.eval.records import Judgement, Question, Transcript
from rolecraft.eval.targets import AgentSpec, build_target
from rolecraft.formats.wikirole import WikiRoleItem
from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.pool import ModelPool
from rolecraft.progress import progress


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
    return [
        Transcript(id=f"wikirole-{n:04d}", agent=spec.name, kind="wikirole", character=item.label,
                   question=Question(question=item.prompts[0]), turns=turns[n])
        for n, item in enumerate(items)
    ]


def wikirole_jobs(items: Sequence[WikiRoleItem], transcripts: Sequence[Transcript]) -> list[tuple[Case, Rubric, str]]:
    """Per turn: consistency (when there are candidates), knowledge against evidence, rejection (when labelled)."""
    jobs = []
    for item, t in zip(items, transcripts):
        about = str(item.meta.get("summary") or item.meta.get("description") or "")[:800]
        for i, (question, answer) in enumerate(zip(t.turns[::2], t.turns[1::2])):
            case = Case(agent=t.agent, item=f"{t.id}#turn{i}", kind="wikirole", name=item.label, profile=about,
                        dialogue=[question, answer], candidates=item.role_consist_cands,
                        evidence=item.evidence[i] if item.evidence else "",
                        label=item.rejection_labels[i] if item.rejection_labels else None)
            names = ["ditto-knowledge"]
            names += ["ditto-consistency"] if item.role_consist_cands else []
            names += ["ditto-rejection"] if item.rejection_labels else []
            jobs += [(case, RUBRICS[name], name) for name in names]
    return jobs


async def run_wikirole(items: Sequence[WikiRoleItem], specs: Sequence[AgentSpec], pool: ModelPool, judge: str,
                       params: SamplingParams, samples: int = 1, judge_tokens: int = 384,
                       cost: Cost | None = None) -> tuple[list[Transcript], list[Judgement]]:
    transcripts: list[Transcript] = []
    for spec in specs:
        transcripts += await converse(items, spec, pool, params, cost)
    jobs = [job for spec in specs for job in wikirole_jobs(items, [t for t in transcripts if t.agent == spec.name])]
    judgements = await run_judges(pool.get(judge), jobs, samples, judge_tokens, cost=cost)
    return transcripts, judgements
