"""Character-LLM's prompted format, the chat format, the training templates, and imports of the
released data (recorded files in the reference's shapes, with malformed rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolecraft.cards import load_character
from rolecraft.character import Character
from rolecraft.errors import RolecraftError
from rolecraft.formats.charllm import experience_text, parse_interactions, parse_meta_prompt, text_chat_template
from rolecraft.formats.experience import Experience, Turn
from rolecraft.formats.sft import sft_rows
from rolecraft.synth.charllm_import import character_for, import_charllm, import_generated, import_prompted
from rolecraft.train.templates import training_template

FIXTURES = Path(__file__).parent / "fixtures" / "charllm"
BEETHOVEN = Character(full_name="Ludwig van Beethoven", short_name="Beethoven")
SCENE = Experience(
    id="e0001",
    character="Beethoven",
    location="Theater an der Wien - Evening",
    background="The orchestra waits on the stage.",
    dialogue=[
        Turn(role="Karl", content="Uncle, the hall is full!"),
        Turn(role="Beethoven", action="thinking", content="They are not ready."),
        Turn(role="Beethoven", content="Then let them wait."),
        Turn(role="Beethoven", content="Music does not hurry."),
        Turn(role="Karl", content="As you wish."),
        Turn(role="Anna", content="Shall I open the doors?"),
    ],
    source="s0001",
)
PROMPT = (
    "I want you to act like Ludwig van Beethoven. I want you to respond and answer like Ludwig van Beethoven, "
    "using the tone, manner and vocabulary Ludwig van Beethoven would use. You must know all of the knowledge "
    "of Ludwig van Beethoven. \n\nThe status of you is as follows:\nLocation: Theater an der Wien - Evening\n"
    "Status: The orchestra waits on the stage.\n\nThe interactions are as follows:\n\n"
)
TARGET_LINES = ["Beethoven (thinking): They are not ready.<|eot|>", "Beethoven (speaking): Then let them wait.\nMusic does not hurry.<|eot|>"]


def tiny_tokenizer(template: str | None = None):
    from tests.tiny import build_tokenizer

    tok = build_tokenizer()
    if template is not None:
        tok.chat_template = template
    return tok


def trained_text(tokenizer, messages, template) -> str:
    out = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return tokenizer.decode([t for t, keep in zip(out["input_ids"], out["assistant_masks"]) if keep])


# -- the prompted text format -----------------------------------------------------------------


def test_prompted_text_matches_the_reference_layout():
    prompt, output = experience_text(BEETHOVEN, SCENE)
    assert prompt == PROMPT
    assert output == (
        "Karl (speaking): Uncle, the hall is full!<|eot|>\n"
        "Beethoven (thinking): They are not ready.<|eot|>\n"
        "Beethoven (speaking): Then let them wait.\nMusic does not hurry.<|eot|>\n"  # merged, thought kept apart
        "Karl (speaking): As you wish.<|eot|>\n"
        "Anna (speaking): Shall I open the doors?<|eot|>"
    )
    assert parse_meta_prompt(prompt) == ("Ludwig van Beethoven", "Theater an der Wien - Evening", "The orchestra waits on the stage.")


def test_protective_scenes_get_a_neutral_location_and_status():
    guard = SCENE.model_copy(update={"protective": True})
    prompt, _ = experience_text(BEETHOVEN, guard)
    assert "Location: A room\nStatus: Beethoven is chatting with a person.\n" in prompt
    assert "Theater" not in prompt


def test_parse_interactions_keeps_contents_and_counts_what_is_not_a_turn():
    turns, malformed = parse_interactions(
        "Karl (speaking):  Hi <|eot|>\nnoise without a header<|eot|>\nBeethoven (Thinks): Hm.\nYes.<|eot|>")
    assert [(t.role, t.action, t.content) for t in turns] == [("Karl", "speaking", " Hi "), ("Beethoven", "thinking", "Hm.\nYes.")]
    assert malformed == 1


@pytest.mark.parametrize("loss", ["target", "all"])
def test_text_template_renders_like_the_format_and_masks_the_trained_lines(loss):
    tok = tiny_tokenizer()
    [row], _ = sft_rows(BEETHOVEN, [SCENE], "prompted")
    messages = [m.model_dump() for m in row.messages]
    template = text_chat_template(("assistant",) if loss == "target" else ("user", "assistant"))
    prompt, output = experience_text(BEETHOVEN, SCENE)
    assert tok.apply_chat_template(messages, chat_template=template, tokenize=False) == prompt + output + "\n"
    trained = trained_text(tok, messages, template)
    if loss == "target":
        assert trained == "".join(TARGET_LINES)
    else:
        assert trained == output.replace("<|eot|>\n", "<|eot|>")


# -- the chat format --------------------------------------------------------------------------


def test_chat_rows_put_the_character_in_the_assistant_role():
    [row], _ = sft_rows(BEETHOVEN, [SCENE], "chat")
    assert [(m.role, m.content) for m in row.messages[1:]] == [
        ("user", "Karl: Uncle, the hall is full!"),
        ("assistant", "Then let them wait.\nMusic does not hurry."),  # thoughts are not chat replies
        ("user", "Karl: As you wish.\nAnna: Shall I open the doors?"),
    ]
    system = row.messages[0].content  # the served agent's persona prompt, plus the scene
    assert system.startswith("You are Ludwig van Beethoven.") and system.endswith(
        "Location: Theater an der Wien - Evening\nStatus: The orchestra waits on the stage."
    )
    silent = SCENE.model_copy(update={"dialogue": [SCENE.dialogue[0], SCENE.dialogue[1], SCENE.dialogue[4]]})
    rows, rejected = sft_rows(BEETHOVEN, [silent], "chat")
    assert rows == [] and dict(rejected) == {"no_target_speech": 1}


def llama3_from_trl() -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "llama3.jinja").read_text()


@pytest.mark.parametrize("family", ["chatml", "llama3-variant", "llama3-trl"])
def test_marked_template_renders_like_the_students_own(family):
    own = {
        "chatml": None,  # the tiny tokenizer's own ChatML template (SmolLM2's family)
        "llama3-variant": (FIXTURES / "llama3_chat_template.jinja").read_text(),  # not byte-equal to TRL's copy
        "llama3-trl": llama3_from_trl(),  # TRL ships a training variant of this exact template
    }[family]
    tok = tiny_tokenizer(own)
    rows, _ = sft_rows(BEETHOVEN, [SCENE], "chat")
    messages = [m.model_dump() for m in rows[0].messages]
    for loss, expected in [("target", ["Then let them wait.\nMusic does not hurry."]),
                           ("all", ["Karl: Uncle", "Then let them wait", "Anna: Shall I"])]:
        template = training_template(tok, rows, "chat", loss)
        if family == "llama3-trl" and loss == "target":
            assert "Training variant of the Llama 3 chat template" in template  # TRL's own, not ours
        assert tok.apply_chat_template(messages, chat_template=template, tokenize=False) == tok.apply_chat_template(
            messages, tokenize=False
        )
        trained = trained_text(tok, messages, template)
        assert all(e in trained for e in expected) and "act like" not in trained
        if loss == "target":
            assert "Karl" not in trained


def test_smollm2_template_is_marked(tmp_path):
    from rolecraft.weights import cache_root

    folder = cache_root() / "models" / "SmolLM2-135M-Instruct"
    if not (folder / "tokenizer.json").exists():
        pytest.skip("the embedded SmolLM2 checkpoint has not been converted on this machine")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    rows, _ = sft_rows(BEETHOVEN, [SCENE], "chat")
    template = training_template(tok, rows, "chat")
    assert trained_text(tok, [m.model_dump() for m in rows[0].messages], template) == "Then let them wait.\nMusic does not hurry.<|im_end|>"


def test_templates_that_cannot_be_marked_are_refused():
    rows, _ = sft_rows(BEETHOVEN, [SCENE], "chat")
    gemma_like = "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    with pytest.raises(RolecraftError, match="cannot mark"):
        training_template(tiny_tokenizer(gemma_like), rows, "chat")
    no_template = tiny_tokenizer()
    no_template.chat_template = None
    with pytest.raises(RolecraftError, match="no chat template"):
        training_template(no_template, rows, "chat")
    marked = "{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}{% endfor %}"
    assert training_template(tiny_tokenizer(marked), rows, "chat") == marked  # the student's own markers win


# -- importing Character-LLM's released data --------------------------------------------------


def test_prompted_import_round_trips_the_released_rows():
    path = FIXTURES / "prompted_agent_dialogue_Beethoven.jsonl"
    character = character_for(path)
    assert (character.full_name, character.name) == ("Ludwig van Beethoven", "Beethoven")
    experiences, rejected = import_prompted(path, character)
    assert dict(rejected) == {"no_meta_prompt": 1, "no_turns": 1, "malformed_row": 1, "malformed_turn": 1}
    assert [e.protective for e in experiences] == [False, False, True]
    originals = [json.loads(line) for line in path.read_text().splitlines()][:3]
    rendered = [(*experience_text(character, e), e.source) for e in experiences]
    assert rendered == [(o["prompt"], o["output"], o["source"]) for o in originals]


def test_generated_import_counts_malformed_rows_and_turns():
    dialogue = FIXTURES / "generated_agent_dialogue_Beethoven.json"
    experiences, rejected = import_generated(dialogue, BEETHOVEN)
    # The orphan line (no speaker) and the blank line are malformed turns; the blank one leaves its row empty.
    assert dict(rejected) == {"malformed_row": 1, "malformed_turn": 2, "no_turns": 1}
    first, second = experiences
    assert first.background.startswith("The Breuning house") and first.setting.startswith("Young Beethoven")
    assert [(t.role, t.action) for t in first.dialogue] == [
        ("Helene", "speaking"), ("Beethoven", "thinking"), ("Beethoven", "speaking"), ("Eleonore", "speaking")
    ]
    assert second.dialogue[1].role == "Ludwig van Beethoven" and len(second.dialogue) == 3  # the name as written
    [row], _ = sft_rows(BEETHOVEN, [second], "prompted")
    assert [m.role for m in row.messages] == ["system", "user", "assistant", "user"]  # still the target's turn
    [guard], _ = import_generated(FIXTURES / "generated_agent_hallucination_Beethoven.json", BEETHOVEN)
    assert guard.protective and guard.dialogue[0].role == "Lily"


# -- byte for byte as Character-LLM's converter (parser/convert_prompt_data.py) ---------------------------

REFERENCE = FIXTURES / "reference"


def converted(files) -> list[dict]:
    """The rows rolecraft's import renders, in the converter's {prompt, output, source} shape."""
    character = load_character(REFERENCE / "wiki_Beethoven.txt")
    rows = []
    for f in files:
        experiences, _ = import_charllm(f, character)
        rows += [dict(zip(("prompt", "output", "source"), (*experience_text(character, e), e.source))) for e in experiences]
    return rows


def test_generated_rows_render_exactly_as_the_reference_converter_writes_them():
    """`reference/prompted_agent_dialogue_Beethoven.jsonl` is what convert_prompt_data.py wrote for the two
    generated files next to it: full-name speakers kept, Status from the first setting paragraph, contents
    as written (spaces included), the protective script's thought turned into speech and merged."""
    expected = [json.loads(line) for line in (REFERENCE / "prompted_agent_dialogue_Beethoven.jsonl").read_text().splitlines()]
    files = [REFERENCE / "generated_agent_dialogue_Beethoven.json", REFERENCE / "generated_agent_hallucination_Beethoven.json"]
    assert converted(files) == expected
    assert "Ludwig van Beethoven (speaking): Worse, Doctor.\nThe shepherd plays" in expected[0]["output"]
    assert "Beethoven (speaking): Recording? Radio? What nonsense is this.\nI know of no such thing" in expected[2]["output"]
    # ... and the converter's output, imported as a prompted file, renders back to itself.
    assert converted([REFERENCE / "prompted_agent_dialogue_Beethoven.jsonl"]) == expected


