"""Character-LLM's published interview results, read and judged without regenerating them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolecraft.errors import RolecraftError
from rolecraft.eval.questions import load_bank
from rolecraft.eval.results import EvalResults
from rolecraft.eval.transcripts import agent_name, read_transcripts

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
SINGLE = FIXTURES / "results" / "Mira_sft_result" / "2023-00-00-00-00-00.json"
MULTI = FIXTURES / "results" / "multiturn_Mira_sft_result" / "2023-00-00-00-00-00.jsonl"


def test_single_turn_results_keep_only_what_was_said():
    records = read_transcripts(SINGLE, "Mira Castellan")
    assert agent_name(SINGLE) == "sft" and {t.agent for t in records} == {"sft"}
    first, probe, plain = records
    assert first.replies() == ["In Brest, among the rope-walks of my father."]  # the thought is dropped
    assert probe.question.probe and probe.question.topic == "difficult to answer without breaking character"
    assert plain.replies() == ["He is a stubborn old goat, and my friend."]  # a reply given as plain text


def test_multi_turn_results_recover_topics_from_the_bank():
    records = read_transcripts(MULTI, "Mira Castellan", bank=load_bank(FIXTURES / "questions_multi.json"))
    storm, unknown = records
    assert storm.id == "multi-001" and storm.question.topic_id == "topic-1"
    assert [m.role for m in storm.turns] == ["user", "assistant"] * 2
    assert storm.turns[3].content.startswith("Four of them")
    assert unknown.question.topic_id == "" and unknown.notes == ["the interview did not finish"]
    assert read_transcripts(MULTI, "Mira Castellan", agent="published")[0].agent == "published"


@pytest.mark.parametrize("content", ['{"topic_id": "topic-1"}', '[{"topic_id": "topic-1"}]', "[1, 2]"])
def test_files_in_another_shape_are_refused_with_the_expected_shape(tmp_path, content):
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(RolecraftError, match="not a Character-LLM interview result"):
        read_transcripts(path, "Mira")


def test_cli_judges_published_transcripts_into_one_report(tiny_model_dir, tmp_path):
    from rolecraft.cli import app

    out = tmp_path / "ws"
    result = CliRunner().invoke(app, [
        "eval", "transcripts", str(SINGLE), str(MULTI), "--character", str(FIXTURES / "wiki_Mira.txt"),
        "--bank", str(FIXTURES / "questions_multi.json"), "--judge", f"hf:{tiny_model_dir}", "--judge-tokens", "48",
        "--workspace", str(out),
    ])
    assert result.exit_code == 0, result.output
    folder = out / "eval" / "transcripts"
    results = EvalResults.model_validate_json((folder / "results.json").read_text())
    assert results.agents == ["sft"] and results.transcripts == 5
    # 3 single-turn x 4 dimensions + 1 rejection for the probe + 2 multi-turn x 5 dimensions.
    assert results.judgements == 3 * 4 + 1 + 2 * 5
    assert results.probe("sft").n == 1
    assert (folder / "report.md").exists() and (folder / "chart.png").exists()


# -- the published Beethoven results of all four systems (../shared/data) ------------------------------

def published(shared_data: Path) -> list[Path]:
    folder = shared_data / "character-llm" / "transcripts"
    return sorted(folder.glob("single/Beethoven_*.json")) + sorted(folder.glob("multi/Beethoven_*.jsonl"))


def rows_in(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    return len(json.loads(text)) if path.suffix == ".json" else sum(1 for line in text.splitlines() if line.strip())


@pytest.mark.parametrize("protocol", ["rolecraft", "reference"])
def test_every_published_file_reads_with_one_transcript_per_row(shared_data, protocol):
    files = published(shared_data)
    assert len(files) == 8
    for path in files:
        records = read_transcripts(path, "Ludwig van Beethoven", protocol=protocol, name="Beethoven")
        assert len(records) == rows_in(path), path.name
        assert records[0].agent in {"alpaca-7b", "vicuna-7b", "chatgpt", "sft"}
        assert all(m.content.strip() for t in records for m in t.turns), path.name


def test_object_replies_of_alpaca_and_vicuna_are_read(shared_data):
    path = shared_data / "character-llm" / "transcripts" / "single" / "Beethoven_alpaca-7b.json"
    first = json.loads(path.read_text(encoding="utf-8"))[0]["reply"]
    assert isinstance(first, dict)  # {role, action, content}, not a list
    [record, *_] = read_transcripts(path, "Ludwig van Beethoven", name="Beethoven")
    assert record.agent == "alpaca-7b" and record.replies() == [first["content"].strip()]


def test_interviewer_lines_go_to_the_interviewer_and_thoughts_alone_are_noted(shared_data):
    folder = shared_data / "character-llm" / "transcripts" / "multi"
    chatgpt = read_transcripts(folder / "Beethoven_chatgpt.jsonl", "Ludwig van Beethoven", name="Beethoven")
    moved = [t for t in chatgpt if any("went to the interviewer" in n for n in t.notes)]
    assert sum(n.count("went to the interviewer") for t in chatgpt for n in t.notes) == 18
    raw = {json.loads(line)["qid"]: json.loads(line) for line in (folder / "Beethoven_chatgpt.jsonl").read_text().splitlines()}
    for t in moved:
        man_lines = [i["content"] for turn in raw[int(t.id.split("-")[1])]["content"] if turn["turn_role"] == "character"
                     for i in turn["turn_content"] if i["role"] == "Man"]
        assert all(line not in reply for line in man_lines for reply in t.replies())
        assert all(any(line in m.content for m in t.turns if m.role == "user") for line in man_lines)
    sft = read_transcripts(folder / "Beethoven_sft.jsonl", "Ludwig van Beethoven", name="Beethoven")
    silent = [n for t in sft for n in t.notes if "only thought" in n]
    assert len(silent) == 3
    assert sum(r == "(says nothing)" for t in sft for r in t.replies()) == 3  # never an empty reply
    reference = read_transcripts(folder / "Beethoven_sft.jsonl", "Ludwig van Beethoven", protocol="reference", name="Beethoven")
    assert sum(len(t.turns) for t in reference) == sum(len(t.turns) for t in sft) - 3  # the scorer leaves them out


def test_a_mixed_command_judges_every_readable_file_and_names_the_rest(shared_data, tmp_path):
    from rolecraft.cli import app
    from tests.openai_stub_server import StubServer

    broken = tmp_path / "Beethoven_broken.json"
    broken.write_text('[{"topic_id": "topic-1"}]')
    pointer = tmp_path / "Beethoven_lfs.jsonl"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 4150249\n")
    files = published(shared_data)
    out = tmp_path / "ws"
    profile = shared_data / "character-llm" / "profiles" / "wiki_Beethoven.txt"
    with StubServer() as stub:
        result = CliRunner().invoke(app, [
            "eval", "transcripts", *map(str, files[:4]), str(broken), *map(str, files[4:]), str(pointer),
            "--character", str(profile), "--judge", f"openai:judge@{stub.url}", "--workspace", str(out),
        ])
    assert result.exit_code == 0, result.output
    results = EvalResults.model_validate_json((out / "eval" / "transcripts" / "results.json").read_text())
    assert results.transcripts == sum(rows_in(f) for f in files) == 528
    assert set(results.agents) == {"alpaca-7b", "vicuna-7b", "chatgpt", "sft"}
    assert "not judged:" in result.output and "Beethoven_broken.json" in result.output
    assert "Beethoven_lfs.jsonl is a Git LFS pointer" in result.output


def test_nothing_is_written_when_no_file_can_be_read(tmp_path):
    from rolecraft.cli import app

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    out = tmp_path / "ws"
    result = CliRunner().invoke(app, ["eval", "transcripts", str(broken), "--character", str(FIXTURES / "wiki_Mira.txt"),
                                      "--workspace", str(out)])
    assert result.exit_code != 0 and "no transcript could be read" in str(result.exception)
    assert not out.exists()  # not even character.json
