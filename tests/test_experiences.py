"""Experience reconstruction: parsers on recorded teacher outputs (malformed ones included), the stages
over a recorded teacher behind the real request cache, constrained decoding on a tiny real model, and
the embedded path end to end (slow)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolecraft.character import Character
from rolecraft.formats.experience import Experience, Scene
from rolecraft.llm import Completion, SamplingParams, run_sync
from rolecraft.llm.base import ChatModel
from rolecraft.llm.cache import CachedModel, RequestCache
from rolecraft.llm.structured import max_json_length
from rolecraft.pipeline import Models, run
from rolecraft.synth.experiences import ExperienceSettings, ExperiencesStep, make_experiences, script_schema
from rolecraft.synth.parse import check_script, normalize_roles, parse_scenes, parse_script
from rolecraft.synth.protective import ProtectiveSettings, ProtectiveStep, make_protective, protective_schema
from rolecraft.synth.scenes import SceneSettings, ScenesStep, make_scenes, plan_prompts, scene_list, scene_prompt
from rolecraft.synth.stats import character_stats
from rolecraft.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "charllm"
BEETHOVEN = Character(
    full_name="Ludwig van Beethoven",
    short_name="Beethoven",
    paragraphs=[
        "Ludwig van Beethoven was a German composer and pianist, born in Bonn in 1770.",
        "At age 21 he moved to Vienna, where he studied with Haydn and became famous as a virtuoso pianist.",
        "His hearing began to deteriorate in his late twenties; by his last decade he was almost totally deaf.",
    ],
)
CAESAR = Character(full_name="Gaius Julius Caesar", short_name="Caesar")
RECORDED = json.loads((FIXTURES / "recorded_structured.json").read_text())


class RecordedTeacher(ChatModel):
    """A teacher that answers with recorded outputs, in request order (what a real teacher once wrote)."""

    provider = "recorded"

    def __init__(self, answers: list[dict]):
        super().__init__("teacher")
        self.answers = list(answers)
        self.calls = 0

    async def generate(self, conversations, params, schema=None):
        out = []
        for _ in conversations:
            answer = self.answers[self.calls]
            self.calls += 1
            out.append(Completion(text=answer["text"], finish_reason=answer["finish_reason"], completion_tokens=10))
        return out


def recorded(tmp_path: Path, answers: list[dict]) -> tuple[RecordedTeacher, CachedModel]:
    teacher = RecordedTeacher(answers)
    return teacher, CachedModel(teacher, RequestCache(tmp_path / "cache.sqlite"))


def texts(*names: str) -> list[dict]:
    return [{"text": (FIXTURES / n).read_text(), "finish_reason": "stop"} for n in names]


def scenes_for(n: int) -> list[Scene]:
    return [
        Scene(id=f"s{i:04d}", type="chat", location="Vienna", background=f"Rehearsal {i}.", paragraph=i % 3,
              source=BEETHOVEN.paragraphs[i % 3])
        for i in range(n)
    ]


# -- parsing recorded scripts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "character", "expected"),
    [
        ("script_reference.txt", BEETHOVEN,
         [("Beethoven", "thinking"), ("Beethoven", "speaking"), ("Karl", "speaking"), ("Beethoven", "speaking"),
          ("Karl", "speaking"), ("Beethoven", "thinking")]),
        ("script_inline.txt", BEETHOVEN,
         [("Beethoven", "thinking"), ("Helene", "speaking"), ("Beethoven", "speaking"), ("Helene", "speaking"),
          ("Beethoven", "thinking")]),
        ("script_split_action.txt", CAESAR,
         [("Caesar", "speaking"), ("Brutus", "speaking"), ("Caesar", "thinking"), ("Caesar", "speaking")]),
    ],
)
def test_parse_script_variants(name, character, expected):
    background, turns = parse_script((FIXTURES / name).read_text())
    turns = normalize_roles(turns, character)
    assert [(t.role, t.action) for t in turns] == expected
    assert check_script(background, turns, character) is None
    assert "Sure" not in background and background.endswith(".")
    assert all(t.content and not t.content.startswith('"') for t in turns)


def test_parse_script_keeps_multiline_speech_and_strips_chatter():
    _, turns = parse_script((FIXTURES / "script_reference.txt").read_text())
    assert turns[3].content == "Then they have two more hours to learn it.\nThe music does not wait for tired arms."
    assert turns[4].content == "At least let them eat something before the concert."  # quotes removed
    _, turns = parse_script((FIXTURES / "script_inline.txt").read_text())
    assert turns[-1].content == "She always knows how to soften me."  # "The End." is not speech


def test_name_colon_inside_a_speech_is_not_a_new_speaker():
    script = "Background:\nA hall in Vienna.\n\nBeethoven (speaking)\nListen: the horns enter late.\n\nKarl (speaking)\nYes."
    _, turns = parse_script(script)
    assert [t.role for t in turns] == ["Beethoven", "Karl"]
    assert turns[0].content == "Listen: the horns enter late."


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("malformed_prose.txt", "no_turns"),
        ("malformed_two_turns.txt", "too_few_turns"),
        ("malformed_no_background.txt", "no_background"),
        ("malformed_other_thinks.txt", "wrong_speaker_thinking"),
        ("malformed_silent_target.txt", "no_target_turn"),
        ("malformed_placeholder.txt", "placeholder_turn"),
        ("malformed_repetitive.txt", "repetitive"),
    ],
)
def test_malformed_scripts_are_rejected_by_reason(name, reason):
    background, turns = parse_script((FIXTURES / name).read_text())
    assert check_script(background, normalize_roles(turns, BEETHOVEN), BEETHOVEN) == reason


def test_parse_scenes_free_text():
    scenes = parse_scenes((FIXTURES / "scenes_free_text.txt").read_text())
    assert [s.get("type") for s in scenes] == ["Chat", "Debate", "Speech", "Discussion"]
    assert scenes[1]["background"].endswith("must bow to his patrons.")  # continued line joined
    assert "background" not in scenes[2]  # incomplete, left for the stage to reject


# -- planning and schemas --------------------------------------------------------------------


def test_prompts_are_balanced_over_paragraphs_and_distinct():
    plan = plan_prompts(BEETHOVEN.paragraphs, 100, seed=0)
    counts = [sum(1 for i, _ in plan if i == p) for p in range(3)]
    assert len(plan) == 100 and min(counts) >= 33
    prompts = [scene_prompt(BEETHOVEN, BEETHOVEN.paragraphs[i], 20, r, True)[1].content for i, r in plan]
    assert len(set(prompts)) == 100  # repeated paragraphs get distinct prompts (distinct cache keys)
    assert len(plan_prompts(BEETHOVEN.paragraphs, 2, seed=0)) == 2  # fewer prompts than paragraphs


def test_json_bound_covers_a_maximal_answer():
    settings = ExperienceSettings.tiny()
    schema = script_schema(settings)
    n = settings.turn_chars
    longest = schema(
        background="\n" * 240,
        exchanges=[{"speaker": "x" * 30, "says": "\n" * n, "character_thinks": "\n" * n, "character_says": "\n" * n}]
        * settings.exchanges,
    )
    # One space after every separator: the most whitespace constrained decoding allows.
    assert len(json.dumps(longest.model_dump(), separators=(", ", ": "))) <= max_json_length(schema)


# -- stages over a recorded teacher --------------------------------------------------------


def test_make_scenes_counts_rejections(tmp_path):
    _, model = recorded(tmp_path, RECORDED["scenes"])
    scenes, rejected = run_sync(make_scenes(BEETHOVEN, model, SceneSettings(prompts=3, per_prompt=2)))
    assert [s.id for s in scenes] == ["s0000", "s0001"]
    assert scenes[0].source == BEETHOVEN.paragraphs[scenes[0].paragraph]
    assert dict(rejected) == {"duplicate_scene": 1, "incomplete_scene": 1, "truncated": 1}


def test_make_experiences_structured(tmp_path):
    teacher, model = recorded(tmp_path, RECORDED["experiences"])
    kept, rejected = run_sync(make_experiences(BEETHOVEN, model, scenes_for(6), ExperienceSettings.tiny()))
    assert dict(rejected) == {"truncated": 1, "placeholder_turn": 1, "schema_mismatch": 1, "repetitive": 1}
    assert [e.source for e in kept] == ["s0000", "s0001"]
    assert [(t.role, t.action) for t in kept[0].dialogue] == [
        ("Karl", "speaking"), ("Beethoven", "thinking"), ("Beethoven", "speaking"), ("Karl", "speaking"),
        ("Beethoven", "speaking"),
    ]
    assert kept[1].dialogue[3].role == "Beethoven"  # "Ludwig van Beethoven" as a speaker is the target

    # A rerun (e.g. after a crash) is answered by the request cache: the teacher is not asked again.
    again, _ = run_sync(make_experiences(BEETHOVEN, recorded(tmp_path, [])[1], scenes_for(6), ExperienceSettings.tiny()))
    assert again == kept and teacher.calls == 6


def test_make_experiences_free_text(tmp_path):
    names = ["script_reference.txt", "malformed_prose.txt", "malformed_other_thinks.txt", "script_inline.txt"]
    _, model = recorded(tmp_path, texts(*names))
    settings = ExperienceSettings(structured=False)
    kept, rejected = run_sync(make_experiences(BEETHOVEN, model, scenes_for(4), settings))
    assert [e.source for e in kept] == ["s0000", "s0003"]
    assert dict(rejected) == {"no_turns": 1, "wrong_speaker_thinking": 1}
    assert kept[0].background.startswith("Vienna, 1808.")


def test_make_protective(tmp_path):
    _, model = recorded(tmp_path, RECORDED["protective"])
    kept, rejected = run_sync(make_protective(BEETHOVEN, model, 2, ProtectiveSettings.tiny()))
    assert dict(rejected) == {"truncated": 1}
    [guard] = kept
    assert guard.protective and {t.action for t in guard.dialogue} == {"speaking"}
    assert guard.dialogue[1].role == "Beethoven" and guard.dialogue[0].role != "Beethoven"
    assert ProtectiveSettings().count(40) == 4 and ProtectiveSettings().count(3) == 1
    assert ProtectiveSettings(fraction=0).count(40) == 0


def test_stages_write_workspace_manifest_and_stats(tmp_path):
    ws = Workspace.for_character(BEETHOVEN, tmp_path / "ws")
    # Answers in request order: 3 scene prompts (2 scenes kept), a script per scene, 2 protective scripts.
    teacher = RecordedTeacher(RECORDED["scenes"] + RECORDED["experiences"][:2] + RECORDED["protective"])
    steps = [ScenesStep(SceneSettings(prompts=3, per_prompt=2)), ExperiencesStep(ExperienceSettings.tiny()),
             ProtectiveStep(ProtectiveSettings.tiny())]
    run(steps, ws, Models(teacher=teacher))

    info = ws.entry("experiences")
    assert info["rows"] == 2 and info["rejections"] == {} and info["usage"][teacher.spec]["calls"] == 2
    assert ws.entry("protective")["rejections"] == {"truncated": 1}
    assert ws.entry("scenes")["rows"] == len(ws.read("scenes", Scene)) == 2
    stats = character_stats(ws)
    experiences = ws.read("experiences", Experience)
    assert (stats.scenes, stats.experiences, stats.protective) == (2, 2, 1)
    assert stats.turns_per_scene == round(sum(len(e.dialogue) for e in experiences) / 2, 1)
    assert stats.words == sum(e.words() for e in experiences + ws.read("protective", Experience))
    assert stats.rejected == sum(ws.entry("scenes")["rejections"].values()) + 1
    assert json.loads(ws.path("stats.json").read_text())["protective"] == 1

    from rolecraft.cli import app

    out = CliRunner().invoke(app, ["stats", str(ws.root), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["experiences"] == 2
    table = CliRunner().invoke(app, ["stats", str(ws.root)])
    assert "Ludwig van Beethoven" in table.output and "protective/truncated 1" in table.output


# -- real constrained decoding ----------------------------------------------------------------


def test_constrained_answers_of_a_tiny_model_always_parse(tiny_model_dir, tmp_path):
    """Even a random model answers every schema validly and within the computed token bound."""
    from rolecraft.llm.hf import HFChatModel
    from rolecraft.synth.generate import generate_rows

    model = CachedModel(HFChatModel(str(tiny_model_dir)), RequestCache(tmp_path / "cache.sqlite"))
    tiny = ExperienceSettings(exchanges=2, turn_chars=40)
    for schema in (scene_list(1), script_schema(tiny), protective_schema(ProtectiveSettings(exchanges=2, turn_chars=40))):
        prompts = [[{"role": "user", "content": "Answer"}]]
        params = SamplingParams(temperature=1.0, max_tokens=max_json_length(schema) + 16)
        rows = run_sync(generate_rows(model, prompts, schema, params, "tiny"))
        assert all(r.ok for r in rows), [r.error for r in rows]


# -- the embedded path end to end -----------------------------------------------------------


@pytest.mark.slow
def test_embedded_path_end_to_end(shared_data, tmp_path, artifacts):
    """scenes → experiences → protective → SFT (LoRA) → the adapter loads and answers, offline on CPU."""
    profile = shared_data / "apc" / "wiki" / "wiki_Alice.txt"
    if not profile.exists():
        pytest.skip("wiki_Alice.txt is not in the reference data")
    from rolecraft.cli import app

    ws = tmp_path / "alice"
    runner = CliRunner()
    timings = {}
    for stage, args in [
        ("scenes", ["scenes", str(profile), "-w", str(ws), "--tiny"]),
        ("experiences", ["experiences", str(ws), "--tiny"]),
        ("sft", ["train", "sft", str(ws), "--format", "prompted", "--eval-fraction", "0", "--",
                 "--max_steps", "4", "--max_length", "384", "--per_device_train_batch_size", "2", "--save_strategy", "no"]),
    ]:
        started = time.monotonic()
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        timings[stage] = round(time.monotonic() - started, 1)

    workspace = Workspace(ws)
    experiences = workspace.read("experiences", Experience)
    protective = workspace.read("protective", Experience)
    assert experiences, workspace.manifest()
    # Every answer parsed (constrained decoding); what a 135M teacher writes may still be rejected on
    # content (e.g. a parroted line), and every such script is counted.
    guard = workspace.entry("protective")
    assert guard["rows"] + sum(guard["rejections"].values()) == ProtectiveSettings.tiny().count(len(experiences))
    assert all(any(t.role == "Alice" and t.action == "speaking" for t in e.dialogue) for e in experiences)
    adapter = ws / "adapters" / "sft"
    info = json.loads((adapter / "training.json").read_text())
    assert info["format"] == "prompted" and info["method"] == "sft-lora"

    from rolecraft.agent.charllm import respond_character_llm
    from rolecraft.llm import load_model

    started = time.monotonic()
    student = load_model("embedded", adapter=adapter)
    reply = run_sync(respond_character_llm(workspace.character(), student, [{"role": "user", "content": "Do you play guitar?"}],
                                           SamplingParams(max_tokens=32, temperature=0.0)))
    timings["answer"] = round(time.monotonic() - started, 1)
    assert reply.text.strip() or reply.thoughts
    (artifacts / "experiences_e2e.json").write_text(json.dumps(
        {"timings_s": timings, "experiences": len(experiences), "protective": len(protective),
         "stats": character_stats(workspace).model_dump(), "reply": reply.text}, indent=2))
