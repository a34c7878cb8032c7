"""APC-based DPO: preference pairs sampled from the agent (multi-turn too), TRL DPO with LoRA."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from rolecraft.agent import Agent
from rolecraft.character import Character
from rolecraft.cli import app
from rolecraft.errors import RolecraftError
from rolecraft.faithfulness.apc import APCScorer
from rolecraft.faithfulness.discriminators import ClassifierDiscriminator
from rolecraft.faithfulness.retrieval import FactRetriever
from rolecraft.formats.apc import PreferenceRecord, StatementQueries, load_reference
from rolecraft.llm import Message, load_model, run_sync
from rolecraft.llm.pool import ModelPool
from rolecraft.pipeline import Models, run_steps
from rolecraft.step import Context
from rolecraft.synth.preference import PreferenceSettings, PreferenceStep, preference_pairs, split_queries
from rolecraft.synth.queries import QueriesStep
from rolecraft.train.dpo import SETTINGS_FILE, dpo_config, train_dpo
from rolecraft.train.student import lora_config
from rolecraft.workspace import Workspace
from tests.apc_tiny import MIRA_STATEMENTS, tiny_discriminators

QUERIES = ["Where do you live?", "Do you have pets?", "What do you play?", "Who is Tomas?"]
FAST = dict(max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_length=256)


@pytest.fixture(scope="session")
def sampled(tmp_path_factory, tiny_model_dir):
    """A workspace whose agent (tiny student + retrieval) produced preference pairs, two turns deep."""
    relevance_dir, nli_dir = tiny_discriminators(tmp_path_factory)
    character = Character(full_name="Mira Vance", statements=MIRA_STATEMENTS)
    ws = Workspace.for_character(character, tmp_path_factory.mktemp("dpo") / "mira")
    for kind, folder in (("relevance", relevance_dir), ("nli", nli_dir)):
        shutil.copytree(folder, ws.discriminator_dir(kind))
    ws.write(QueriesStep.name, [StatementQueries(statement=MIRA_STATEMENTS[0], queries=QUERIES)])
    ws.record(QueriesStep.name, status="done", fingerprint="given")
    pool = ModelPool(ws.cache_path)
    student = load_model(f"hf:{tiny_model_dir}", batch_size=1)  # several batches per call: they queue on the model
    relevance = ClassifierDiscriminator(ws.discriminator_dir("relevance"))
    agent = Agent(character, pool.wrap(student), retriever=FactRetriever("Mira", MIRA_STATEMENTS, relevance), k=2)
    ctx = Context(ws, Models(student=f"hf:{tiny_model_dir}"), pool, agents=lambda adapter, retrieval: agent)
    settings = PreferenceSettings(samples=3, margin=0.0, turns=2, max_tokens=12, held_out=0.0)
    run_sync(run_steps([PreferenceStep(settings, adapter=None)], ctx))
    return ws, agent, ws.read("preference", PreferenceRecord)


def test_pairs_are_sampled_on_the_agents_own_prompt_and_go_multi_turn(sampled):
    ws, agent, rows = sampled
    assert rows
    info = ws.entry("preference")
    assert info["info"]["contexts"] == 4 and info["rows"] == len(rows) and info["info"]["retrieval"] is True
    for row in rows:
        assert row.chosen_apc > row.rejected_apc and row.chosen != row.rejected
        history = [m for m in row.prompt if m.role != "system"]
        assert row.prompt == agent.messages(history)  # exactly what the agent serves with
        assert len([m for m in history if m.role == "user"]) == row.turns
    second = [r for r in rows if r.turns == 2]
    assert second and all(r.prompt[-2].role == "assistant" for r in second)
    trl = rows[0].to_trl()
    assert trl["prompt"][0]["role"] == "system" and trl["chosen"] == [{"role": "assistant", "content": rows[0].chosen}]


def test_rerunning_the_sampling_is_served_from_the_cache(sampled):
    ws, agent, rows = sampled
    before = agent.model.usage.calls
    relevance = agent.retriever.relevance
    scorer = APCScorer("Mira", MIRA_STATEMENTS, relevance, ClassifierDiscriminator(relevance.path.parent / "nli"))
    settings = PreferenceSettings(samples=3, margin=0.0, turns=2, max_tokens=12, held_out=0.0)
    queries, _ = split_queries(QUERIES, settings.held_out, settings.seed)  # the order the step asked them in
    again, _ = run_sync(preference_pairs(agent, scorer, queries, settings))
    assert agent.model.usage.calls == before and again == rows
    # New seeds: the same model generates again, from another event loop (each run has its own).
    run_sync(preference_pairs(agent, scorer, QUERIES, PreferenceSettings(samples=2, margin=0.0, max_tokens=12, seed=7)))
    assert agent.model.usage.calls == before + 8


def test_dpo_trains_a_fresh_lora_against_the_base(sampled, tiny_model_dir, tmp_path):
    _, _, rows = sampled
    out = tmp_path / "adapters" / "dpo"
    result = train_dpo(f"hf:{tiny_model_dir}", rows, out, dpo_config(**FAST), lora_config(r=4))
    assert result.rows == len(rows) and "train_loss" in result.metrics
    assert (out / "adapter_config.json").exists() and not (out / "ref").exists()
    settings = json.loads((out / SETTINGS_FILE).read_text())
    assert settings["method"] == "dpo" and settings["start_adapter"] is None
    assert settings["dpo_config"]["beta"] == 0.1 and settings["lora"]["r"] == 4
    assert settings["multi_turn_rows"] == sum(r.turns > 1 for r in rows)
    base, tuned = load_model(f"hf:{tiny_model_dir}"), load_model(f"hf:{tiny_model_dir}@{out}")
    ids = base.tokenizer("Alice lives in Wonderland", return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(base.model(**ids).logits, tuned.model(**ids).logits)


def test_dpo_continues_an_existing_adapter(tiny_model_dir, tmp_path):
    from peft import get_peft_model

    start = tmp_path / "sft"
    get_peft_model(load_model(f"hf:{tiny_model_dir}").model, lora_config(r=4, init_lora_weights=False)).save_pretrained(start)
    rows = [PreferenceRecord(prompt=[Message(role="user", content=q)], chosen="On the island.", rejected="In space.") for q in QUERIES]
    out = tmp_path / "dpo"
    train_dpo(f"hf:{tiny_model_dir}", rows, out, dpo_config(**FAST), adapter=start)
    assert json.loads((out / SETTINGS_FILE).read_text())["start_adapter"] == str(start)
    from safetensors.torch import load_file

    before, after = load_file(start / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_cli_trains_on_the_reference_pairs(shared_data, tiny_model_dir, tmp_path):
    pairs = shared_data / "apc" / "alice-statements" / "Alice.rag.dpo.json"
    ws = Workspace.for_character(Character(full_name="Alice"), tmp_path / "alice")
    result = CliRunner().invoke(app, ["train", "dpo", "--workspace", str(ws.root), "--student", f"hf:{tiny_model_dir}",
                                      "--pairs", str(pairs), "--epochs", "0.3", "--rank", "4"])
    assert result.exit_code == 0, result.output
    assert (ws.path("adapters/dpo") / "adapter_config.json").exists()
    assert ws.entry("preference")["rows"] == 14 and ws.entry("dpo")["status"] == "done"


def test_user_errors(tiny_model_dir, tmp_path):
    with pytest.raises(RolecraftError, match="no preference pairs"):
        train_dpo(f"hf:{tiny_model_dir}", [], tmp_path / "x")
    with pytest.raises(RolecraftError, match="training needs local weights"):
        train_dpo("openai:gpt@http://127.0.0.1:9/v1", [PreferenceRecord(prompt="p", chosen="a", rejected="b")], tmp_path / "x")
    long_prompt = [Message(role="system", content="You are Liora. " * 40), Message(role="user", content="Where?")]
    with pytest.raises(RolecraftError, match=r"all 1 preference pairs have prompts of 32 tokens or more.*raise max_length"):
        train_dpo(f"hf:{tiny_model_dir}", [PreferenceRecord(prompt=long_prompt, chosen="Here.", rejected="There.")],
                  tmp_path / "x", dpo_config(**{**FAST, "max_length": 32}), lora_config(r=4))
    assert not (tmp_path / "x").exists()
    (tmp_path / "pairs.json").write_text(json.dumps([{"prompt": "p", "chosen": "a", "rejected": "b"}]))
    assert load_reference(tmp_path / "pairs.json", PreferenceRecord)[0].to_trl() == {"prompt": "p", "chosen": "a", "rejected": "b"}


# -- APC's own recipe -----------------------------------------------------------------------------------


def test_training_queries_are_drawn_at_random_not_in_file_order():
    """APC draws max_dpo_data queries at random from all of them; the first N in file order would leave
    the later statements' queries out of DPO."""
    queries = [f"statement {s:02d}, query {q}" for s in range(40) for q in range(3)]
    settings = PreferenceSettings(max_contexts=20, held_out=0.0)
    train, held = split_queries(queries, settings.held_out, settings.seed)
    asked = train[: settings.max_contexts]  # what preference_pairs samples
    assert held == [] and sorted(train) == sorted(queries)
    assert asked != queries[:20] and max(int(q.split()[1].rstrip(",")) for q in asked) >= 30


