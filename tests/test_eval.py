"""Interviews on real tiny models and a real OpenAI-compatible server; the report is its judgements' aggregate."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

import pytest
from typer.testing import CliRunner

from rolecraft.cards import load_character
from rolecraft.errors import RolecraftError
from rolecraft.eval.interview import clean_question, interview_multi, interview_single, name_pattern, scene
from rolecraft.eval.questions import BANK_STAGE, default_bank, load_bank, pick, split_probes
from rolecraft.eval.records import Judgement, Transcript
from rolecraft.eval.results import EvalResults
from rolecraft.eval.run import EvalConfig, evaluate
from rolecraft.eval.targets import AgentSpec, build_target
from rolecraft.llm import Message, SamplingParams, run_sync
from rolecraft.llm.base import ChatModel, Completion, as_messages
from rolecraft.llm.pool import ModelPool
from rolecraft.workspace import Workspace, read_jsonl
from tests.openai_stub_server import StubServer

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
PROFILE = FIXTURES / "wiki_Mira.txt"
BANK = FIXTURES / "questions.json"
MULTI = FIXTURES / "questions_multi.json"
SHORT = SamplingParams(max_tokens=12, temperature=0.7)


@pytest.fixture(scope="module")
def mira():
    return load_character(PROFILE)


@pytest.fixture
def stub():
    with StubServer() as server:
        yield server


def test_bank_loading_and_round_robin_selection(tmp_path):
    bank = load_bank(BANK)
    plain, probes = split_probes(bank)
    assert (len(plain), len(probes)) == (4, 2) and all(q.topic_id == "topic-4" for q in probes)
    assert [q.topic_id for q in pick(plain, 3)] == ["topic-1", "topic-2", "topic-3"]
    assert pick(plain, None)[-1].question == "What happened in the storm of 1799?"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"topic_id": "topic-1"}]')
    with pytest.raises(RolecraftError, match="not a question bank"):
        load_bank(bad)


def test_concurrent_replies_to_one_model_form_one_batch_and_duplicates_are_asked_once(tiny_model_dir, tmp_path):
    model = ModelPool(tmp_path / "cache.sqlite").get(f"hf:{tiny_model_dir}")
    batches: list[int] = []
    progress = batches.append  # one display shared by the three callers
    convs = [[Message(role="user", content=text)] for text in ("one", "two", "one")]

    async def ask_separately():
        return await asyncio.gather(*(model.generate([c], SHORT, progress=progress) for c in convs))

    [a], [b], [again] = run_sync(ask_separately())
    assert batches == [2, 1]  # one batch holding the two distinct requests, then the repeated one
    assert again.text == a.text and again.cached and not a.cached
    assert model.inner.usage.calls == 2


def test_interviewer_lines_never_name_the_character(mira):
    names = name_pattern(mira)
    raw = 'Man (speaking): "Mr. Castellan, what did Mira do in the storm?"\n\nMira (speaking): I rowed out.'
    question, notes = clean_question(raw, names)
    assert question == "you, what did you do in the storm?" and len(notes) == 1
    assert clean_question("Interviewer: And then?", names) == ("And then?", [])


def test_single_and_multi_turn_interviews_on_tiny_models(tiny_model_dir, tmp_path, mira):
    pool = ModelPool(tmp_path / "cache.sqlite")
    specs = [AgentSpec.parse(f"prompt=hf:{tiny_model_dir}"), AgentSpec.parse(f"long=hf:{tiny_model_dir},profile")]
    targets = [build_target(s, mira, pool, scene=scene(mira)) for s in specs]
    system = targets[1].agent.messages(targets[1].preamble + [Message(role="user", content="Hi")])[0].content
    assert "Coffee Shop - Afternoon" in system and "Pierre Daniel" in system  # scene + whole profile

    questions = load_bank(BANK)[:3]
    single = run_sync(interview_single(mira, targets, questions, SHORT))
    assert [t.agent for t in single] == ["prompt"] * 3 + ["long"] * 3
    assert all([m.role for m in t.turns] == ["user", "assistant"] for t in single)
    assert single[0].turns[0].content == questions[0].question

    goals = load_bank(MULTI)[:1]
    multi = run_sync(interview_multi(mira, targets, goals, pool.get(f"hf:{tiny_model_dir}"), 2, SHORT, SHORT))
    assert len(multi) == 2 and multi[0].question == goals[0]
    for t in multi:
        assert [m.role for m in t.turns] == ["user", "assistant"] * 2
        asked = [m.content for m in t.turns if m.role == "user"]
        assert all(asked) and not any(name_pattern(mira).search(q) for q in asked)
    # Round one asks both agents the same question: the interviewer saw the same (empty) history.
    assert multi[0].turns[0].content == multi[1].turns[0].content


def stored_aggregate(judgements: list[Judgement]) -> dict:
    """The report's main table, recomputed independently from judgements.jsonl."""
    cells: dict = defaultdict(list)
    for j in judgements:
        if not j.probe and j.score is not None:
            cells[(j.agent, j.kind, j.dimension)].append(j.score)
    return {key: (mean(v), len(v)) for key, v in cells.items()}


