"""The APC score: the formula, batching and reuse of relevance, pruning, multi-turn, ΔAPC, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rolecraft.cli import app
from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.apc import APCScorer, turn_of
from rolecraft.faithfulness.discriminators import ClassifierDiscriminator, Item
from tests.apc_tiny import MIRA_STATEMENTS, tiny_discriminators

QUERIES = ["Where do you live, Mira?", "Do you play music?"]
REPLIES = [
    ["On Gull Island, in the lighthouse.", "In the capital.", "I keep the light and my cat Pilot keeps me."],
    ["Sea shanties on my violin.", "Never.", "Only on Sundays, and only badly, to annoy my brother Tomas."],
]


class Counting(ClassifierDiscriminator):
    """The real classifier, remembering how many items each call asked about."""

    calls: list[int]

    def predict(self, items):
        self.calls = [*getattr(self, "calls", []), len(items)]
        return super().predict(items)


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    relevance, nli = tiny_discriminators(tmp_path_factory)
    return Counting(relevance), Counting(nli)


@pytest.fixture()
def scorer(pair):
    relevance, nli = pair
    relevance.calls, nli.calls = [], []
    return APCScorer("Mira", MIRA_STATEMENTS, relevance, nli)


def test_the_formula_with_relevance_once_per_statement_and_query(scorer, pair):
    relevance, nli = pair
    results = scorer.score(QUERIES, REPLIES)
    # One relevance call for all (statement, query) pairs, one NLI call for all triples.
    assert relevance.calls == [len(QUERIES) * len(MIRA_STATEMENTS)]
    assert nli.calls == [sum(len(r) for r in REPLIES) * len(MIRA_STATEMENTS)]
    for query, replies, row in zip(QUERIES, REPLIES, results):
        p_g = relevance.predict([Item("Mira", s, query) for s in MIRA_STATEMENTS])[:, 1]
        for reply, result in zip(replies, row):
            p = nli.predict([Item("Mira", s, query, reply) for s in MIRA_STATEMENTS])
            expected = np.sum(p_g * p[:, 2] + (1 - p_g) * (1 - p[:, 0]))
            assert result.total == pytest.approx(float(expected), abs=1e-5)
            assert 0 <= result.total <= len(MIRA_STATEMENTS)
            assert result.neutral_baseline == pytest.approx(float(np.sum(1 - p_g)), abs=1e-5)
            assert result.delta == pytest.approx(float(np.sum(p_g * p[:, 2] - (1 - p_g) * p[:, 0])), abs=1e-5)
            assert [s.statement for s in result.statements] == MIRA_STATEMENTS and not any(s.pruned for s in result.statements)


def test_batched_equals_one_pair_at_a_time(scorer):
    batched = scorer.score(QUERIES, REPLIES)
    for query, replies, row in zip(QUERIES, REPLIES, batched):
        for reply, result in zip(replies, row):
            assert scorer.score_one(query, reply).total == pytest.approx(result.total, abs=1e-5)


def test_pruning_counts_unrelated_statements_as_neutral(pair):
    relevance, nli = pair
    everything = APCScorer("Mira", MIRA_STATEMENTS, relevance, nli, prune_below=1.01).score_one(QUERIES[0], REPLIES[0][0])
    assert all(s.pruned for s in everything.statements)
    assert everything.total == pytest.approx(everything.neutral_baseline) and everything.delta == pytest.approx(0.0)
    nothing = APCScorer("Mira", MIRA_STATEMENTS, relevance, nli, prune_below=0.0).score_one(QUERIES[0], REPLIES[0][0])
    exact = APCScorer("Mira", MIRA_STATEMENTS, relevance, nli).score_one(QUERIES[0], REPLIES[0][0])
    assert nothing.total == pytest.approx(exact.total, abs=1e-6)


def test_multi_turn_replies_are_scored_given_the_conversation(scorer):
    conversation = [
        {"role": "user", "content": "Hello! Who are you?"},
        {"role": "assistant", "content": "Mira, the keeper of this light."},
        {"role": "user", "content": "Do you live here alone?"},
        {"role": "assistant", "content": "With Pilot, my cat."},
    ]
    turn = turn_of(conversation[:3], "Mira")
    assert turn.query == "Do you live here alone?"
    assert turn.context == "User: Hello! Who are you?\nMira: Mira, the keeper of this light."
    in_context = scorer.score_one(conversation[:3], "With Pilot, my cat.")
    alone = scorer.score_one("Do you live here alone?", "With Pilot, my cat.")
    assert in_context.total != pytest.approx(alone.total, abs=1e-7)  # the earlier turns reach the discriminators
    per_turn = scorer.score_conversation(conversation)
    assert [r.response for r in per_turn] == ["Mira, the keeper of this light.", "With Pilot, my cat."]
    assert per_turn[1].total == pytest.approx(in_context.total, abs=1e-5)
    assert per_turn[0].total == pytest.approx(scorer.score_one("Hello! Who are you?", "Mira, the keeper of this light.").total, abs=1e-5)


def test_bad_input(pair):
    relevance, nli = pair
    with pytest.raises(RolecraftError, match="ends with the user"):
        APCScorer("Mira", MIRA_STATEMENTS, relevance, nli).score_one([{"role": "assistant", "content": "hi"}], "x")
    with pytest.raises(RolecraftError, match="no persona statements"):
        APCScorer("Mira", [], relevance, nli)
    with pytest.raises(RolecraftError, match="relevance discriminator first"):
        APCScorer("Mira", MIRA_STATEMENTS, nli, relevance)


def test_cli_prints_the_breakdown_and_total(pair, tmp_path):
    relevance, nli = pair
    folder = relevance.path.parent
    args = ["apc", "score", "--name", "Mira", "--discriminators", str(folder), "-q", QUERIES[0],
            *[a for s in MIRA_STATEMENTS[:2] for a in ("-s", s)], "-r", REPLIES[0][0], "-r", REPLIES[0][1]]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = APCScorer("Mira", MIRA_STATEMENTS[:2], relevance, nli).score([QUERIES[0]], [REPLIES[0][:2]])[0]
    assert [r["apc"] for r in rows] == pytest.approx([r.total for r in expected], abs=1e-5)
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "APC (ΔAPC)" in table.output and f"{expected[0].total:.3f}" in table.stdout
    missing = CliRunner().invoke(app, ["apc", "score", "--name", "Mira", "-s", "x", "-q", "q", "-r", "r",
                                       "--discriminators", str(tmp_path)])
    assert missing.exit_code != 0 and "no trained discriminators" in str(missing.exception)


@pytest.mark.slow
def test_the_published_example_keeps_its_order_with_embedded_discriminators(tmp_path):
    """APC's regression example (Komeiji Koishi), scored by all-MiniLM-L6-v2 discriminators fine-tuned
    here on tests/fixtures/apc/persona.*.json: short replies about eight made-up characters, none of
    the example's names. Published (DeBERTa): 1.608 > 0.996 > 0.033."""
    from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord, load_reference
    from rolecraft.train.discriminators import (
        DiscriminatorSettings,
        nli_examples,
        relevance_examples,
        train_discriminator,
    )
    from tests.apc_tiny import FIXTURES

    short = DiscriminatorSettings(max_length=64, held_out=0.0)
    rows = load_reference(FIXTURES / "persona.relevance.json", RelevanceRecord)
    settings = short.model_copy(update={"learning_rate": 1e-4, "epochs": 6})
    train_discriminator("relevance", *relevance_examples(rows), tmp_path / "relevance", settings)
    rows = load_reference(FIXTURES / "persona.nli.v2.json", NLILabelRecord)
    settings = short.model_copy(update={"learning_rate": 2e-4, "epochs": 5, "batch_size": 16})
    train_discriminator("nli", *nli_examples(rows), tmp_path / "nli", settings)

    statements = ["Komeiji Koishi lives with her sister, Komeiji Satori.", "Komeiji Koishi lives in Chireiden."]
    scorer = APCScorer("Koishi", statements, ClassifierDiscriminator(tmp_path / "relevance"), ClassifierDiscriminator(tmp_path / "nli"))
    full, partial, wrong = scorer.score(
        ["Where do you live, Koishi?"],
        [["I live in Chireiden with my sister, Satori!", "I live in Chireiden!", "I live in Hakurei Shrine!"]],
    )[0]
    assert full.total > partial.total > wrong.total  # measured here: 1.39 > 1.16 > 0.57
    assert full.total - wrong.total > 0.5  # a clear gap, not noise


def test_probe_replies_of_every_agent_are_scored_together_with_relevance_once_per_question(scorer, pair):
    from rolecraft.eval.probing import ProbeResult, add_apc

    relevance, _ = pair
    results = [ProbeResult(agent=f"agent{a}", probe=f"p{q}", kind="fact", source="f", question=QUERIES[q], reply=REPLIES[q][a])
               for a in range(3) for q in range(2)]
    results.append(ProbeResult(agent="agent0", probe="b", kind="boundary", source="radio", question="Radio?", reply="A what?"))
    add_apc(results, scorer)
    assert relevance.calls == [len(QUERIES) * len(MIRA_STATEMENTS)]  # not once per agent
    for r in results[:-1]:
        assert r.apc == pytest.approx(scorer.score([r.question], [[r.reply]])[0][0].total, abs=1e-5)
    assert results[-1].apc is None
