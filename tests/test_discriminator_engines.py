"""The discriminators' engines: ONNX Runtime gives PyTorch's probabilities, its export is cached by
weights, the PyTorch path still works, and int8 is an approximate option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.apc import APCScorer
from rolecraft.faithfulness.discriminators import META, ClassifierDiscriminator, Item
from rolecraft.faithfulness.engines import OnnxClassifier, TorchClassifier
from rolecraft.onnx_runtime import onnx_runtime_installed, weights_key
from tests.apc_tiny import MIRA_STATEMENTS, tiny_discriminators
from tests.test_discriminators import mixed_items

onnx = pytest.mark.skipif(not onnx_runtime_installed(), reason="onnxruntime is not installed")
EXACT = 1e-4


@pytest.fixture(scope="module")
def discriminators(tmp_path_factory):
    return tiny_discriminators(tmp_path_factory)


def classifier_folder(folder: Path, base: Path, kind: str = "nli", seed: int = 0) -> Path:
    """A discriminator folder from an encoder with a seeded, untrained head (the same compute as a trained one)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    labels = ["contradicted", "neutral", "entailed"] if kind == "nli" else ["no", "yes"]
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / META).write_text(json.dumps({"kind": kind, "labels": labels, "max_length": 128}))
    return folder


def assert_same_probabilities(folder: Path, items: list[Item]) -> np.ndarray:
    fast = ClassifierDiscriminator(folder, batch_size=4, engine="onnx")
    reference = ClassifierDiscriminator(folder, batch_size=4, engine="torch")
    probs = fast.predict(items)
    assert isinstance(fast.runner, OnnxClassifier) and isinstance(reference.runner, TorchClassifier)
    assert np.abs(probs - reference.predict(items)).max() <= EXACT
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    return probs


@onnx
def test_onnx_gives_pytorchs_probabilities_on_trained_tiny_discriminators(discriminators):
    for folder in discriminators:
        assert_same_probabilities(folder, mixed_items())
        assert isinstance(ClassifierDiscriminator(folder).runner, OnnxClassifier)  # "auto" picks it


@onnx
def test_apc_scores_are_the_same_on_both_engines(discriminators):
    relevance, nli = discriminators
    queries = ["Where do you live?", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                                      {"role": "user", "content": "Do you play music?"}]]
    replies = [["On Gull Island, with Pilot.", "In the city."], ["Only sea shanties, on my violin."]]
    totals = {}
    for engine in ("onnx", "torch"):
        scorer = APCScorer("Mira", MIRA_STATEMENTS, ClassifierDiscriminator(relevance, engine=engine),
                           ClassifierDiscriminator(nli, engine=engine))
        totals[engine] = [r.total for row in scorer.score(queries, replies) for r in row]
    assert np.abs(np.array(totals["onnx"]) - np.array(totals["torch"])).max() <= EXACT


