"""APC-based preference pairs for DPO: sample replies from the agent, score them, keep clear wins.

For each context (a conversation ending with a user turn) the agent samples `samples` replies with
the exact prompt it serves with (`Agent.messages`: persona, retrieved facts, trimmed history). Each
reply is APC-scored; if the best beats the worst by more than `margin` (reference: 0.2) they become
a (chosen, rejected) pair on that prompt.

Multi-turn contexts: queries are grouped into conversations of `turns` user turns. Turn t is sampled
for all conversations at once; the best-scoring reply becomes the assistant turn in the history of
turn t + 1, so later contexts are conversations the agent itself could have had — at no extra cost.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rolecraft.faithfulness.apc import APCScorer, workspace_scorer
from rolecraft.formats.apc import PreferenceRecord, load_reference, student_neutral
from rolecraft.llm.base import Message, SamplingParams
from rolecraft.step import Context, Output, Responder, Step
from rolecraft.synth.generate import generate_texts
from rolecraft.synth.queries import QueriesStep


class PreferenceSettings(BaseModel):
    samples: int = Field(2, ge=2)  # replies per context (reference: 2)
    held_out: float = Field(0.25, ge=0.0, lt=1.0)  # share of queries kept out of DPO, for evaluation
    margin: float = Field(0.2, ge=0.0)  # minimum APC gap between chosen and rejected
    # User turns sampled in all (the reference's max_dpo_data), drawn at random: `split_queries` shuffles
    # every query, as APC's np.random.choice(queries, max_dpo_data, replace=False) draws them.
    max_contexts: int = Field(200, ge=1)
    turns: int = Field(1, ge=1)  # user turns per conversation; > 1 gives multi-turn contexts
    temperature: float = 1.0
    max_tokens: int = Field(128, ge=8)
    seed: int = 0

    @classmethod
    def tiny(cls) -> PreferenceSettings:
        return cls(max_contexts=8, max_tokens=48)

    def params(self, sample: int) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed + sample)


class PreferenceStats(BaseModel):
    contexts: int = 0
    pairs: int = 0
    mean_best: float = 0.0  # mean APC of the best reply per context
    mean_worst: float = 0.0
    mean_gap: float = 0.0  # mean best − worst over kept pairs


async def sample_replies(
    agent: Responder, histories: Sequence[Sequence[Message | dict]], samples: int, settings: PreferenceSettings
) -> tuple[list[list[Message]], list[list[str]]]:
    """(prompts, replies): the agent's prompt for each history and `samples` replies to it."""
    prompts = [agent.messages(h) for h in histories]
    replies: list[list[str]] = [[] for _ in prompts]
    for j in range(samples):
        completions = await generate_texts(agent.model, prompts, settings.params(j), f"replies {j + 1}/{samples}")
        for row, completion in zip(replies, completions):
            row.append(completion.text.strip())
    return prompts, replies


async def preference_pairs(
    agent: Responder, scorer: APCScorer, queries: Sequence[str], settings: PreferenceSettings = PreferenceSettings()
) -> tuple[list[PreferenceRecord], PreferenceStats]:
    queries = list(queries)[: settings.max_contexts]
    conversations = [queries[i : i + settings.turns] for i in range(0, len(queries), settings.turns)]
    histories: list[list[Message]] = [[] for _ in conversations]
    rows: list[PreferenceRecord] = []
    best_scores: list[float] = []
    worst_scores: list[float] = []
    for t in range(settings.turns):
        live = [i for i, c in enumerate(conversations) if t < len(c)]
        contexts = [histories[i] + [Message(role="user", content=conversations[i][t])] for i in live]
        prompts, replies = await sample_replies(agent, contexts, settings.samples, settings)
        scored = scorer.score(contexts, replies)
        for i, context, prompt, results in zip(live, contexts, prompts, scored):
            totals = [r.total for r in results]
            best = max(range(len(totals)), key=totals.__getitem__)
            worst = min(range(len(totals)), key=totals.__getitem__)
            best_scores.append(totals[best])
            worst_scores.append(totals[worst])
            if totals[best] - totals[worst] > settings.margin:
                rows.append(
                    PreferenceRecord(
                        prompt=prompt,
                        chosen=results[best].response,
                        rejected=results[worst].response,
                        chosen_apc=totals[best],
                        rejected_apc=totals[worst],
                        turns=t + 1,
                    )
                )
            histories[i] = [*context, Message(role="assistant", content=results[best].response)]
    stats = PreferenceStats(
        contexts=len(best_scores),
        pairs=len(rows),
        mean_best=_mean(best_scores),
        mean_worst=_mean(worst_scores),
        mean_gap=_mean([r.chosen_apc - r.rejected_apc for r in rows]),
    )
    return rows, stats


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def split_queries(queries: Sequence[str], held_out: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held out): DPO samples on the first; the rest are kept for evaluating agents on questions
    no training step has seen. Distinct queries, shuffled by seed, so later statements reach DPO too."""
    distinct = sorted(set(queries))
    random.Random(seed).shuffle(distinct)
    cut = max(1, round(len(distinct) * held_out)) if held_out > 0 and len(distinct) > 1 else 0
    return distinct[cut:], distinct[:cut]


class PreferenceStep(Step):
    """Writes `preference.jsonl`: DPO pairs from the student agent (with the adapter named by
    `adapter`, and retrieval) scored by the workspace's APC scorer. A build lists the steps that train
    that adapter and the discriminators in `reads`."""

    name = "preference"
    record = PreferenceRecord
    reads = (QueriesStep,)
    roles = ("student",)

    def __init__(self, settings: PreferenceSettings, adapter: str | None = "sft", rag: bool = True, reads=None):
        super().__init__(settings, reads)
        self.adapter, self.rag = adapter, rag  # adapter: a name under adapters/ or a folder

    def fingerprint(self):
        return [super().fingerprint(), self.adapter, self.rag]

    async def run(self, ctx: Context) -> Output:
        if not ctx.workspace.has_discriminators():
            return Output(skipped="no APC discriminators to score replies with")
        queries = [q for row in ctx.read(QueriesStep) for q in row.queries]
        train, _ = split_queries(queries, self.settings.held_out, self.settings.seed)
        trained = self.adapter and (ctx.workspace.trained_adapter(self.adapter) or Path(self.adapter).is_dir())
        agent = ctx.agent(self.adapter if trained else None, self.rag)
        rows, stats = await preference_pairs(agent, workspace_scorer(ctx.workspace), train, self.settings)
        info = {**stats.model_dump(), "retrieval": self.rag}
        if not rows:
            return Output(skipped="no pair of replies passed the APC margin", info=info)
        return Output(rows, info=info)


class ImportPreferenceStep(PreferenceStep):
    """Preference pairs from a file (APC's `.rag.dpo.json`, or JSONL of the same rows) instead of sampling.
    APC's pairs are rendered in Gemma's markup with a literal `<eos>`: they are turned into messages so
    the student's own template renders them (`formats.apc.student_neutral`), and the step says so."""

    reads = ()
    roles = ()

    def __init__(self, path: str | Path):
        Step.__init__(self)
        self.path = Path(path)

    def fingerprint(self) -> Any:
        return [str(self.path), hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.is_file() else None]

    async def run(self, ctx: Context) -> Output:
        rows, converted = student_neutral(load_reference(self.path, PreferenceRecord), self.path)
        return Output(rows, info={"file": str(self.path), "converted_from_gemma_markup": converted})