def test_apcs_released_pairs_become_messages_for_the_students_own_template(shared_data, tmp_path):
    from rolecraft.formats.apc import student_neutral
    from rolecraft.pipeline import run
    from rolecraft.synth.preference import ImportPreferenceStep

    path = shared_data / "apc" / "alice-statements" / "Alice.rag.dpo.json"
    raw = load_reference(path, PreferenceRecord)
    assert raw[0].prompt.startswith("<start_of_turn>model\n") and raw[0].chosen.endswith("<eos>")
    rows, converted = student_neutral(raw, path)
    assert converted == len(raw) == 14
    for row, original in zip(rows, raw):
        assert [m.role for m in row.prompt] == ["system", "user"]
        assert row.prompt[0].content.endswith("not as an AI.") and row.prompt[1].content in original.prompt
        assert "<eos>" not in row.chosen + row.rejected and original.chosen == row.chosen + "<eos>"
        assert row.to_trl()["chosen"] == [{"role": "assistant", "content": row.chosen}]
    ws = Workspace.for_character(Character(full_name="Alice"), tmp_path / "alice")
    [done] = run([ImportPreferenceStep(path)], ws, Models())
    assert done.info["converted_from_gemma_markup"] == 14
    assert all(isinstance(r.prompt, list) for r in ws.read("preference", PreferenceRecord))


