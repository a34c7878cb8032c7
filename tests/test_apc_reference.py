"""APC's published discriminators: a plain Hugging Face classifier folder fed APC's own prompt templates,
on tiny DeBERTa-shaped classifiers built here (the real DeBERTa-v3-large weights are not downloaded).

The templates come from a `prompt.py` in APC's shape written here; with ROLECRAFT_PAPER_REPOS holding a
copy of APC's repository, its own `prompt.py` is read and must fill them exactly as its functions do.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.apc import APCScorer
from rolecraft.faithfulness.discriminators import META, ClassifierDiscriminator, Item
from rolecraft.faithfulness.reference import APCDiscriminator, APCTemplates, load_discriminator
from tests.tiny import build_tiny_deberta_classifier

PROMPT_PY = '''
def fill_in_query_discrimination_template(character, statement, query):
    return f"""Role: {character}
    
Fact: {statement}

Asked: {query}

Does the question need the fact? yes or no."""


def fill_in_brief_nli_discrimination_template(character, statement, query, response):
    return f"""Role: {character}

Fact: {statement}

Asked: {query}

Said: {response}

Is the fact entailed, neutral, or contradict?"""
'''
# APC's README example (its published scores with the real weights: [1.608, 0.996, 0.033]).
KOISHI = "Komeiji Koishi"
STATEMENTS = ["Komeiji Koishi lives with her sister, Komeiji Satori.", "Komeiji Koishi lives in Chireiden."]
QUERY = "Where do you live, Koishi?"
RESPONSES = ["I live in Chireiden with my sister, Satori!", "I live in Chireiden!", "I live in Hakurei Shrine!"]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A folder laid out as a user would put APC's two downloaded classifiers: relevance/ and nli/."""
    root = tmp_path_factory.mktemp("apc-published")
    build_tiny_deberta_classifier(root / "relevance", num_labels=2, seed=1)
    build_tiny_deberta_classifier(root / "nli", num_labels=3, seed=2)
    (root / "prompt.py").write_text(PROMPT_PY)
    return root


def one_at_a_time(folder: Path, text: str) -> np.ndarray:
    """What APC's score.py does for one prompt: tokenize it alone, softmax the logits."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**tok(text, return_tensors="pt")).logits[0].softmax(-1).numpy()


def test_a_plain_classifier_folder_needs_apcs_templates(published):
    with pytest.raises(RolecraftError, match="apc-prompts"):
        load_discriminator(published / "relevance", "relevance")
    with pytest.raises(RolecraftError, match="3 labels, not the 2 of relevance"):
        load_discriminator(published / "nli", "relevance", published / "prompt.py")
    with pytest.raises(RolecraftError, match="neither a rolecraft discriminator"):
        load_discriminator(published, "nli", published / "prompt.py")
    relevance = load_discriminator(published / "relevance", "relevance", published / "prompt.py")
    assert isinstance(relevance, APCDiscriminator) and relevance.labels == ("no", "yes")
    nli = load_discriminator(published / "nli", "nli", published)  # the repository folder holding prompt.py
    assert nli.labels == ("contradicted", "neutral", "entailed")


def test_a_rolecraft_folder_keeps_its_own_class(published, tmp_path):
    import shutil

    folder = shutil.copytree(published / "nli", tmp_path / "nli")
    (folder / META).write_text(json.dumps({"kind": "nli", "labels": ["contradicted", "neutral", "entailed"]}))
    assert isinstance(load_discriminator(folder, "nli"), ClassifierDiscriminator)


def test_template_scoring_path_is_the_references(published):
    relevance = load_discriminator(published / "relevance", "relevance", published / "prompt.py")
    nli = load_discriminator(published / "nli", "nli", published / "prompt.py")
    item = Item(KOISHI, STATEMENTS[1], QUERY, RESPONSES[1])
    assert relevance.texts([item]) == [
        f"Role: {KOISHI}\n    \nFact: {STATEMENTS[1]}\n\nAsked: {QUERY}\n\nDoes the question need the fact? yes or no."]
    assert nli.texts([item])[0].endswith(f"Said: {RESPONSES[1]}\n\nIs the fact entailed, neutral, or contradict?")

    items = [Item(KOISHI, s, QUERY, r) for r in RESPONSES for s in STATEMENTS]
    batched = nli.predict(items)
    alone = np.stack([one_at_a_time(published / "nli", t) for t in nli.texts(items)])
    np.testing.assert_allclose(batched, alone, atol=1e-5)  # padding in a batch changes nothing

    scorer = APCScorer(KOISHI, STATEMENTS, relevance, nli)
    totals = [r.total for r in scorer.score([QUERY], [RESPONSES])[0]]
    expected = []
    for response in RESPONSES:  # APC's score_apc, statement by statement
        total = 0.0
        for statement in STATEMENTS:
            rel = one_at_a_time(published / "relevance", relevance.texts([Item(KOISHI, statement, QUERY)])[0])
            ent = one_at_a_time(published / "nli", nli.texts([Item(KOISHI, statement, QUERY, response)])[0])
            total += rel[0] * (1 - ent[0]) + rel[1] * ent[2]
        expected.append(total)
    np.testing.assert_allclose(totals, expected, atol=1e-5)


def test_apc_score_command_takes_the_published_folders(published):
    from rolecraft.cli import app

    args = ["apc", "score", "--name", KOISHI, "-q", QUERY, "--discriminators", str(published),
            "--apc-prompts", str(published / "prompt.py"), "--json"]
    for s in STATEMENTS:
        args += ["-s", s]
    for r in RESPONSES:
        args += ["-r", r]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["response"] for r in rows] == RESPONSES and all(0 <= r["apc"] <= 2 for r in rows)
    missing = CliRunner().invoke(app, args[:8] + args[10:])  # without --apc-prompts
    assert missing.exit_code != 0 and "apc-prompts" in str(missing.exception)


@pytest.mark.parametrize(("file", "suffix"), [("prompt.py", ""), ("prompt_zh.py", "_zh")])
def test_apcs_own_prompt_file_fills_the_templates_as_its_functions_do(paper_repo, file, suffix):
    path = paper_repo("Active_Passive_Constraint_Koishiday_2024") / file
    templates = APCTemplates.load(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {f"fill_in_query_discrimination_template{suffix}", f"fill_in_brief_nli_discrimination_template{suffix}"}
    namespace: dict = {}
    exec(compile(ast.Module(body=[n for n in tree.body if getattr(n, "name", "") in names], type_ignores=[]),  # noqa: S102
                 str(path), "exec"), namespace)
    item = Item(KOISHI, STATEMENTS[0], QUERY, RESPONSES[0])
    assert templates.text("relevance", item) == namespace[f"fill_in_query_discrimination_template{suffix}"](
        KOISHI, STATEMENTS[0], QUERY)
    assert templates.text("nli", item) == namespace[f"fill_in_brief_nli_discrimination_template{suffix}"](
        KOISHI, STATEMENTS[0], QUERY, RESPONSES[0])
