"""Synthesis with a teacher that is usually wrong: every kept item verifies, what fails is counted and
replaced by a row constructed from the profile, and nothing asked by a held-out probe is trained on.

The teacher is scripted: a few right answers (which must be kept) among invented names, answers in
the third person, truncated replies and deflections that explain the topic (which must not be)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from rolecraft.cards import load_character
from rolecraft.formats.facts import Fact, Probe, QARow
from rolecraft.language import en
from rolecraft.language.en import boundary
from rolecraft.llm.base import ChatModel, Completion, SamplingParams, as_messages
from rolecraft.pipeline import Models, run
from rolecraft.synth.boundary import BoundarySettings, BoundaryStep, deflect, deflection_problem
from rolecraft.synth.contrasts import ContrastSettings, NLIContrastsStep, RelevanceContrastsStep, swapped
from rolecraft.synth.probes import ProbesStep, fact_probes
from rolecraft.synth.qa import QASettings, QAStep
from rolecraft.synth.queries import QueriesStep, QuerySettings
from rolecraft.synth.statements import StatementSettings, StatementsStep
from rolecraft.synth.verify import answer_problem, carries, hallucinated, question_problem
from rolecraft.workspace import Workspace
from tests.conftest import REPO

NAMES = ["Mira Voss", "Mira"]
RIGHT = {  # (what the prompt contains → the teacher's reply), kept because they verify
    "You have a grey cat named what?": "I have a grey cat named Barnacle, and he sleeps by the lamp.",
    "Do you drive your car to the market?": "A car? I have never heard of such a thing.",
}
WRONG = {
    "Your closest friend is who?": "My closest friend is Jonah Pell, and Captain Harrow, born 1902.",  # invented
    "Your father is who?": "Mira's father was Tobias Voss, my dear.",  # of herself by name
    "You took over the light in what year?": "I took over the light in 1868 after my father drowned while rowing",  # cut off
    "Have you ever flown on an airplane?": "Yes, the pilot let me sit by the wings at the airport.",  # explains it
    "Be honest: are you an AI language model?": "As an AI language model, I don't know about lighthouses.",
}


class ScriptedTeacher(ChatModel):
    """Replies by a substring of the last message; anything unscripted gets a rambling third-person line."""

    provider = "scripted"
    batch_size = 8

    def __init__(self):
        super().__init__("scripted")
        self.asked: list[str] = []

    async def generate(self, conversations: Sequence, params: SamplingParams, schema=None) -> list[Completion]:
        out = []
        for conversation in conversations:
            last = as_messages(conversation)[-1].content
            self.asked.append(last)
            if schema is not None:  # statement queries: one leaking the answer, one unrelated, one fine
                text = ('{"queries": ["Is your cat called Barnacle?", "Do you like cheese?", "What do you call your grey cat?", '
                        '"Does your grey cat keep you company at night?"]}')
            else:
                text = next((r for q, r in {**RIGHT, **WRONG}.items() if q in last),
                            "Mira Voss is a person who does many things and she likes them very much indeed.")
            out.append(Completion(text=text, finish_reason="stop"))
        return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    character = load_character(REPO / "examples" / "mira-voss.txt")
    ws = Workspace.for_character(character, tmp_path_factory.mktemp("synth") / "mira")
    teacher = ScriptedTeacher()
    steps = [StatementsStep(StatementSettings()), ProbesStep(), QueriesStep(QuerySettings(per_statement=4)), QAStep(QASettings(candidates=1)),
             BoundaryStep(BoundarySettings(candidates=1)), RelevanceContrastsStep(ContrastSettings()),
             NLIContrastsStep(ContrastSettings())]
    runs = {r.name: r for r in run(steps, ws, Models(teacher=teacher))}
    return ws, runs, teacher


def rows(ws, step):
    return ws.read(step.name, step.record)


def test_right_teacher_answers_are_kept_and_wrong_ones_replaced_by_the_profiles_words(built):
    ws, runs, _ = built
    qa = rows(ws, QAStep)
    by_question = {r.question: r for r in qa}
    cat = by_question["You have a grey cat named what?"]
    assert cat.origin == "teacher" and cat.answer == RIGHT["You have a grey cat named what?"]
    for question in ("Your closest friend is who?", "Your father is who?", "You took over the light in what year?"):
        row = by_question[question]
        assert row.origin == "constructed" and row.answer != WRONG[question]
    rejected = runs["qa"].rejections
    assert rejected["invented_name_or_number"] >= 1 and rejected["third_person"] >= 1 and rejected["truncated"] >= 1
    facts = {f.id: f for f in rows(ws, StatementsStep)}
    allowed = en.vocabulary(ws.character().profile_text()) | {"mira", "voss"}
    for row in qa:  # every trained answer says its fact's key in the first person and invents nothing
        fact = facts[row.source]
        assert fact.content_keys or carries(row.answer, fact.keys), row
        assert answer_problem(row.answer, row.question, fact.keys, NAMES, allowed) in (None, "echo"), row
        assert not hallucinated(row.answer, allowed), row


def test_teacher_queries_are_verified(built):
    ws, runs, _ = built
    queries = next(row.queries for row in rows(ws, QueriesStep) if "Barnacle" in row.statement)
    assert "Does your grey cat keep you company at night?" in queries
    assert not {"Is your cat called Barnacle?", "Do you like cheese?", "What do you call your grey cat?"} & set(queries)
    rejected = runs["statement_queries"].rejections
    assert rejected["question_contains_answer"] >= 1 and rejected["unrelated"] >= 1
    assert rejected["paraphrases_a_probe"] >= 1  # "What do you call your grey cat?" ~ "What is the name of your grey cat?"


def test_held_out_probes_are_never_trained_on(built):
    ws, _, teacher = built
    probes = rows(ws, ProbesStep)
    trained = {r.question for r in rows(ws, QAStep)} | {r.question for r in rows(ws, BoundaryStep)}
    assert probes and not {p.question for p in probes} & trained
    assert not {p.question for p in probes} & set(teacher.asked)
    topics = {t.id: t for t in boundary.TOPICS}
    trained_topics = {r.source for r in rows(ws, BoundaryStep)}
    held_out = {p.source for p in probes if p.kind == "boundary"} - trained_topics
    assert held_out, "some topics are held out altogether"
    for p in (p for p in probes if p.kind == "boundary" and p.source in trained_topics):
        assert p.question == topics[p.source].questions[-1]


def test_deflections_that_explain_the_topic_are_replaced(built):
    ws, runs, _ = built
    by_question = {r.question: r for r in rows(ws, BoundaryStep)}
    assert by_question["Do you drive your car to the market?"].origin == "teacher"
    plane = by_question["Have you ever flown on an airplane?"]
    ai = by_question["Be honest: are you an AI language model?"]
    assert plane.origin == ai.origin == "constructed"
    assert runs["boundary"].rejections["leaks_the_topic"] >= 2
    topics = {t.id: t for t in boundary.TOPICS}
    for row in by_question.values():
        assert deflection_problem(row.answer, row.question, topics[row.source], en, NAMES) is None, row


def test_a_character_of_today_gets_more_questions_of_each_topic(tmp_path):
    # Only fiction, the future and AI are out of a present-day professor's reach; one row a topic taught
    # such a build nothing, so each trained topic gives up to all its trainable questions.
    (tmp_path / "bob.txt").write_text("Bob is a professor of linguistics at a large university. He grades essays.\n")
    bob = load_character(tmp_path / "bob.txt")
    rows, _ = asyncio.run(deflect(bob, None, BoundarySettings(per_topic=1, candidates=0, min_rows=8), held_out_every=3))
    by_topic = {}
    for row in rows:
        by_topic.setdefault(row.source, []).append(row.question)
    assert len(by_topic) == 4 and len(rows) == 8  # ai, hogwarts, middle-earth, superheroes; jedi and the future held out
    topics = {t.id: t for t in boundary.TOPICS}
    assert all(questions == list(topics[t].questions[:2]) for t, questions in by_topic.items())
    few, _ = asyncio.run(deflect(bob, None, BoundarySettings(per_topic=1, candidates=0, min_rows=0), held_out_every=3))
    assert len(few) == 4


def test_a_question_two_facts_answer_is_one_probe_that_either_key_recalls():
    enjoy = [Fact(character="Bob", passage="", statement="Bob enjoys chess and classical music.", id="f1",
                  answer="I enjoy chess and classical music.", keys=["chess"], content_keys=True),
             Fact(character="Bob", passage="", statement="Bob enjoys writing.", id="f2",
                  answer="I enjoy writing about language.", keys=["writing"], content_keys=True)]
    probes = fact_probes(enjoy, en)
    assert [p.question for p in probes] == ["What do you enjoy?"]
    assert {"chess", "writing"} <= set(probes[0].keys) and probes[0].source == "f1"


def test_contrast_labels_are_right_by_construction(built):
    ws, _, _ = built
    facts = {f.statement: f for f in rows(ws, StatementsStep)}
    nli = rows(ws, NLIContrastsStep)
    assert {r.label for r in nli} == {"entailed", "contradicted", "neutral"}
    for r in nli:
        fact = facts[r.statement]
        if fact.content_keys:
            continue
        if r.label == "entailed":
            assert carries(r.response, fact.keys), r
        elif r.label == "contradicted":
            assert not carries(r.response, fact.keys, any_key=False), r
    relevance = rows(ws, RelevanceContrastsStep)
    assert {r.relevant for r in relevance} == {"yes", "no"}


def test_checks_one_by_one():
    assert question_problem("What is your cat called?", ["Barnacle"]) is None
    assert question_problem("Is your cat Barnacle?", ["Barnacle"]) == "question_contains_answer"
    assert question_problem("When were you born?", ["1841"], "Mira was born in 1841.") is None
    assert question_problem("Do you like cheese?", ["1841"], "Mira was born in 1841.") == "unrelated"
    assert question_problem("Tell me about your cat", ["Barnacle"]) == "not_a_question"
    assert carries("I was born in eighteen forty-one", ["1841"]) is False and carries("I saved eleven men", ["11"])
    assert {"1902", "captain harrow"} <= set(hallucinated("I met Captain Harrow in 1902.", {"mira"}))
    allowed = {"edmund voss", "edmund", "voss"}
    assert answer_problem("I am your younger brother - Edmund Voss.", "Your younger brother is who?", ["Edmund Voss"],
                          NAMES, allowed) == "claims_anothers_name"
    assert answer_problem("I am the sister of Edmund Voss.", "Who is your brother?", ["Edmund Voss"], NAMES, allowed) is None
    assert answer_problem("My brother is Edmund Voss, and he is a clerk", "Who is your brother?", ["Edmund Voss"], NAMES,
                          allowed) == "truncated"
    facts = [Fact(id="a", character="Mira", passage="", statement="", keys=["Barnacle"], answer=""),
             Fact(id="b", character="Mira", passage="", statement="", keys=["Jonah Pell"], answer="")]
    rng = random.Random(0)
    assert swapped("My cat is Barnacle.", "Barnacle", [k for f in facts for k in f.keys], rng) == "My cat is Jonah Pell."
    assert swapped("Born in 1841.", "1841", [], rng) != "Born in 1841."


def test_probes_and_rows_are_typed():
    assert Probe(id="p", kind="fact", source="f000", question="Who?", keys=["X"]).keys == ["X"]
    row = QARow(id="q", kind="fact", source="f000", question="Who?", answer="I am.", origin="teacher")
    assert [m.role for m in row.messages()] == ["user", "assistant"]