def test_report_numbers_equal_the_aggregation_of_the_stored_judgements(tiny_model_dir, tmp_path, mira):
    model = f"hf:{tiny_model_dir}"
    config = EvalConfig(
        agents=[AgentSpec.parse(f"prompt={model}"), AgentSpec.parse(f"long={model},profile")],
        judge=model, questions=BANK, multi_questions=MULTI, single=2, probes=1, multi=1, rounds=2,
        judge_tokens=48, reply_tokens=12,
    )
    ws = Workspace.for_character(mira, tmp_path / "ws")
    results = run_sync(evaluate(mira, ws, config))
    folder = ws.path("eval/interview")
    judgements = read_jsonl(folder / "judgements.jsonl", Judgement)
    stored = EvalResults.model_validate_json((folder / "results.json").read_text())
    assert stored == results

    expected = stored_aggregate(judgements)
    assert expected, "the tiny judge produced no readable score at all"
    got = {(c.agent, c.kind, c.dimension): (c.mean, c.n) for c in stored.cells if c.n}
    assert got.keys() == expected.keys()
    for key, (value, n) in expected.items():
        assert got[key][0] == pytest.approx(value) and got[key][1] == n
    for agent in ("prompt", "long"):
        pooled = [j.score for j in judgements if j.agent == agent and not j.probe and j.dimension == "values"
                  and j.score is not None]
        cell = stored.cell(agent, None, "values")
        assert (cell.mean if cell else None) == (pytest.approx(mean(pooled)) if pooled else None)
    report = (folder / "report.md").read_text()
    for (agent, kind, dim), (value, n) in expected.items():
        assert f"{value:.2f} (n={n})" in report

    probes = [j for j in judgements if j.probe and j.rubric == "ditto-rejection" and j.verdict is not None]
    for agent in ("prompt", "long"):
        mine = [j.verdict for j in probes if j.agent == agent]
        assert stored.probe(agent).pleaded_ignorance == (pytest.approx(mean(mine)) if mine else None)
        failed = sum(j.parse_failures for j in judgements if j.agent == agent and j.rubric == "character-llm")
        assert next(f.failed for f in stored.parse_failures if (f.agent, f.rubric) == (agent, "character-llm")) == failed
    assert {j.dimension for j in judgements if j.kind == "multi"} >= {"stability"}
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in (folder / "report.html").read_text()

    # Resumed: every call comes from the cache and the numbers do not move.
    again = run_sync(evaluate(mira, ws, config))
    assert all(row["new_calls"] == 0 for row in again.cost.values())
    assert again.cells == results.cells and again.cost["total"]["requests"] == results.cost["total"]["requests"]


def test_openai_endpoints_as_agents_interviewer_and_judge(stub, tmp_path, mira):
    url = stub.url
    config = EvalConfig(
        agents=[AgentSpec.parse(f"served=openai:mira@{url},served"), AgentSpec.parse(f"gpt=openai:third-party@{url}")],
        judge=f"openai:judge@{url}", interviewer=f"openai:interviewer@{url}", questions=BANK, single=1, probes=1,
        multi=1, rounds=2,
    )
    results = run_sync(evaluate(mira, Workspace.for_character(mira, tmp_path / "ws"), config))
    bodies = [s.body for s in stub.state.log]
    served = [b for b in bodies if b["model"] == "mira"]
    third = [b for b in bodies if b["model"] == "third-party"]
    # The served character gets only the scene and the chat; the third-party model our persona prompt.
    assert served[0]["messages"][0] == {"role": "system", "content": scene(mira)}
    assert served[0]["messages"][1]["role"] == "user" and len(served[0]["messages"]) == 2
    assert third[0]["messages"][0]["content"].startswith("You are Mira Castellan")
    assert scene(mira) in third[0]["messages"][0]["content"]
    judged = [b for b in bodies if b["model"] == "judge"]
    assert judged and all(b["response_format"]["type"] == "json_schema" for b in judged)
    # The stub answers every schema with its first allowed value: score 1, refused = true.
    assert results.cell("served", "single", "memorization").mean == 1.0
    assert results.probe("gpt").pleaded_ignorance == 1.0
    assert results.cost["judge"]["requests"] == len(judged)
    # Round one is the same request for both agents and is sent once; round two differs per agent.
    assert len([b for b in bodies if b["model"] == "interviewer"]) == 3
    assert (results.cost["interviewer"]["requests"], results.cost["interviewer"]["new_calls"]) == (4, 3)


