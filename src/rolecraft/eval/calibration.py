"""Is the judge worth asking? It first scores answers known to be good and known to be bad.

Pairs are built from the character's own facts and boundary topics: for a fact probe, the fact said in
the character's voice (good) against the same answer with its key swapped for another (bad); for a
boundary probe, a plain deflection (good) against a reply that explains the topic (bad). The judge
scores both with Character-LLM's rubric (memorization for facts, hallucination for boundaries). A
judge that does not score the good answers clearly higher is reported as such, and its interview
scores are not computed at all.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from statistics import mean

from rolecraft.character import Character
from rolecraft.eval.cost import Cost
from rolecraft.eval.grounding import profile_for_judge
from rolecraft.eval.judges import RUBRICS, Case, run_judges
from rolecraft.eval.results import JudgeCheck
from rolecraft.formats.facts import Fact, Probe
from rolecraft.language import for_character
from rolecraft.llm import Message
from rolecraft.llm.batching import Batched
from rolecraft.synth.boundary import who
from rolecraft.synth.contrasts import swapped

MIN_ORDERED = 0.75  # share of pairs the good answer must win
MIN_GAP = 1.0  # on the 1–7 scale


def pairs(character: Character, facts: Sequence[Fact], probes: Sequence[Probe], n: int = 4,
          seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(dimension, question, good answer, bad answer), up to `n` of facts and `n` of boundaries."""
    rng = random.Random(seed)
    lang = for_character(character)
    by_id = {f.id: f for f in facts}
    keys = [k for f in facts if not f.content_keys for k in f.keys]
    out = []
    for probe in (p for p in probes if p.kind == "fact" and p.source in by_id):
        good = by_id[probe.source].answer
        bad = swapped(good, probe.keys[0], keys, rng) if probe.keys else None
        if bad and bad != good and len([o for o in out if o[0] == "memorization"]) < n:
            out.append(("memorization", probe.question, good, bad))
    topics = {t.id: t for t in lang.boundary.TOPICS}
    for probe in (p for p in probes if p.kind == "boundary" and p.source in topics):
        topic = topics[probe.source]
        if not topic.leak_words or len([o for o in out if o[0] == "hallucination"]) >= n:
            continue
        good = lang.boundary.deflection(topic, who(character), probe.question)
        bad = f"Of course! I know {topic.name} well: " + ", ".join(topic.leak_words[:3]) + " — I use them every day."
        out.append(("hallucination", probe.question, good, bad))
    return out


async def check_judge(judge: Batched, character: Character, facts: Sequence[Fact], probes: Sequence[Probe],
                      max_tokens: int, cost: Cost | None = None) -> JudgeCheck:
    """Half the pairs first (facts and boundaries alike); the rest only if the judge could still pass.
    Stopping early gives the verdict the full check would: a judge that ordered too few of the first
    half cannot reach `MIN_ORDERED` even by ordering every remaining pair right."""
    rubric = RUBRICS["character-llm"]
    found = pairs(character, facts, probes)
    first, rest = found[0::2], found[1::2]
    scores: dict[str, dict[str, float | None]] = {}
    for round_, chosen in enumerate((first, rest)):
        jobs = []
        for i, (dimension, question, good, bad) in enumerate(chosen):
            for side, text in (("good", good), ("bad", bad)):
                dialogue = [Message(role="user", content=question), Message(role="assistant", content=text)]
                case = Case(agent=side, item=f"check-{round_}-{i}", kind="single", name=character.name, dialogue=dialogue,
                            profile=profile_for_judge(character, f"{question} {text}"))
                jobs.append((case, rubric, dimension))
        for j in await run_judges(judge, jobs, 1, max_tokens, description="checking the judge", cost=cost):
            scores.setdefault(j.item, {})[j.agent] = j.score
        if _ordered(scores) + len(rest) < MIN_ORDERED * len(found):
            break  # cannot pass any more
    both = [(s["good"], s["bad"]) for s in scores.values() if s.get("good") is not None and s.get("bad") is not None]
    ordered = _ordered(scores)
    good = mean(g for g, _ in both) if both else None
    bad = mean(b for _, b in both) if both else None
    passed = bool(both) and ordered >= MIN_ORDERED * len(found) and good - bad >= MIN_GAP
    return JudgeCheck(judge=judge.spec, pairs=len(scores), ordered=ordered, good=good, bad=bad, passed=passed)


def _ordered(scores: dict[str, dict[str, float | None]]) -> int:
    return sum(1 for s in scores.values() if s.get("good") is not None and s.get("bad") is not None and s["good"] > s["bad"])