def test_pairs_in_another_chat_markup_are_refused(tmp_path):
    from rolecraft.formats.apc import student_neutral

    chatml = PreferenceRecord(prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", chosen="a", rejected="b")
    with pytest.raises(RolecraftError, match="another model's chat markup"):
        student_neutral([chatml], tmp_path / "pairs.json")
    plain = PreferenceRecord(prompt="Where do you live?", chosen="a", rejected="b")
    assert student_neutral([plain], tmp_path / "pairs.json") == ([plain], 0)  # plain text is the student's to render


def test_the_paper_preset_trains_dpo_as_apc_did():
    from rolecraft.pipeline.presets import paper
    from rolecraft.synth.protective import ProtectiveSettings

    p = paper()
    assert (p.dpo_rank, p.dpo_config["num_train_epochs"], p.preference.max_tokens) == (128, 10, 256)
    assert (p.preference.max_contexts, p.preference.samples, p.preference.margin, p.preference.held_out) == (100, 2, 0.2, 0.0)
    lora = lora_config(p.dpo_rank, **p.dpo_lora)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (128, 8, 0.0)  # PEFT's defaults, as APC left them
    config = dpo_config(**p.dpo_config)
    assert (config.beta, config.learning_rate, config.per_device_train_batch_size, config.gradient_accumulation_steps) == (
        0.1, 2e-4, 1, 8)
    assert p.protective.per_paragraph and p.protective.count(experiences=300, paragraphs=59) == 59
    assert ProtectiveSettings().count(experiences=300, paragraphs=59) == 30  # rolecraft's own: ~10 %
    assert ProtectiveSettings(fraction=0.0, per_paragraph=True).count(300, 59) == 0