def test_default_bank_written_by_a_teacher_and_reused(stub, tmp_path, mira):
    ws = Workspace.for_character(mira, tmp_path / "ws")
    teacher = ModelPool(ws.cache_path).get(f"openai:teacher@{stub.url}")
    bank, _ = run_sync(default_bank(mira, ws, teacher, per_topic=2, probes=2))
    plain, probes = split_probes(bank)
    assert {q.topic_id for q in plain} == {"topic-1", "topic-2", "topic-3"} and probes
    asked = [s.body["messages"][-1]["content"] for s in stub.state.log]
    assert any("era" in a and "later era or another world" in a for a in asked)
    assert ws.has(BANK_STAGE)
    calls = len(stub.state.log)
    assert run_sync(default_bank(mira, ws, teacher))[0] == bank and len(stub.state.log) == calls


@pytest.mark.slow
def test_acceptance_rolecraft_eval_compares_two_embedded_agents(tmp_path, artifacts):
    """Offline on the embedded model: prompt-only vs long-context agent, single- and multi-turn, report + chart."""
    from rolecraft.cli import app

    out = tmp_path / "ws"
    args = [
        "eval", str(PROFILE), "--workspace", str(out), "--agent", "prompt=embedded", "--agent", "long=embedded,profile",
        "--questions", str(BANK), "--multi-questions", str(MULTI), "--single", "1", "--probes", "1",
        "--multi", "1", "--rounds", "2", "--judge", "embedded", "--reply-tokens", "32", "--judge-tokens", "48",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = out / "eval" / "interview"
    assert "Cost of this evaluation round" in result.output and "judge" in result.output
    stored = EvalResults.model_validate_json((folder / "results.json").read_text())
    judgements = read_jsonl(folder / "judgements.jsonl", Judgement)
    for (agent, kind, dim), (value, n) in stored_aggregate(judgements).items():
        assert stored.cell(agent, kind, dim).mean == pytest.approx(value)
    assert {c.agent for c in stored.cells} == {"prompt", "long"}
    assert {c.kind for c in stored.cells if c.agent == "prompt"} == {"single", "multi"}
    assert stored.probe("long").n == 1 and stored.probe("long").answers
    for name in ("chart.png", "radar-prompt.png", "radar-long.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
        (artifacts / f"eval-{name}").write_bytes((folder / name).read_bytes())


def test_apc_and_delta_apc_join_the_report(stub, tmp_path, tmp_path_factory, mira):
    import shutil

    from rolecraft.faithfulness.apc import workspace_scorer
    from tests.apc_tiny import MIRA_STATEMENTS, tiny_discriminators

    character = mira.model_copy(update={"statements": MIRA_STATEMENTS})
    ws = Workspace.for_character(character, tmp_path / "ws")
    config = EvalConfig(agents=[AgentSpec.parse(f"gpt=openai:agent@{stub.url}")], judge=f"openai:judge@{stub.url}",
                        questions=BANK, single=1, probes=1, multi=1, rounds=2, apc=True)
    with pytest.raises(RolecraftError, match="trained discriminators"):
        run_sync(evaluate(character, ws, config))
    for kind, folder in zip(("relevance", "nli"), tiny_discriminators(tmp_path_factory)):
        shutil.copytree(folder, ws.path(f"discriminators/{kind}"))
    results = run_sync(evaluate(character, ws, config))

    judgements = read_jsonl(ws.path("eval/interview/judgements.jsonl"), Judgement)
    apc = {(j.item, j.dimension): j for j in judgements if j.rubric == "apc"}
    transcripts = {t.id: t for t in read_jsonl(ws.path("eval/interview/transcripts.jsonl"), Transcript)}
    scorer = workspace_scorer(ws)
    for item, t in transcripts.items():
        direct = scorer.score_conversation(t.turns)
        assert len(direct) == len(t.replies())
        assert apc[(item, "apc")].samples == pytest.approx([r.total for r in direct], abs=1e-5)
        assert apc[(item, "delta_apc")].score == pytest.approx(mean(r.delta for r in direct), abs=1e-5)
        assert apc[(item, "apc")].scale == (0.0, 4.0)
    assert {"apc", "delta_apc"} <= {c.dimension for c in results.cells if (c.agent, c.kind) == ("gpt", "single")}


def test_probe_verdict_equals_the_aggregation_of_the_stored_probe_results(tiny_model_dir, tmp_path):
    """The held-out probes (built from the profile, no teacher) answered by two agents on the tiny model:
    every metric and the verdict in results.json are recomputed here from the stored probes.jsonl."""
    from rolecraft.eval.probing import ProbeResult
    from rolecraft.eval.stats import bootstrap, paired
    from rolecraft.pipeline import Models, run
    from rolecraft.synth.probes import ProbesStep
    from rolecraft.synth.statements import StatementSettings, StatementsStep

    character = load_character(Path(__file__).parents[1] / "examples" / "mira-voss.txt")
    ws = Workspace.for_character(character, tmp_path / "mira")
    run([StatementsStep(StatementSettings()), ProbesStep()], ws, Models())
    model = f"hf:{tiny_model_dir}"
    agents = [AgentSpec(name="prompt-only", model=model), AgentSpec(name="long-context", model=model, retrieval="profile")]
    config = EvalConfig(agents=agents, judge=model, run="probes", interview=False, check_judge=False,
                        served="long-context", reply_tokens=12)
    results = run_sync(evaluate(character, ws, config))

    stored = read_jsonl(ws.path("eval/probes/probes.jsonl"), ProbeResult)
    assert EvalResults.model_validate_json(ws.path("eval/probes/results.json").read_text()) == results
    facts = [r for r in stored if r.kind == "fact"]
    boundary = [r for r in stored if r.kind == "boundary"]
    assert facts and boundary and results.judgements == 0 and results.judge_check is None
    for agent in ("prompt-only", "long-context"):
        recalled = [float(r.recalled) for r in facts if r.agent == agent]
        assert results.metric(agent, "fact_recall") == bootstrap(recalled)
        leaked = [float(r.leaked) for r in boundary if r.agent == agent]
        assert results.metric(agent, "boundary_leak") == bootstrap(leaked)
    by = {(r.agent, r.probe): r for r in facts}
    ids = sorted({r.probe for r in facts})
    recall = next(d for d in results.verdict.differences if d.metric == "fact_recall")
    assert recall.estimate == paired([float(by["long-context", p].recalled) for p in ids],
                                     [float(by["prompt-only", p].recalled) for p in ids])
    assert results.verdict.text().startswith("long-context vs prompt-only: fact recall ")
    report = ws.path("eval/probes/report.md").read_text()
    assert report.splitlines()[2] == f"**Verdict.** {results.verdict.text()}"


class _Judge(ChatModel):
    """A judge that scores 7 when the judged answer is one of `good`, else `otherwise` (1 when it can
    tell good from bad, the same score as good when it cannot)."""

    provider = "scripted"

    def __init__(self, good: set[str], otherwise: int):
        super().__init__(f"judge-{otherwise}")
        self.good, self.otherwise, self.calls = good, otherwise, 0

    async def generate(self, conversations, params, schema=None):
        self.calls += len(conversations)
        out = []
        for conversation in conversations:
            prompt = " ".join(m.content for m in as_messages(conversation))
            score = 7 if any(g in prompt for g in self.good) else self.otherwise
            out.append(Completion(text=json.dumps({"reasoning": "as scripted", "score": score}), finish_reason="stop"))
        return out


def test_the_judge_check_passes_a_judge_that_tells_good_from_bad_and_stops_early_for_one_that_cannot(tmp_path):
    from rolecraft.eval.calibration import check_judge, pairs
    from rolecraft.pipeline import Models, run
    from rolecraft.synth.probes import ProbesStep
    from rolecraft.synth.statements import StatementSettings, StatementsStep

    character = load_character(Path(__file__).parents[1] / "examples" / "mira-voss.txt")
    ws = Workspace.for_character(character, tmp_path / "mira")
    run([StatementsStep(StatementSettings()), ProbesStep()], ws, Models())
    facts, probes = ws.read(StatementsStep.name, StatementsStep.record), ws.read(ProbesStep.name, ProbesStep.record)
    known = pairs(character, facts, probes)
    assert len(known) == 8 and {d for d, *_ in known} == {"memorization", "hallucination"}
    good = {g for _, _, g, _ in known}
    pool = ModelPool(ws.cache_path)

    fair = _Judge(good, otherwise=1)
    check = run_sync(check_judge(pool.get(fair), character, facts, probes, 96))
    assert check.passed and (check.pairs, check.ordered, check.good, check.bad) == (8, 8, 7.0, 1.0) and fair.calls == 16

    blind = _Judge(good, otherwise=7)  # scores everything 7: it cannot tell them apart
    check = run_sync(check_judge(pool.get(blind), character, facts, probes, 96))
    assert not check.passed and (check.pairs, check.ordered) == (4, 0) and blind.calls == 8  # half: it could not pass
    assert "could not tell them apart" in check.text()


def test_the_verdict_must_name_two_of_the_agents(tmp_path):
    from rolecraft.cli import app

    out = tmp_path / "ws"
    result = CliRunner().invoke(app, ["eval", str(PROFILE), "--workspace", str(out), "--agent", "a=embedded",
                                      "--agent", "b=embedded,profile", "--verdict", "c:a"])
    assert result.exit_code != 0 and "--verdict c:a does not name two different agents of a, b" in str(result.exception)
    assert not out.exists()