def test_the_reference_converter_itself_agrees(tmp_path, shared_data, paper_repo):
    """Run the paper's own converter (from the user's copy) on the fixtures and compare byte for byte."""
    import shutil
    import subprocess
    import sys

    converter = paper_repo("trainable-agents") / "parser" / "convert_prompt_data.py"
    seed = tmp_path / "data" / "seed_data"
    (seed / "profiles").mkdir(parents=True)
    (seed / "prompts").mkdir()
    shutil.copy(REFERENCE / "wiki_Beethoven.txt", seed / "profiles")
    shutil.copy(shared_data / "character-llm" / "prompts" / "agent_meta_prompt_sft.txt", seed / "prompts")
    files = [shutil.copy(REFERENCE / f, tmp_path) for f in
             ("generated_agent_dialogue_Beethoven.json", "generated_agent_hallucination_Beethoven.json")]
    subprocess.run([sys.executable, str(converter), files[0]], cwd=tmp_path, check=True, capture_output=True)
    written = (tmp_path / "prompted" / "prompted_agent_dialogue_Beethoven.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line) for line in written.splitlines()] == converted(map(Path, files))


def test_import_cli_fills_a_workspace_for_training(tmp_path):
    from rolecraft.cli import app
    from rolecraft.workspace import Workspace

    ws = tmp_path / "beethoven"
    files = [FIXTURES / "generated_agent_dialogue_Beethoven.json", FIXTURES / "generated_agent_hallucination_Beethoven.json"]
    result = CliRunner().invoke(app, ["import-charllm", *map(str, files), "-w", str(ws)])
    assert result.exit_code == 0, result.output
    assert "2 experiences, 1 protective" in result.output and "malformed_row: 1" in result.output
    assert "malformed_turn: 2" in result.output  # a line that vanished from a row is counted
    workspace = Workspace(ws)
    assert workspace.character().name == "Beethoven"
    assert len(workspace.read("experiences")) == 2 and len(workspace.read("protective")) == 1
    missing = CliRunner().invoke(app, ["import-charllm", str(tmp_path / "nope.json"), "-w", str(ws)])
    assert missing.exit_code != 0
