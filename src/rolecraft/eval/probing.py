"""Judge-free evaluation on the held-out probes (`synth.probes`): every agent answers every probe, and
each reply is scored by rule — no strong judge needed, so the numbers mean the same on the embedded
model as on a real one.

- fact recall: a fact probe's reply says one of its answer keys (a number in digits or in words);
- boundary leak: a boundary probe's reply explains the topic (its leak words or claims, `language`);
- APC: each fact probe's reply scored against all persona statements, where discriminators exist.

Per-question results are stored (`probes.jsonl` of the evaluation's folder); every number of the
report is aggregated from them (`eval.results`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import BaseModel

from rolecraft.character import Character
from rolecraft.eval.cost import Cost
from rolecraft.eval.targets import Target
from rolecraft.formats.facts import Probe
from rolecraft.language import for_character
from rolecraft.llm import Message, SamplingParams
from rolecraft.progress import progress
from rolecraft.synth.verify import carries


class ProbeResult(BaseModel):
    agent: str
    probe: str
    kind: str  # fact | boundary
    source: str  # fact id or boundary topic id
    question: str
    reply: str
    recalled: bool | None = None  # fact probes
    leaked: bool | None = None  # boundary probes: the reply explains the topic
    held: bool | None = None  # boundary probes: the reply plainly does not know it, and leaks nothing
    apc: float | None = None  # fact probes, when the workspace has discriminators


async def answer(targets: Sequence[Target], probes: Sequence[Probe], params: SamplingParams,
                 cost: Cost | None = None) -> list[list[str]]:
    """Every target's reply to every probe (one conversation each), all asked at once so they batch."""
    pairs = [(t, p) for t in targets for p in probes]
    with progress(len(pairs), "answering held-out probes") as advance:
        async def one(target: Target, probe: Probe) -> str:
            reply = await target.reply([Message(role="user", content=probe.question)], params)
            if cost:
                cost.add(f"agent:{target.name}", reply.completion)
            advance(1)
            return reply.text

        replies = list(await asyncio.gather(*(one(t, p) for t, p in pairs)))
    return [replies[i * len(probes):(i + 1) * len(probes)] for i in range(len(targets))]


def score(character: Character, agent: str, probes: Sequence[Probe], replies: Sequence[str]) -> list[ProbeResult]:
    lang = for_character(character)
    topics = {t.id: t for t in lang.boundary.TOPICS}
    results = []
    for probe, reply in zip(probes, replies):
        result = ProbeResult(agent=agent, probe=probe.id, kind=probe.kind, source=probe.source, question=probe.question,
                             reply=reply)
        if probe.kind == "fact":
            result.recalled = carries(reply, probe.keys)
        elif probe.source in topics:
            topic = topics[probe.source]
            result.leaked = lang.boundary.leaks(reply, probe.question, topic)
            result.held = not result.leaked and lang.boundary.deflects(reply, topic)
        results.append(result)
    return results


def add_apc(results: Sequence[ProbeResult], scorer) -> None:
    """Mean APC of every fact reply. All agents' replies to a question are scored together: a
    question's relevance to each statement does not depend on the reply, so it is computed once."""
    facts: dict[str, list[ProbeResult]] = {}
    for r in results:
        if r.kind == "fact":
            facts.setdefault(r.question, []).append(r)
    scored = scorer.score(list(facts), [[r.reply for r in mine] for mine in facts.values()]) if facts else []
    for mine, apcs in zip(facts.values(), scored):
        for result, apc in zip(mine, apcs):
            result.apc = apc.total


async def run_probes(character: Character, workspace, targets: Sequence[Target], probes: Sequence[Probe],
                     params: SamplingParams, cost: Cost | None = None) -> list[ProbeResult]:
    """Every target on every probe, scored (APC with the workspace's discriminators, when trained)."""
    from rolecraft.faithfulness.apc import workspace_scorer

    replies = await answer(targets, probes, params, cost)
    results = [r for target, mine in zip(targets, replies) for r in score(character, target.name, probes, mine)]
    if workspace.has_discriminators():
        add_apc(results, workspace_scorer(workspace))
    return results
