"""Tiny real discriminators for the APC tests: a 2-layer BERT (hidden 32) with MiniLM's tokenizer,
fine-tuned for real on the Mira fixture rows in under a second. Their judgements are noise; the
code paths (training, saving, batching, scoring, retrieval, DPO sampling) are the real ones."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "apc"
MIRA_STATEMENTS = [
    "Mira Vance is a 41-year-old lighthouse keeper on Gull Island.",
    "Mira grew up in Port Ellery with her brother Tomas.",
    "Mira lives alone with a grey cat named Pilot.",
    "Mira plays the violin in the evenings, mostly old sea shanties.",
]


def build_tiny_encoder(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rolecraft.llm.embedded import embedded_encoder

    tokenizer = AutoTokenizer.from_pretrained(embedded_encoder())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def train_tiny_discriminators(folder: Path) -> tuple[Path, Path]:
    """(relevance, nli) discriminator folders trained from the Mira fixture rows."""
    from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord, load_reference
    from rolecraft.train.discriminators import (
        DiscriminatorSettings,
        nli_examples,
        relevance_examples,
        train_discriminator,
    )

    base = build_tiny_encoder(folder / "encoder")
    settings = DiscriminatorSettings(base=str(base), epochs=1, max_length=64, learning_rate=1e-3)
    relevance = load_reference(FIXTURES / "mira.relevance.json", RelevanceRecord)
    nli = load_reference(FIXTURES / "mira.nli.v2.json", NLILabelRecord)
    train_discriminator("relevance", *relevance_examples(relevance), folder / "relevance", settings)
    train_discriminator("nli", *nli_examples(nli), folder / "nli", settings)
    return folder / "relevance", folder / "nli"


_trained: dict[str, tuple[Path, Path]] = {}


def tiny_discriminators(tmp_path_factory) -> tuple[Path, Path]:
    """Trained once per test session, shared by every APC test module."""
    if "pair" not in _trained:
        _trained["pair"] = train_tiny_discriminators(tmp_path_factory.mktemp("tiny-discriminators"))
    return _trained["pair"]
