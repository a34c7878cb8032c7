"""The sentence encoder: on ONNX Runtime it gives sentence-transformers' embeddings without importing
torch, its export is cached by weights, and any folder it cannot compute falls back to
sentence-transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rolecraft.encoder import OnnxEncoder, _encoder, embed, plain_transformer
from rolecraft.onnx_runtime import onnx_runtime_installed, weights_key

onnx = pytest.mark.skipif(not onnx_runtime_installed(), reason="onnxruntime is not installed")
TEXTS = [
    "Where do you live?",
    "Hi",
    "",
    "  Ça va? Naïve café — Zürich, 1841! Δέλτα, 東京, Привет  ",
    "What instrument do you play at night, when the lamp is lit and the sea is calm?",
    "The keeper climbs the stairs at dusk, trims the wick and watches the grey water. " * 20,  # > 256 tokens
    "I keep a cat named Barnacle.",
    "Mira: I was born in Greywater in 1841 and have kept the light since my father died.",
    "no punctuation at all just words",
    "?!",
]


def embedded():
    from rolecraft.llm.embedded import embedded_encoder

    return embedded_encoder()


def sentence_transformers_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def copy_without_weights(source: Path, target: Path) -> Path:
    """The folder's small files copied, its weights linked: a folder whose configs a test may change."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx"))
    for weights in [*source.glob("*.safetensors"), *source.glob("*.bin")]:
        (target / weights.name).symlink_to(weights)
    return target


@onnx
@pytest.mark.slow  # loads the embedded sentence encoder
def test_onnx_gives_sentence_transformers_embeddings():
    folder = embedded()
    assert isinstance(_encoder(""), OnnxEncoder)
    assert max(map(len, _encoder("").tokenize(TEXTS)["input_ids"])) == 256  # the long text was cut
    ours = embed(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(ours, sentence_transformers_vectors(folder, TEXTS), atol=1e-4, rtol=0)
    np.testing.assert_array_equal(embed(TEXTS[:3], folder), ours[:3])  # the same encoder by its path
    assert embed([]).shape == (0, 384)


@onnx
@pytest.mark.slow
def test_with_the_export_cached_embedding_imports_no_torch():
    expected = embed(TEXTS)  # exports on first use, with torch
    script = (
        "import json, sys\n"
        "from rolecraft.encoder import embed\n"
        f"print(json.dumps(embed({TEXTS!r}).tolist()))\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.abs(np.array(json.loads(done.stdout), dtype=np.float32) - expected).max() == 0.0


@onnx
@pytest.mark.slow
def test_the_export_is_made_once_per_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ROLECRAFT_CACHE", str(tmp_path / "cache"))
    folder = embedded()
    _encoder.cache_clear()
    try:
        first = embed(TEXTS[:2])
        export = tmp_path / "cache" / "onnx" / f"{folder.name}-{weights_key(folder)}.onnx"
        stamp = export.stat().st_mtime_ns
        _encoder.cache_clear()  # a new process, in effect
        np.testing.assert_array_equal(embed(TEXTS[:2]), first)
        assert sorted((tmp_path / "cache" / "onnx").iterdir()) == [export] and export.stat().st_mtime_ns == stamp
    finally:
        _encoder.cache_clear()


@pytest.mark.slow
def test_cls_pooling_falls_back_to_sentence_transformers(tmp_path):
    folder = copy_without_weights(embedded(), tmp_path / "cls")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": "cls"}))
    assert plain_transformer(folder) is None and not isinstance(_encoder(str(folder)), OnnxEncoder)
    ours = embed(TEXTS, folder)
    np.testing.assert_allclose(ours, sentence_transformers_vectors(folder, TEXTS), atol=1e-6, rtol=0)
    assert np.abs(ours - sentence_transformers_vectors(embedded(), TEXTS)).max() > 0.05  # a different model indeed


def test_only_plain_mean_pooling_folders_run_on_onnx(tmp_path):
    """The embedded folder (as saved by sentence-transformers 2) and the same model as saved by 6 are
    plain; another pooling, another module, lower-casing or a default prompt are not."""
    source = embedded()
    assert plain_transformer(source) == (source, 256)

    def variant(name: str, files: dict[str, object]) -> Path:
        folder = copy_without_weights(source, tmp_path / name)
        for path, content in files.items():
            (folder / path).parent.mkdir(exist_ok=True)
            (folder / path).write_text(json.dumps(content))
        return folder

    modules = json.loads((source / "modules.json").read_text())
    saved_by_6 = variant("st6", {
        "1_Pooling/config.json": {"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": True},
        "sentence_bert_config.json": {"transformer_task": "feature-extraction", "module_output_name": "token_embeddings"},
        "tokenizer_config.json": {**json.loads((source / "tokenizer_config.json").read_text()), "model_max_length": 256},
        "modules.json": [{**m, "type": m["type"].replace(".models.", ".base.modules.x.")} for m in modules],
    })
    assert plain_transformer(saved_by_6) == (saved_by_6, 256)
    assert plain_transformer(variant("no-normalize", {"modules.json": modules[:2]})) is not None
    dense = {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    refused = [
        variant("max", {"1_Pooling/config.json": {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}}),
        variant("dense", {"modules.json": [*modules, dense]}),
        variant("lower", {"sentence_bert_config.json": {"max_seq_length": 256, "do_lower_case": True}}),
        variant("prompt", {"config_sentence_transformers.json": {"prompts": {"query": "q: "}, "default_prompt_name": "query"}}),
    ]
    no_fast_tokenizer = variant("vocab-only", {})
    (no_fast_tokenizer / "tokenizer.json").unlink()
    refused.append(no_fast_tokenizer)
    assert [plain_transformer(f) for f in refused] == [None] * len(refused)
