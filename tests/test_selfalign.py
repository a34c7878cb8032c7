"""Self-alignment (Ditto) on 20 small characters with the tiny real model: sets, plans, rows, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolecraft.charset import aliases, character_from_record, load_characters, neighbours, unique_ids
from rolecraft.cli import app
from rolecraft.errors import RolecraftError
from rolecraft.formats.wikirole import read_wikirole
from rolecraft.pipeline import Models
from rolecraft.pipeline import run as run_steps
from rolecraft.synth.selfalign import (
    SelfAlignConfig,
    SelfAlignDialogue,
    clean_question,
    clean_response,
    plan,
    role_description,
)
from rolecraft.synth.selfalign_run import SelfAlignStep, run_selfalign
from rolecraft.synth.selfalign_shards import SHARDS, SelfAlignSummary
from rolecraft.workspace import Workspace, read_jsonl

FIXTURES = Path(__file__).parent / "fixtures" / "selfalign"
CONFIG = SelfAlignConfig(queries=4, turns=2, eval_queries=2, shard_size=6, query_tokens=12, response_tokens=12)


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def cast():
    return load_characters(FIXTURES / "characters")


@pytest.fixture(scope="module")
def run(cast, tiny_model_dir, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("selfalign"))
    [done] = run_steps([SelfAlignStep(CONFIG, characters=cast)], ws, Models(teacher=f"hf:{tiny_model_dir}"))
    return ws, SelfAlignSummary(**done.info, rejections=done.rejections)


def test_a_folder_of_profiles_and_cards_is_a_set(cast):
    assert len(cast) == 20 and len(set(unique_ids(cast))) == 20
    kinds = {c.source.kind for c in cast}
    assert kinds == {"profile", "card_v2"}
    zara = next(c for c in cast if c.full_name == "Zara Quint")
    assert "Copper Kite" in zara.profile_text() and "Test fixture" not in zara.profile_text()  # creator_notes stay out


def test_ditto_meta_records_become_characters():
    cast = load_characters(FIXTURES / "meta.jsonl")
    margaret = cast[0]
    assert margaret.full_name == "Margaret Thorne" and aliases(margaret) == ["Mags Thorne", "Maggie"]
    assert margaret.description == "fictional lighthouse keeper from the novel The Long Light"
    assert margaret.statements == ["instance of: fictional human", "occupation: lighthouse keeper", "residence: Cape Wrath Light"]
    # the wiki article repeats the summary: each paragraph is kept once
    assert margaret.paragraphs == [margaret.paragraphs[0], "She keeps bees and reads Greek poetry by lamplight."]
    assert role_description(margaret) == "You are Margaret Thorne, fictional lighthouse keeper from the novel The Long Light."
    record = json.loads((FIXTURES / "meta.jsonl").read_text().splitlines()[2])
    assert character_from_record({"system": "...", "prompts": ["hi"], "meta": record}) == character_from_record(record)
    with pytest.raises(RolecraftError, match="no `label`"):
        character_from_record({"description": "nameless"})


def test_neighbours_are_confusable_but_never_the_same_person():
    cast = load_characters(FIXTURES / "meta.jsonl")
    near = neighbours(cast, 3)
    names = [c.full_name for c in cast]
    assert names[1] not in [names[j] for j in near[0]] and names[0] not in [names[j] for j in near[1]]  # aliases
    assert all(i not in js for i, js in enumerate(near))
    assert names[near[0][0]] == "Corvin Hale"  # same novel: the most confusable


def test_plan_draws_contrastive_knowledge_from_another_character(cast):
    tasks = plan(cast, CONFIG)
    by_id = dict(zip(unique_ids(cast), cast))
    near = neighbours(cast, CONFIG.neighbours)
    ids = unique_ids(cast)
    contrastive = 0
    for i, task in enumerate(tasks):
        train = [t.query for d in task.dialogues if d.split == "train" for t in d.turns]
        assert len(train) == CONFIG.queries
        assert sum(not q.should_know for q in train) == round(CONFIG.queries * CONFIG.contrastive_share)
        for d in task.dialogues:
            assert len(d.turns) <= CONFIG.turns and task.character.full_name in d.candidates
            for q in (t.query for t in d.turns):
                assert q.should_know == (q.kind == "role")
                owner = by_id[q.source_character]
                assert _flat(q.knowledge) in _flat(owner.profile_text())
                if q.kind == "contrastive":
                    contrastive += 1
                    assert q.source_character != task.id and q.source_name == owner.full_name
                    assert q.source_character in [ids[j] for j in near[i]]
                    assert _flat(q.knowledge) not in _flat(task.character.profile_text())
    assert contrastive >= 20


def test_clean_question_and_response(cast):
    assert clean_question('Question: "Mara, why seaweed in the bread?" she asked.') == "Mara, why seaweed in the bread?"
    assert clean_question("\n\n1. Tobias, do you yodel at dawn?\nMore text") == "Tobias, do you yodel at dawn?"
    assert clean_question("Why?") == ""
    mara = next(c for c in cast if c.full_name == "Mara Quill")
    reply = "Mara Quill: I bake at three. I bake at three. I never go uphill! (Your profile says: ...) User: and"
    assert clean_response(reply, mara) == "I bake at three. I never go uphill!"
    assert clean_response("Bread, bread. And then I went to the harb", mara) == "Bread, bread."


def test_rows_are_multi_turn_and_keep_only_the_role_description(run, cast):
    ws, summary = run
    rows = ws.read("selfalign", SelfAlignDialogue)
    assert summary.characters == 20 and summary.dialogues == len(rows) > 20
    assert summary.turns == sum(len(d.turns) for d in rows) and summary.contrastive_turns > 0
    by_id = dict(zip(unique_ids(cast), cast))
    assert any(len(d.turns) >= 2 for d in rows)
    for d in rows:
        character = by_id[d.character]
        messages = d.messages()
        assert messages[0].role == "system" and messages[0].content == role_description(character)
        assert [m.role for m in messages[1:]] == ["user", "assistant"] * len(d.turns)
        assert all(m.content.strip() for m in messages)
        # The long profile stays out of the training row: only its first sentence is there.
        later = [s for p in character.paragraphs[1:] for s in p.split(". ") if len(s) > 20]
        assert later and not any(s in d.system for s in later)
    contrastive = [t for d in rows for t in d.turns if t.query.kind == "contrastive"]
    assert contrastive and all(t.query.source_character != d.character for d in rows for t in d.turns if not t.query.should_know)
    manifest = ws.entry("selfalign")
    assert manifest["status"] == "done" and manifest["rows"] == len(rows) and manifest["settings"][0]["queries"] == 4


def test_held_out_questions_are_a_wikiroleeval_set(run):
    ws, summary = run
    items = read_wikirole(ws.path("selfalign-eval.jsonl"))
    assert len(items) == summary.eval_dialogues > 0
    for item in items:
        assert item.label in item.role_consist_cands and len(item.role_consist_cands) == 4
        assert len(item.rejection_labels) == len(item.prompts) == len(item.evidence) == len(item.source_characters)
        for label, source, evidence in zip(item.rejection_labels, item.source_characters, item.evidence):
            assert evidence.startswith("- ")
            assert (label == 1) == (source != item.id.rsplit("-eval-", 1)[0])
    assert any(1 in item.rejection_labels for item in items)


def test_rerun_reuses_finished_shards_and_a_new_seed_does_not(run, cast, tiny_model_dir, tmp_path):
    ws = Workspace(shutil.copytree(run[0].root, tmp_path / "copy"))
    before = ws.read("selfalign", SelfAlignDialogue)
    again = run_selfalign(cast, f"hf:{tiny_model_dir}", ws, CONFIG)
    assert again.summary.shards_reused == again.summary.shards == 4 and again.train == before
    other = run_selfalign(cast[:6], f"hf:{tiny_model_dir}", ws, CONFIG.model_copy(update={"seed": 1}))
    assert other.summary.shards_reused == 0
    assert len(list(ws.path(SHARDS).glob("*.jsonl"))) == 5  # 4 shards of seed 0, 1 of seed 1


@pytest.mark.slow  # trains a (tiny) adapter
def test_cli_runs_a_jsonl_set(tiny_model_dir, tmp_path):
    ws = tmp_path / "ws"
    result = CliRunner().invoke(
        app,
        ["selfalign", str(FIXTURES / "meta.jsonl"), "--model", f"hf:{tiny_model_dir}", "-w", str(ws),
         "--queries", "3", "--turns", "3", "--max-tokens", "8", "--eval-queries", "1", "--train", "--epochs", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "5 characters ->" in result.output and (ws / "selfalign.jsonl").exists()
    assert (ws / "adapters" / "selfalign" / "adapter_config.json").exists() and "trained one adapter" in result.output
    assert read_jsonl(ws / "selfalign.jsonl", SelfAlignDialogue)
    missing = CliRunner().invoke(app, ["selfalign", str(tmp_path / "nowhere")])
    assert isinstance(missing.exception, RolecraftError) and "no such file or folder" in str(missing.exception)


@pytest.mark.slow  # trains a (tiny) adapter
def test_one_adapter_for_all_characters_through_the_shared_sft_trainer(run, tiny_model_dir):
    from rolecraft.llm import Message, SamplingParams, load_model, run_sync
    from rolecraft.train.sft import SETTINGS_FILE, SFTSettings, SFTStep

    ws, summary = run
    step = SFTStep(SFTSettings(format="chat", eval_fraction=0.0, lora_r=4, lora_alpha=8),
                   {"max_steps": 2, "per_device_train_batch_size": 8, "save_strategy": "no"},
                   reads=(SelfAlignStep,), adapter="selfalign")
    [done] = run_steps([step], ws, Models(student=f"hf:{tiny_model_dir}"))
    assert done.info["rows"]["train"] == summary.dialogues and done.info["rows"]["dropped_train"] == 0
    info = json.loads((ws.adapter("selfalign") / SETTINGS_FILE).read_text())
    assert info["format"] == "chat" and info["character"].startswith("20 characters") and info["loss"] == "target"
    model = load_model(f"hf:{tiny_model_dir}", adapter=ws.adapter("selfalign"))
    [reply] = run_sync(model.generate([[Message(role="system", content="You are Mara Quill."),
                                        Message(role="user", content="Hello")]], SamplingParams(max_tokens=4)))
    assert reply.completion_tokens > 0
