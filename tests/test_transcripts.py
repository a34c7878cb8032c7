"""Character-LLM's published interview results, read and judged without regenerating them."""

from __future__ import annotations

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
