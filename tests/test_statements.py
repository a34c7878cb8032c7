"""Statements, queries and discriminator data from recorded teacher outputs; the APC reference files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from rolecraft.character import LoreEntry
from rolecraft.errors import RolecraftError
from rolecraft.formats.apc import (
    NLILabelRecord,
    NLIRecord,
    PreferenceRecord,
    RelevanceRecord,
    StatementQueries,
    StatementRecord,
    load_reference,
    reference_files,
)
from rolecraft.llm.base import ChatModel, Completion, SamplingParams, as_messages
from rolecraft.pipeline import Models, run
from rolecraft.profile import parse_profile
from rolecraft.synth.nli import NLILabelsStep, NLIResponsesStep
from rolecraft.synth.probes import ProbesStep
from rolecraft.synth.queries import QueriesStep, QuerySettings
from rolecraft.synth.relevance import FaithfulnessDataSettings, RelevanceStep
from rolecraft.synth.statements import StatementSettings, StatementsStep, clean_statement, name_forms
from rolecraft.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "apc"
ALICE_ROWS = {
    "statements": (StatementRecord, 8),
    "statement_queries": (StatementQueries, 8),
    "relevance": (RelevanceRecord, 64),
    "nli": (NLIRecord, 23),
    "nli_labels": (NLILabelRecord, 138),
    "preference": (PreferenceRecord, 14),
}


class RecordedTeacher(ChatModel):
    """Replays recorded teacher outputs: the first rule whose `match` strings all occur in the last
    user message answers. `fail_after` makes the n+1-th call raise, like a run killed midway."""

    provider = "recorded"
    batch_size = 1

    def __init__(self, path: Path = FIXTURES / "teacher_outputs.json", fail_after: int | None = None):
        super().__init__(path.name)
        self.rules = json.loads(path.read_text(encoding="utf-8"))["rules"]
        self.fail_after = fail_after
        self.calls = 0

    async def generate(self, conversations: Sequence, params: SamplingParams, schema=None) -> list[Completion]:
        out = []
        for conversation in conversations:
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise RuntimeError("teacher went away")
            self.calls += 1
            last = [m for m in as_messages(conversation) if m.role == "user"][-1].content
            rule = next((r for r in self.rules if all(s in last for s in r["match"])), None)
            assert rule is not None, f"no recorded output for: {last[:200]}"
            out.append(Completion(text=rule["output"], finish_reason=rule.get("finish_reason", "stop")))
        return out


@pytest.fixture()
def mira_workspace(tmp_path) -> Workspace:
    path = FIXTURES / "mira.txt"
    character = parse_profile(path.read_text(encoding="utf-8"), path)
    character.lore.append(LoreEntry(keys=["violin"], content="Mira plays the violin in the evenings, mostly old sea shanties."))
    return Workspace.for_character(character, tmp_path / "mira")


def steps():
    """APC's teacher-written data (the paper's protocol): statements and queries from the teacher."""
    data = FaithfulnessDataSettings(cross_relevance=2, cross_nli=1)
    return [StatementsStep(StatementSettings(source="teacher", max_statements=6)), ProbesStep(),
            QueriesStep(QuerySettings(per_statement=2, patterns=False)),
            RelevanceStep(data), NLIResponsesStep(data), NLILabelsStep(data)]


def run_all(ws: Workspace, teacher: ChatModel):
    """(step runs, rows of each step): statements, queries, relevance, written NLI responses, NLI labels."""
    runs = run(steps(), ws, Models(teacher=teacher))
    return runs, [ws.read(s.name, s.record) for s in steps() if s.name != "probes"]


def test_statements_name_the_character_and_rejections_are_counted(mira_workspace):
    ws = mira_workspace
    _, (statements, queries, relevance, written, nli) = run_all(ws, RecordedTeacher())
    texts = [s.statement for s in statements]
    assert texts == [
        "Mira Vance is a 41-year-old lighthouse keeper on Gull Island.",
        "Mira has kept the Gull Island light for twelve years.",  # "She ..." repaired
        "Mira logs every ship that passes Gull Island.",
        "Mira grew up in Port Ellery with her brother Tomas.",
        "Mira lives alone with a grey cat named Pilot.",  # full stop added
    ]
    assert all(s.passage in ws.character().knowledge() for s in statements)
    assert ws.character().statements == texts  # how the agent and retrieval see them
    info = ws.entry("statements")
    assert info["rejections"] == {"duplicate": 1, "no_name": 1, "passage_truncated": 1}
    assert info["rows"] == 5 and info["models"]["teacher"] == "recorded:teacher_outputs.json"

    by_statement = {q.statement: q.queries for q in queries}
    assert "Mira logs every ship that passes Gull Island." not in by_statement  # refused: invalid JSON
    assert by_statement["Mira grew up in Port Ellery with her brother Tomas."] == [
        "Mira, where did you grow up?", "Do you have any siblings, Mira?"]  # cut to the count asked for
    # The trailing comma is forgiven; the second query shares no word with its statement, and a check that
    # keeps a small teacher's off-topic questions out also drops this fair one.
    assert by_statement["Mira lives alone with a grey cat named Pilot."] == ["Do you have any pets, Mira?"]
    assert ws.entry("statement_queries")["rejections"] == {"fewer_queries_than_asked": 2, "invalid_json": 1, "too_short": 1,
                                                           "unrelated": 2}  # and "Is the ferry busy?"

    own = [r for r in relevance if r.query in by_statement[r.statement]]
    cross = [r for r in relevance if r.query not in by_statement[r.statement]]
    assert len(own) == 6 and all(r.relevant == "yes" for r in own)
    assert {r.relevant for r in cross if r.statement.startswith("Mira lives alone")} == {"yes"}  # bare "Yes."
    assert not [r for r in cross if r.statement.startswith("Mira has kept")]  # "Perhaps" is no label
    assert ws.entry("relevance")["rejections"] == {"relevance_invalid_json": 2}

    assert len(written) == 4  # identical responses and a non-JSON answer rejected
    assert ws.entry("nli")["rejections"] == {"identical_responses": 1, "responses_invalid_json": 1}
    assert {r.label for r in nli} == {"entailed", "neutral", "contradicted"}
    assert ws.entry("nli_labels")["info"]["relabel_agreement"] == pytest.approx(10 / 11, abs=1e-3)  # Mira-lives-alone contradictions relabelled neutral
    assert ws.entry("nli_labels")["rejections"]["nli_invalid_json"] >= 1  # "hmm"


def test_a_killed_run_resumes_without_repeating_calls(mira_workspace):
    ws = mira_workspace
    with pytest.raises(RuntimeError):
        run_all(ws, RecordedTeacher(fail_after=9))
    resumed = RecordedTeacher()
    runs, outputs = run_all(ws, resumed)
    full = RecordedTeacher()
    _, expected = run_all(Workspace.for_character(ws.stored_character(), ws.root.parent / "fresh"), full)
    # Steps finished before the kill are skipped; the step it was in gets its finished calls from the cache.
    assert resumed.calls == full.calls - 9 and any(r.cached for r in runs) and sum(r.cached_calls for r in runs) > 0
    assert [[r.model_dump() for r in rows] for rows in outputs] == [[r.model_dump() for r in rows] for rows in expected]
    again = RecordedTeacher()
    runs, _ = run_all(ws, again)
    assert again.calls == 0 and all(r.cached for r in runs)


def test_statement_cleaning():
    character = parse_profile((FIXTURES / "mira.txt").read_text(encoding="utf-8"))
    names = name_forms(character)
    assert names == ["Mira Vance", "Mira", "Vance"]
    assert clean_statement("Her cat is named Pilot", character, names) == ("Mira's cat is named Pilot.", None)
    assert clean_statement("  - Vance keeps the light.  ", character, names) == ("Vance keeps the light.", None)
    assert clean_statement("They keep the light.", character, names) == (None, "no_name")
    assert clean_statement("Miranda keeps the light.", character, names) == (None, "no_name")
    assert clean_statement("Mira " + "word " * 70, character, names) == (None, "too_long")


def test_alice_reference_files_load_and_round_trip(shared_data, tmp_path):
    files = reference_files(shared_data / "apc" / "alice-statements", "Alice")
    assert set(files) == set(ALICE_ROWS)
    for stage, (model, count) in ALICE_ROWS.items():
        rows = load_reference(files[stage], model)
        assert len(rows) == count
        written = tmp_path / f"{stage}.json"  # rows written back in the reference's shape
        written.write_text(json.dumps([r.model_dump(mode="json", exclude_none=True) for r in rows]), encoding="utf-8")
        assert load_reference(written, model) == rows
        assert json.loads(written.read_text())[0].keys() == json.loads(files[stage].read_text())[0].keys()
    labels = [r.label for r in load_reference(files["nli_labels"], NLILabelRecord)]
    assert (labels.count("entailed"), labels.count("neutral"), labels.count("contradicted")) == (47, 62, 29)
    dpo = load_reference(files["preference"], PreferenceRecord)[0].to_trl()
    assert dpo["prompt"].startswith("<start_of_turn>") and isinstance(dpo["chosen"], str)


def test_workspace_rows_read_as_reference_rows(mira_workspace):
    run_all(mira_workspace, RecordedTeacher())
    rows = load_reference(mira_workspace.path("relevance.jsonl"), RelevanceRecord)
    assert rows == mira_workspace.read("relevance", RelevanceRecord)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "not valid JSON"), ('{"a": 1}', "not a list"), ('[{"statement": "x"}]', "does not look like")],
)
def test_bad_reference_files_are_user_errors(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(RolecraftError, match=problem):
        load_reference(path, RelevanceRecord)


def test_nli_labels_are_normalised():
    row = dict(character="A", statement="s", query="q", response="r")
    assert NLILabelRecord(**row, label="Contradict.").label == "contradicted"
    assert NLILabelRecord(**row, label=" Entailment").label == "entailed"
    with pytest.raises(ValueError):
        NLILabelRecord(**row, label="maybe")


@pytest.mark.slow
def test_the_embedded_teacher_writes_parseable_statements(tmp_path):
    character = parse_profile((FIXTURES / "mira.txt").read_text(encoding="utf-8")).model_copy(
        update={"paragraphs": ["Mira Vance is a 41-year-old lighthouse keeper on Gull Island."]}
    )
    ws = Workspace.for_character(character, tmp_path / "embedded")
    run([StatementsStep(StatementSettings(max_statements=3, max_tokens=96))], ws, Models(teacher="embedded"))
    found, info = ws.read("statements", StatementRecord), ws.entry("statements")
    assert found and info["rows"] == len(found)
    assert "passage_invalid_json" not in info["rejections"] and "passage_schema_mismatch" not in info["rejections"]
    assert all("Mira" in s.statement or "Vance" in s.statement for s in found)


def test_cli_runs_every_step_against_an_openai_compatible_teacher(tmp_path):
    from typer.testing import CliRunner

    from rolecraft.cli import app
    from tests.openai_stub_server import StubServer

    ws = tmp_path / "ws"
    with StubServer() as server:
        args = ["statements", str(FIXTURES / "mira.txt"), "--workspace", str(ws), "--teacher", f"openai:stub@{server.url}", "--tiny"]
        first = CliRunner().invoke(app, args)
        asked = len(server.state.log)
        again = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "statements" in first.stdout and "nli_labels" in first.stdout
    # The stub answers each schema with a valid instance built from the prompt's first words.
    found = Workspace(ws).character().statements
    assert found and all("Mira" in s for s in found)
    assert Workspace(ws).has("nli_labels") and asked > 0
    assert again.exit_code == 0 and "0 new" in again.stdout and len(server.state.log) == asked
