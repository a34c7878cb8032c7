"""Tiny real models for tests: a byte-level BPE tokenizer trained in memory and a 2-layer Llama.

They are random, so their text is noise, but every code path (chat templates, batching, LoRA,
SFT, DPO, schema-constrained decoding, serving) runs for real in well under a second.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Alice lives in Wonderland and likes tea with the Hatter.",
    '{"name": "scene", "location": "garden", "background": "A quiet afternoon.", "turns": []}',
    "The quick brown fox jumps over the lazy dog. 0123456789 {}[]:,\"'",
    "system user assistant speaking thinking Location Status",
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Write a 2-layer Llama (hidden 64) with the tiny tokenizer to `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    """Write a 2-layer BERT (hidden 32) with the tiny tokenizer: a stand-in for MiniLM / DeBERTa."""
    import torch
    from transformers import BertConfig, BertModel

    tok = build_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_deberta_classifier(folder: Path, num_labels: int, seed: int = 0) -> Path:
    """Write a 2-layer DeBERTa-v2 sequence classifier (hidden 32) with the tiny tokenizer and no
    rolecraft metadata: the shape of APC's published DeBERTa-v3-large scorers, in miniature."""
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tok = build_tokenizer()
    config = DebertaV2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=512, relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"],
        pad_token_id=tok.pad_token_id, num_labels=num_labels,
    )
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    DebertaV2ForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
