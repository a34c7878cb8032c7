"""WikiRoleEval: the Ditto schema in both layouts, a lossless writer, and a run with the three judges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rolecraft.errors import RolecraftError
from rolecraft.eval.cost import Cost
from rolecraft.eval.run import finish
from rolecraft.eval.targets import AgentSpec
from rolecraft.eval.wikiroleeval import run_wikirole
from rolecraft.formats.wikirole import WikiRoleItem, read_wikirole, write_wikirole
from rolecraft.llm import SamplingParams, run_sync
from rolecraft.llm.pool import ModelPool
from rolecraft.workspace import Workspace
from tests.openai_stub_server import StubServer

FILE = Path(__file__).parent / "fixtures" / "eval" / "wikirole.jsonl"


def test_scoring_fields_are_read_at_the_top_level_or_under_meta():
    top, nested = read_wikirole(FILE)
    assert top.label == "Mira Castellan" and top.rejection_labels == [0, 1]
    assert top.role_consist_cands[0] == "Mira Castellan" and top.evidence[0].startswith("- Her older brother")
    assert nested.label == "Pierre Daniel" and nested.rejection_labels == [0]
    assert nested.role_consist_cands == ["Pierre Daniel", "Mira Castellan", "Yann Castellan", "Corentin Castellan"]
    assert nested.evidence == ["- Mira Castellan kept the Sein light from 1798.\n- Pierre Daniel doubted her."]
    assert "rejection_labels" not in nested.meta  # lifted, not duplicated
    assert nested.character().system_prompt == nested.system


def test_writing_keeps_every_field_and_reads_back_the_same(tmp_path):
    items = read_wikirole(FILE)
    out = write_wikirole(tmp_path / "copy.jsonl", items)
    assert read_wikirole(out) == items
    first = json.loads(out.read_text().splitlines()[0])
    assert first["type"] == "role_play" and first["source"] == "rolecraft-tests" and first["meta"]["aliases"] == ["Mira"]
    assert WikiRoleItem.model_validate({"system": "s", "prompts": ["p"], "rejection labels": [1],
                                        "meta": {"label": "X"}}).rejection_labels == [1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"system": "s", "prompts": ["a", "b"], "rejection_labels": [1], "meta": {"label": "X"}}', "rejection_labels has 1"),
        ('{"system": "s", "prompts": ["a"], "meta": {}}', "label"),
        ('{"system": "s", "prompts": []}', "prompts"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_items_name_the_line_and_the_problem(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"system": "s", "prompts": ["a"], "meta": {"label": "X"}}\n' + line + "\n")
    with pytest.raises(RolecraftError, match=rf"bad.jsonl:2 .*{message}"):
        read_wikirole(path)


def test_a_run_judges_every_turn_and_writes_the_report(tiny_model_dir, tmp_path):
    items = read_wikirole(FILE)
    ws = Workspace(tmp_path / "ws")
    pool, cost = ModelPool(ws.cache_path), Cost()
    specs = [AgentSpec.parse(f"tiny=hf:{tiny_model_dir}")]
    params = SamplingParams(max_tokens=12, temperature=0.7)
    transcripts, judgements = run_sync(
        run_wikirole(items, specs, pool, f"hf:{tiny_model_dir}", params, judge_tokens=48, cost=cost))
    assert [len(t.turns) for t in transcripts] == [4, 2]
    # Per turn: knowledge, consistency and rejection (both items have candidates and labels): 3 turns x 3.
    assert len(judgements) == 9
    assert {(j.item, j.rubric) for j in judgements} >= {("wikirole-0000#turn1", "ditto-rejection")}
    assert [j.label for j in judgements if j.rubric == "ditto-rejection"] == [0, 1, 0]
    results = finish(ws, "eval/wikirole", "WikiRoleEval", transcripts, judgements, cost, "tiny", 1)
    dims = {c.dimension: c for c in results.cells if (c.agent, c.kind) == ("tiny", "wikirole")}
    assert set(dims) == {"ditto-knowledge", "ditto-consistency", "ditto-rejection"}
    assert dims["ditto-knowledge"].scale == (1.0, 10.0)
    assert "WikiRoleEval" in (ws.path("eval/wikirole") / "report.md").read_text()


def test_a_served_endpoint_gets_the_role_configuration_as_its_system_message(tmp_path):
    items = read_wikirole(FILE)[:1]
    with StubServer() as stub:
        pool = ModelPool(Workspace(tmp_path / "ws").cache_path)
        spec = AgentSpec.parse(f"ditto=openai:ditto@{stub.url},served")
        transcripts, judgements = run_sync(
            run_wikirole(items, [spec], pool, f"openai:judge@{stub.url}", SamplingParams(max_tokens=8)))
        second = [s.body for s in stub.state.log if s.body["model"] == "ditto"][1]
    assert second["messages"][0] == {"role": "system", "content": items[0].system}
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert transcripts[0].replies()[0].startswith("echo:")
    # The stub's judge always answers `refused: true`: right for the out-of-knowledge prompt only.
    assert [j.score for j in judgements if j.rubric == "ditto-rejection"] == [0.0, 1.0]


def test_cli_runs_wikiroleeval_against_an_endpoint(tmp_path):
    from typer.testing import CliRunner

    from rolecraft.cli import app

    with StubServer() as stub:
        result = CliRunner().invoke(app, [
            "eval", "wikirole", str(FILE), "--agent", f"ditto=openai:ditto@{stub.url},served",
            "--judge", f"openai:judge@{stub.url}", "--limit", "1", "--out", str(tmp_path / "out"),
        ])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "eval" / "wikirole" / "results.json").read_text())
    assert results["transcripts"] == 1 and results["judgements"] == 6  # 2 turns x 3 rubrics
    assert "WikiRoleEval" in result.output and "Cost of this evaluation round" in result.output
