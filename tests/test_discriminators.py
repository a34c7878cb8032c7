"""Relevance and NLI discriminators: fine-tuning with held-out accuracy, batching, the LLM judge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.discriminators import META, ClassifierDiscriminator, Item
from rolecraft.faithfulness.judge import JudgeDiscriminator
from rolecraft.formats.apc import NLILabelRecord, load_reference
from rolecraft.llm import load_model
from rolecraft.train.discriminators import DiscriminatorSettings, held_out_split, nli_examples, train_discriminator
from tests.apc_tiny import FIXTURES, MIRA_STATEMENTS, build_tiny_encoder, tiny_discriminators


@pytest.fixture(scope="session")
def discriminators(tmp_path_factory):
    return tiny_discriminators(tmp_path_factory)


def mixed_items() -> list[Item]:
    """NLI items of very different lengths, some with conversation context."""
    items = []
    for i, statement in enumerate(MIRA_STATEMENTS):
        items.append(Item("Mira", statement, "Where do you live?", "On the island." * (1 + 3 * i)))
        items.append(Item("Mira", statement, "And now?", "Still there.", context="User: Hi\nMira: Hello there, traveller."))
    return items


def test_training_reports_held_out_accuracy_on_unseen_statements(tmp_path):
    rows = load_reference(FIXTURES / "mira.nli.v2.json", NLILabelRecord)
    items, labels = nli_examples(rows)
    train, test = held_out_split(items, 0.25, seed=0, by="statement")
    assert {items[i].statement for i in train}.isdisjoint({items[i].statement for i in test})
    assert len(test) == 6 and len(train) + len(test) == len(items)
    # By query (the default): known statements, unseen questions and their replies.
    train, test = held_out_split(items, 0.25, seed=0)
    pair = lambda i: (items[i].statement, items[i].query)  # noqa: E731
    assert {pair(i) for i in train}.isdisjoint({pair(i) for i in test}) and test
    assert {items[i].statement for i in test} & {items[i].statement for i in train}

    base = build_tiny_encoder(tmp_path / "encoder")
    settings = DiscriminatorSettings(base=str(base), epochs=1, max_length=64, held_out=0.25, held_out_by="statement")
    report = train_discriminator("nli", items, labels, tmp_path / "nli", settings)
    assert (report.train_items, report.test_items) == (18, 6)
    assert 0.0 <= report.accuracy <= 1.0 and report.majority == pytest.approx(1 / 3)
    meta = json.loads((tmp_path / "nli" / META).read_text())
    assert meta["kind"] == "nli" and meta["labels"] == ["contradicted", "neutral", "entailed"]
    assert meta["report"]["accuracy"] == report.accuracy
    assert not list(tmp_path.glob(".nli.*"))  # the temporary folder was moved into place


def test_predictions_are_probabilities_and_batching_changes_nothing(discriminators):
    _, nli_dir = discriminators
    nli = ClassifierDiscriminator(nli_dir, batch_size=3)
    items = mixed_items()
    batched = nli.predict(items)
    assert batched.shape == (len(items), 3)
    np.testing.assert_allclose(batched.sum(1), 1.0, atol=1e-6)
    one_by_one = np.concatenate([nli.predict([item]) for item in items])
    assert np.abs(batched - one_by_one).max() <= 1e-5
    assert not np.allclose(batched[0], batched[-1])  # context and reply reach the model


def test_held_out_zero_trains_on_everything(tmp_path):
    rows = load_reference(FIXTURES / "mira.nli.v2.json", NLILabelRecord)
    base = build_tiny_encoder(tmp_path / "encoder")
    report = train_discriminator("nli", *nli_examples(rows), tmp_path / "nli",
                                 DiscriminatorSettings(base=str(base), epochs=1, max_length=32, held_out=0.0))
    assert report.test_items == 0 and report.accuracy is None


def test_user_errors(tmp_path):
    with pytest.raises(RolecraftError, match="unknown labels"):
        train_discriminator("relevance", [Item("A", "s", "q")], ["maybe"], tmp_path / "x")
    with pytest.raises(RolecraftError, match="not a trained discriminator"):
        ClassifierDiscriminator(tmp_path)


def test_llm_judge_gives_label_probabilities(tiny_model_dir):
    judge = load_model(f"hf:{tiny_model_dir}")
    items = [Item("Mira", s, "Who are you?", "I keep the light.") for s in MIRA_STATEMENTS]
    for kind, width in (("relevance", 2), ("nli", 3)):
        probs = JudgeDiscriminator(judge, kind, batch_size=3).predict(items)
        assert probs.shape == (len(items), width)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        assert (probs > 0).all()


def test_llm_judge_over_an_api_counts_its_answer(tmp_path):
    from tests.openai_stub_server import StubServer

    items = [Item("Mira", MIRA_STATEMENTS[0], "What do you do?")]
    with StubServer() as server:
        judge = JudgeDiscriminator(load_model(f"openai:stub@{server.url}"), "relevance")
        probs = judge.predict(items)
        sent = server.state.log[-1].body
    assert sent["temperature"] == 0 and 'Answer only "yes" or "no"' in sent["messages"][-1]["content"]
    # The stub answers with an echo, which names no label: no information, so both labels are equal.
    np.testing.assert_allclose(probs, [[0.5, 0.5]])


def test_cli_trains_both_and_prints_accuracy(tmp_path):
    from typer.testing import CliRunner

    from rolecraft.cli import app
    from rolecraft.faithfulness.discriminators import workspace_discriminators
    from rolecraft.train.discriminators import TrainReport
    from rolecraft.workspace import Workspace

    base = build_tiny_encoder(tmp_path / "encoder")
    ws = tmp_path / "ws"
    result = CliRunner().invoke(app, [
        "discriminators", "train", str(FIXTURES / "mira.txt"), "--workspace", str(ws), "--base", str(base), "--tiny",
        "--relevance", str(FIXTURES / "mira.relevance.json"), "--nli", str(FIXTURES / "mira.nli.v2.json"), "--held-out", "0.25",
    ])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout and "majority" in result.stdout and "relevance" in result.stdout and "nli" in result.stdout
    reports = {r.kind: r for r in Workspace(ws).read("discriminators", TrainReport)}
    assert reports["nli"].test_items == 6 and reports["relevance"].epochs == 2  # the --tiny preset
    relevance, nli = workspace_discriminators(Workspace(ws))
    assert relevance.kind == "relevance" and nli.predict([Item("Mira", "s", "q", "r")]).shape == (1, 3)
