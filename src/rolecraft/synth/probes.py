"""Held-out probes: the questions the evaluation asks and no training step ever sees.

- Fact probes ask for a fact's key in a shape the training questions never take (wh-word first:
  "What is the name of your grey cat?" where training asks "You have a grey cat named what?"), with
  the fact's keys as the answer key: a reply recalls the fact when it says one of them.
- Boundary probes ask about topics the character cannot know: every topic's last question, and every
  question of the topics held out from training altogether, with the words that would show a reply
  explains the topic.

The queries step removes every training question that is a near-paraphrase of a probe.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rolecraft.formats.facts import Fact, Probe
from rolecraft.language import for_character
from rolecraft.step import Context, Output, Step
from rolecraft.synth.statements import StatementsStep


class ProbeSettings(BaseModel):
    max_fact_probes: int = Field(40, ge=0)
    max_boundary_probes: int = Field(24, ge=0)
    held_out_topics: int = Field(3, ge=2)  # every n-th boundary topic is never trained on


def boundary_split(topics: list, every: int) -> tuple[list, list]:
    """(trained, held out): every `every`-th topic is kept out of training altogether."""
    return [t for i, t in enumerate(topics) if i % every != every - 1], [t for i, t in enumerate(topics) if i % every == every - 1]


def fact_questions(fact: Fact, lang) -> list[tuple[str, list[str]]]:
    """(question, answer keys) in the held-out shape, for one fact."""
    if fact.content_keys:
        return lang.content_questions(fact.answer)
    return [(q, [key]) for key in fact.keys for q in lang.probe_questions(fact.answer, key)]


def fact_probes(facts: list[Fact], lang) -> list[Probe]:
    """Every fact's held-out questions, facts with names or numbers first (their keys are unambiguous).
    A question that two facts answer ("What do you enjoy?") is asked once, and either fact's key recalls."""
    ordered = sorted(facts, key=lambda f: f.content_keys)
    asked: dict[str, tuple[Fact, list[str]]] = {}
    for f in ordered:
        for q, keys in fact_questions(f, lang):
            known = asked.setdefault(q, (f, []))[1]  # the first fact asking it is the probe's source
            known += [k for k in keys if k not in known]
    return [Probe(id=f"pf{i:03d}", kind="fact", source=f.id, question=q, keys=keys)
            for i, (q, (f, keys)) in enumerate(asked.items())]


class ProbesStep(Step):
    """Writes `probes.jsonl`."""

    name = "probes"
    record = Probe
    reads = (StatementsStep,)

    def __init__(self, settings: ProbeSettings = ProbeSettings()):
        super().__init__(settings)

    async def run(self, ctx: Context) -> Output:
        character = ctx.character()
        lang = for_character(character)
        facts = ctx.read(StatementsStep)
        probes = fact_probes(facts, lang)[: self.settings.max_fact_probes]
        trained, held_out = boundary_split(lang.boundary.topics_for(character.profile_text()), self.settings.held_out_topics)
        asked = [(t, q) for t in held_out for q in t.questions] + [(t, t.questions[-1]) for t in trained]
        boundary = [Probe(id=f"pb{i:03d}", kind="boundary", source=t.id, question=q, leak_words=list(t.leak_words))
                    for i, (t, q) in enumerate(asked[: self.settings.max_boundary_probes])]
        return Output(probes + boundary, info={"fact": len(probes), "boundary": len(boundary)})
