"""Sentence embeddings from the embedded all-MiniLM-L6-v2 (or another sentence-transformers folder):
near-duplicate questions, fact retrieval, confusable characters. Computed on the OpenMP thread.

A plain folder (a Transformer, mean pooling, optionally Normalize, and a tokenizer.json) runs on ONNX
Runtime, which is what sentence-transformers computes, without its imports (torch, transformers and
sentence-transformers take ~6 s to load): the `tokenizers` library reads the folder's tokenizer, the
transformer runs from an export, and the mean pooling and normalisation are done in numpy. The export is
made once with torch, cached under the rolecraft cache by a digest of the weights, and checked against
PyTorch's embeddings before use (rolecraft.onnx_runtime). Any other folder, or an install without ONNX
Runtime, runs on sentence-transformers.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from functools import cached_property, lru_cache, partial
from pathlib import Path

import numpy as np

from rolecraft.compute import on_compute_thread
from rolecraft.faithfulness.tokenizer import as_inputs, by_length, padded_batch
from rolecraft.onnx_runtime import EXPORT_LOCK, export, onnx_runtime_installed, onnx_session, run_session, weights_key
from rolecraft.weights import LOAD_LOCK, cache_root

BATCH = 64
PROBE = ["Where do you live?", "I keep the lighthouse on the point and play the violin when the lamp is lit."]


def embed(texts: Sequence[str], encoder: str | Path | None = None) -> np.ndarray:
    """Unit-length sentence embeddings (rows), by default from the embedded all-MiniLM-L6-v2."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return on_compute_thread(_encoder(str(encoder) if encoder else ""), list(texts))


@lru_cache(maxsize=2)
def _encoder(path: str) -> Callable[[list[str]], np.ndarray]:
    from rolecraft.llm.embedded import embedded_encoder

    folder = Path(path) if path else embedded_encoder()
    if onnx_runtime_installed() and (plain := plain_transformer(folder)):
        return OnnxEncoder(*plain)
    from sentence_transformers import SentenceTransformer

    with LOAD_LOCK:
        model = SentenceTransformer(str(folder), device="cpu")
    return partial(model.encode, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)


def plain_transformer(folder: Path) -> tuple[Path, int] | None:
    """(the transformer's folder, its max_seq_length) when `folder` holds only what the ONNX path computes:
    a Transformer without lower-casing or a default prompt, Pooling of the token mean only, and maybe a
    Normalize (sentence-transformers normalises anyway when asked to). Else None."""
    modules = read_json(folder / "modules.json") or []
    # by class name: sentence-transformers 6 moved the classes (models.Pooling → sentence_transformer.modules.pooling.Pooling)
    kinds = [m["type"].rsplit(".", 1)[-1] if m["type"].startswith("sentence_transformers.") else m["type"] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        return None
    model = folder / modules[0]["path"]
    settings = read_json(model / "sentence_bert_config.json") or {}
    pooling = read_json(folder / modules[1]["path"] / "config.json") or {}
    legacy = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]  # as saved before 6
    mean_only = pooling.get("pooling_mode", legacy) in ("mean", ["mean"], ["pooling_mode_mean_tokens"])
    prompt = (read_json(folder / "config_sentence_transformers.json") or {}).get("default_prompt_name")
    task = settings.get("transformer_task", "feature-extraction")
    length = settings.get("max_seq_length") or (read_json(model / "tokenizer_config.json") or {}).get("model_max_length")
    plain = mean_only and not prompt and not settings.get("do_lower_case") and task == "feature-extraction"
    known = isinstance(length, int) and 0 < length <= 1 << 20  # transformers writes ~1e30 for "no limit"
    return (model, length) if plain and known and (model / "tokenizer.json").exists() else None


def read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


class OnnxEncoder:
    """A plain folder's embeddings on ONNX Runtime: tokenized as sentence-transformers does ([CLS] … [SEP],
    cut at max_seq_length), batched by length, mean-pooled over the attention mask, unit length."""

    def __init__(self, folder: Path, max_length: int):
        from tokenizers import Tokenizer

        self.folder = folder
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.pad_id = (self.tokenizer.padding or {}).get("pad_id", 0)
        self.tokenizer.no_padding()  # tokenizer.json keeps the padding and truncation it was saved with
        self.tokenizer.enable_truncation(max_length)

    def __call__(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenize(texts)
        batches = by_length(encoded, BATCH)
        pooled = []
        for rows in batches:
            batch = padded_batch(encoded, rows, self.pad_id)
            pooled.append(mean_pooled(run_session(self.session, batch), batch["attention_mask"]))
        return np.concatenate(pooled)[np.argsort(np.concatenate(batches))]  # back in the texts' order

    def tokenize(self, texts: list[str]) -> dict[str, list[list[int]]]:
        return as_inputs(self.tokenizer.encode_batch(texts))

    @cached_property
    def session(self):
        target = cache_root() / "onnx" / f"{self.folder.name or 'encoder'}-{weights_key(self.folder)}.onnx"
        with EXPORT_LOCK:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                export_transformer(self.folder, target, padded_batch(self.tokenize(PROBE), range(len(PROBE)), self.pad_id))
        return onnx_session(target)


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling and normalisation (norms and counts clamped as it does)."""
    weights = mask[:, :, None].astype(np.float32)
    means = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def export_transformer(folder: Path, target: Path, probe: dict[str, np.ndarray]) -> None:
    """The transformer's last hidden state exported with eager attention, checked on `probe` as pooled
    embeddings (the numbers `embed` returns) against PyTorch's."""
    import torch
    from transformers import AutoModel

    with LOAD_LOCK:
        model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    names = [n for n in probe if n in inspect.signature(model.forward).parameters]  # a model may take no token_type_ids

    class Hidden(torch.nn.Module):  # positional inputs in `names` order, last hidden state out
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    with torch.inference_mode():
        hidden = model(**{n: torch.from_numpy(probe[n]) for n in names}).last_hidden_state
        mask = torch.from_numpy(probe["attention_mask"]).unsqueeze(-1).float()
        expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1).numpy()

    def gap(onnx_hidden: np.ndarray) -> float:
        return float(np.abs(mean_pooled(onnx_hidden, probe["attention_mask"]) - expected).max())

    export(Hidden(), {n: probe[n] for n in names}, target, "last_hidden_state", gap, folder,
           "embed with sentence-transformers: uninstall onnxruntime (the discriminators then run on PyTorch)", " in an embedding")
