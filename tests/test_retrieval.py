"""Retrieval of persona facts: top-k by relevance, the embedding pre-filter, use in the agent's prompt."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rolecraft.agent import Agent
from rolecraft.agent.loading import fact_retriever
from rolecraft.character import Character, LoreEntry
from rolecraft.faithfulness.discriminators import ClassifierDiscriminator, Item
from rolecraft.faithfulness.retrieval import FactRetriever
from rolecraft.llm import load_model
from rolecraft.workspace import Workspace
from tests.apc_tiny import MIRA_STATEMENTS, tiny_discriminators

FILLER = [f"Mira once counted {n} gulls on the north rocks before breakfast." for n in range(40)]


@pytest.fixture(scope="session")
def relevance(tmp_path_factory):
    return ClassifierDiscriminator(tiny_discriminators(tmp_path_factory)[0])


def test_top_k_by_relevance(relevance):
    retriever = FactRetriever("Mira", MIRA_STATEMENTS, relevance)
    query = "Do you have a cat?"
    p_g = relevance.predict([Item("Mira", f, query) for f in MIRA_STATEMENTS])[:, 1]
    expected = [MIRA_STATEMENTS[i] for i in np.argsort(-p_g, kind="stable")]
    assert retriever.search(query, 2) == expected[:2]
    assert retriever.search(query, 10) == expected  # k larger than the facts: all of them, ranked
    assert retriever.search(query, 0) == []
    assert "encoder" not in retriever.__dict__  # few facts: no embedding model is ever loaded


@pytest.mark.slow  # loads the embedded sentence encoder
def test_the_embedding_prefilter_shortlists_the_nearest_facts(relevance):
    facts = FILLER + MIRA_STATEMENTS
    retriever = FactRetriever("Mira", facts, relevance, candidates=8)
    shortlist = retriever.shortlist("Tell me about your grey cat Pilot.")
    assert len(shortlist) == 8 and facts.index("Mira lives alone with a grey cat named Pilot.") in shortlist
    found = retriever.search("Tell me about your grey cat Pilot.", 3)
    assert len(found) == 3 and set(found) <= {facts[i] for i in shortlist}
    assert retriever.index.shape == (len(facts), 384)
    np.testing.assert_allclose(np.linalg.norm(retriever.index, axis=1), 1.0, atol=1e-5)


def test_without_a_relevance_discriminator_statements_are_ranked_by_embedding_similarity(tmp_path):
    character = Character(full_name="Mira Vance", statements=MIRA_STATEMENTS + FILLER[:5])
    ws = Workspace.for_character(character, tmp_path / "mira")
    retriever = fact_retriever(character, ws)  # no discriminators/relevance in this workspace
    assert isinstance(retriever, FactRetriever) and retriever.relevance is None
    assert retriever.search("Tell me about your grey cat.", 1) == ["Mira lives alone with a grey cat named Pilot."]


def test_the_agent_puts_retrieved_facts_in_its_prompt(relevance, tmp_path, tiny_model_dir):
    character = Character(
        full_name="Mira Vance",
        statements=MIRA_STATEMENTS[:3],
        lore=[LoreEntry(keys=["violin"], content=MIRA_STATEMENTS[3])],
    )
    ws = Workspace.for_character(character, tmp_path / "mira")
    shutil.copytree(relevance.path, ws.path("discriminators/relevance"))
    retriever = fact_retriever(ws.character(), ws)  # what chat, serve and eval use
    assert isinstance(retriever, FactRetriever) and retriever.relevance is not None
    assert retriever.facts == MIRA_STATEMENTS  # statements and lore entries

    agent = Agent(character, load_model(f"hf:{tiny_model_dir}"), retriever=retriever, k=2)
    history = [{"role": "user", "content": "What instrument do you play?"}]
    system = agent.messages(history)[0].content
    facts = retriever.search("What instrument do you play?", 2)
    assert all(f"- {fact}" in system for fact in facts)
    assert sum(s in system for s in MIRA_STATEMENTS) == 2


def test_a_workspace_shares_one_classifier_per_discriminator_which_remembers_the_pairs_it_scored(
        relevance, tmp_path, tmp_path_factory):
    """Retrieval and the APC scorer ask the same (statement, question) pairs: the workspace's relevance
    classifier is one instance, and a pair it has scored is not run through the model again."""
    from rolecraft.faithfulness.apc import turn_of, workspace_scorer
    from rolecraft.faithfulness.discriminators import workspace_discriminator

    character = Character(full_name="Mira Vance", statements=MIRA_STATEMENTS)
    ws = Workspace.for_character(character, tmp_path / "mira")
    nli = tiny_discriminators(tmp_path_factory)[1]
    shutil.copytree(relevance.path, ws.path("discriminators/relevance"))
    shutil.copytree(nli, ws.path("discriminators/nli"))
    retriever = fact_retriever(ws.character(), ws)
    scorer = workspace_scorer(ws)
    assert retriever.relevance is scorer.relevance is workspace_discriminator(ws, "relevance")

    question = "Do you have a cat?"
    retriever.search(question, 2)
    shared = scorer.relevance
    assert set(shared.seen) == {(f"Mira: {s}", question) for s in MIRA_STATEMENTS}
    remembered = scorer.relevance_matrix([turn_of(question, "Mira")])  # every pair from the retrieval
    np.testing.assert_allclose(remembered[0], relevance.predict([Item("Mira", s, question) for s in MIRA_STATEMENTS])[:, 1],
                               atol=1e-6)
    items = [Item("Mira", s, question, "I have a grey cat.") for s in MIRA_STATEMENTS]
    twice = scorer.nli.predict(items + items)  # a repeated reply is scored once
    assert len(scorer.nli.seen) == len(items)
    np.testing.assert_allclose(twice, ClassifierDiscriminator(nli).predict(items + items), atol=1e-6)

    shared.remember = len(MIRA_STATEMENTS) + 1  # full: it forgets rather than grows
    shared.predict([Item("Mira", s, "Where do you live?") for s in MIRA_STATEMENTS])
    assert len(shared.seen) == len(MIRA_STATEMENTS)

    meta = ws.discriminator_dir("relevance") / "discriminator.json"
    meta.write_text(meta.read_text())  # retrained: a new classifier for the new weights
    assert workspace_discriminator(ws, "relevance") is not shared
