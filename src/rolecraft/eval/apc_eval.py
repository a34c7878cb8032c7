"""APC and ΔAPC of interview replies, from the workspace's persona-faithfulness discriminators.

Every reply is scored against the character's persona statements given the conversation before it
(`APCScorer.score_conversation`; all replies of all transcripts in one batched call). A transcript's
judgement is the mean over its replies, under rubric "apc":

    apc        APC(q, r | S) in [0, |S|]: the expected number of statements the reply satisfies
    delta_apc  ΔAPC = APC(r) − APC(r₀), r₀ a reply neutral to every statement (see faithfulness.apc),
               in [−|S|, |S|]: 0 for a reply that says nothing about the persona

The per-reply values are kept as the judgement's `samples`.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

from rolecraft.eval.records import Judgement, Transcript
from rolecraft.faithfulness.apc import workspace_scorer
from rolecraft.workspace import Workspace


def apc_judgements(workspace: Workspace, transcripts: Sequence[Transcript], scorer=None) -> list[Judgement]:
    scorer = scorer or workspace_scorer(workspace)
    points = [(t, i) for t in transcripts for i, m in enumerate(t.turns)
              if m.role == "assistant" and i and t.turns[i - 1].role == "user"]
    if not points:
        return []
    results = scorer.score([t.turns[:i] for t, i in points], [[t.turns[i].content] for t, i in points])
    per_transcript: dict[tuple[str, str], list] = {}
    for (t, _), [result] in zip(points, results):
        per_transcript.setdefault((t.agent, t.id), []).append(result)
    n = float(len(scorer.statements))
    judgements = []
    for t in transcripts:
        replies = per_transcript.get((t.agent, t.id), [])
        if not replies:
            continue
        best = max(replies[-1].statements, key=lambda s: s.relevance)
        why = (f"most relevant statement (P_g {best.relevance:.2f}): {best.statement} — entailed {best.entailed:.2f}, "
               f"contradicted {best.contradicted:.2f}")
        for dimension, values, scale in (
            ("apc", [r.total for r in replies], (0.0, n)),
            ("delta_apc", [r.delta for r in replies], (-n, n)),
        ):
            judgements.append(Judgement(
                agent=t.agent, item=t.id, kind=t.kind, topic_id=t.question.topic_id, probe=t.question.probe,
                rubric="apc", dimension=dimension, scale=scale, score=mean(values), verdict=mean(values),
                samples=values, reasoning=why,
            ))
    return judgements