@onnx
def test_export_is_cached_by_weights_and_redone_when_they_change(tmp_path, tiny_encoder_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = classifier_folder(tmp_path / "nli", tiny_encoder_dir)
    items = mixed_items()
    before = assert_same_probabilities(folder, items)
    export = folder / "onnx" / f"{weights_key(folder)}.onnx"
    stamp = export.stat().st_mtime_ns
    ClassifierDiscriminator(folder, engine="onnx").predict(items[:2])  # a new instance reuses the export
    assert sorted((folder / "onnx").iterdir()) == [export] and export.stat().st_mtime_ns == stamp

    model = AutoModelForSequenceClassification.from_pretrained(folder)  # "retrained": new head bias
    with torch.no_grad():
        model.classifier.bias += torch.tensor([1.0, 0.0, -1.0])
    model.save_pretrained(folder)
    after = assert_same_probabilities(folder, items)
    assert weights_key(folder) != export.stem and not export.exists()  # re-exported, the stale one gone
    assert [p.name for p in (folder / "onnx").iterdir()] == [f"{weights_key(folder)}.onnx"]
    assert np.abs(after - before).max() > 0.05


@onnx
def test_int8_is_an_approximate_option(tmp_path, tiny_encoder_dir):
    folder = classifier_folder(tmp_path / "relevance", tiny_encoder_dir, kind="relevance")
    items = mixed_items()
    int8 = ClassifierDiscriminator(folder, engine="onnx-int8")
    probs = int8.predict(items)
    assert (folder / "onnx" / f"{weights_key(folder)}.int8.onnx").exists()
    assert np.abs(probs - ClassifierDiscriminator(folder, engine="torch").predict(items)).max() < 0.05


@onnx
def test_onnx_matches_pytorch_on_the_embedded_minilm(tmp_path):
    from rolecraft.llm.embedded import embedded_encoder

    folder = classifier_folder(tmp_path / "nli", embedded_encoder())
    items = mixed_items() + [Item("Mira", s, "What is your cat called?") for s in MIRA_STATEMENTS]
    assert_same_probabilities(folder, items)


def test_the_tokenizer_gives_transformers_ids_and_scoring_needs_no_torch(tmp_path, tiny_encoder_dir):
    """`tokenizers` on the saved tokenizer.json gives transformers' ids for the same call, on the
    embedded MiniLM's WordPiece and the tiny one, for pairs that both sides of truncation cut; and a
    discriminator with its export made scores in a process that never imports torch or transformers."""
    import subprocess
    import sys

    from transformers import AutoTokenizer

    from rolecraft.faithfulness.tokenizer import PairTokenizer
    from rolecraft.llm.embedded import embedded_encoder

    long = "The keeper climbs the stairs at dusk, trims the wick and watches the grey water. " * 12
    firsts = ["Mira: I keep a cat named Barnacle.", "Mira: Ça va? Naïve café — 1841!", long, "Mira: short."]
    seconds = ["What is your cat called?\nMira: Barnacle, of course.", "Déjà vu?", "And then?", long]
    folders = [classifier_folder(tmp_path / "minilm", embedded_encoder()), classifier_folder(tmp_path / "tiny", tiny_encoder_dir)]
    for folder in folders:
        ours, theirs = PairTokenizer(folder), AutoTokenizer.from_pretrained(folder)
        for length in (32, 128):
            mine = ours(firsts, seconds, truncation=True, max_length=length)
            reference = theirs(firsts, seconds, truncation=True, max_length=length)
            assert {k: mine[k] for k in reference} == dict(reference)
            assert max(map(len, mine["input_ids"])) == length  # the long pairs were cut
        assert ours.pad_token_id == theirs.pad_token_id
    if not onnx_runtime_installed():
        return
    items = [Item("Mira", s, "What is your cat called?", "Barnacle.") for s in MIRA_STATEMENTS]
    expected = ClassifierDiscriminator(folders[0], engine="onnx").predict(items)  # exports, with torch
    script = (
        "import sys, numpy as np\n"
        "from rolecraft.faithfulness.discriminators import ClassifierDiscriminator, Item\n"
        f"items = [Item('Mira', s, 'What is your cat called?', 'Barnacle.') for s in {list(MIRA_STATEMENTS)!r}]\n"
        f"print(ClassifierDiscriminator({str(folders[0])!r}).predict(items).tolist())\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.abs(np.array(json.loads(done.stdout)) - expected).max() == 0.0


def test_the_pytorch_path_works_and_bad_engines_are_refused(discriminators):
    _, nli = discriminators
    probs = ClassifierDiscriminator(nli, batch_size=3, engine="torch").predict(mixed_items())
    assert probs.shape == (len(mixed_items()), 3) and ClassifierDiscriminator(nli).predict([]).shape == (0, 3)
    with pytest.raises(RolecraftError, match="unknown discriminator engine"):
        ClassifierDiscriminator(nli, engine="tensorrt")


def test_auto_falls_back_to_pytorch_without_onnx_runtime_or_on_a_gpu(monkeypatch, discriminators):
    from rolecraft.faithfulness import engines

    assert engines.resolve_engine("auto", "cuda") == "torch" and engines.resolve_engine("torch", "cpu") == "torch"
    monkeypatch.setattr(engines, "onnx_runtime_installed", lambda: False)  # as on an install without the hf extra
    assert engines.resolve_engine("auto", "cpu") == "torch"
    assert isinstance(ClassifierDiscriminator(discriminators[1]).runner, TorchClassifier)
