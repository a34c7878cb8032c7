"""The `reference` protocols: Character-LLM's scorer and Ditto's judge exactly as the papers run them, with
their prompt texts read from a copy of the papers' repositories; Ditto's aggregation (scoring.py).

Prompt files come from ../shared/data (the paper's own); the scripts that hold the rest of the texts are
stood in for by small files written here in the same shape, so the tests run without the papers'
repositories. With ROLECRAFT_PAPER_REPOS pointing at copies of them, the papers' own code is run too and
must agree to the byte.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolecraft.cards import load_character
from rolecraft.errors import RolecraftError
from rolecraft.eval.charllm_reference import ReferenceCharacterLLM, read_reference_score, reference_jobs
from rolecraft.eval.ditto_reference import ditto_rubrics
from rolecraft.eval.judges import Case, judgement, run_judges
from rolecraft.eval.transcripts import read_transcripts
from rolecraft.eval.wikiroleeval import ditto_table, recorded, turns_of_ditto, wikirole_jobs
from rolecraft.formats.wikirole import read_ditto_scores, read_wikirole
from rolecraft.llm import Message, load_model, run_sync
from rolecraft.llm.cache import CachedModel, RequestCache
from tests.openai_stub_server import StubServer

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
SCORER = """
def get_prompt_item(name, profile, ds, meta_prompt, model_prefix, model_result_path):
    loc_time = 'Harbour Inn - Evening'
    status = f'{name} shares a table with a traveller from far away.'
    return []


def api_worker(dataset):
    decoder_for_openai('judge', dataset, max_tokens=512, temperature=0.0, n=1, sys_prompt='Judge with care.')
"""


@pytest.fixture
def charllm_copy(shared_data, tmp_path) -> Path:
    """A copy of Character-LLM's repository: the published prompt files, and stand-ins for its scorers."""
    root = tmp_path / "trainable-agents"
    shutil.copytree(shared_data / "character-llm" / "prompts", root / "data" / "seed_data" / "prompts")
    for script in ("run_api_score_single.py", "run_api_score_turns.py"):
        (root / script).write_text(SCORER)
    return root


def beethoven(shared_data):
    return load_character(shared_data / "character-llm" / "profiles" / "wiki_Beethoven.txt")


def test_reference_judge_input_for_a_multi_paragraph_reply(shared_data, charllm_copy):
    rubric = ReferenceCharacterLLM.load(charllm_copy)
    character = beethoven(shared_data)
    reply = "Ah, Bonn! *smiles* My father taught me *sternly* at the keyboard.\n\nLater, Neefe took over.\n\nThen Vienna."
    case = Case(agent="x", item="single-000", kind="single", name=character.name, profile=character.knowledge()[0],
                dialogue=[Message(role="user", content="Where did you grow up?"), Message(role="assistant", content=reply)])
    prompt = rubric.prompt(case, "memorization")
    assert "[Interactions]\nMan: Where did you grow up?\nBeethoven: Ah, Bonn!  My father taught me  at the keyboard.\n***" in prompt
    assert "Neefe" not in prompt and "Vienna." not in prompt.split("[Interactions]")[1]
    assert f"[Profile]\n{character.knowledge()[0]}\n\n[Background]" in prompt  # the first paragraph only
    assert "Location: Harbour Inn - Evening\nStatus: Beethoven shares a table with a traveller from far away." in prompt
    memory = (shared_data / "character-llm" / "prompts" / "prompt_score_llm_memory.txt").read_text().strip()
    assert prompt.startswith(memory.split("{agent_name}")[0]) and prompt.endswith(memory[-200:])
    assert [m.role for m in rubric.messages(case, "memorization")] == ["system", "user"]
    assert rubric.messages(case, "memorization")[0].content == "Judge with care."
    assert rubric.dimensions("multi")[-1] == "stability"


@pytest.mark.parametrize(("answer", "score"), [
    ("1. Recalls Bonn.\n2. Wrong about Vienna.\n\n5\n5", 5.0),
    ("The reply deserves 6/7 overall.", 6.0),  # the last digit after a space, as the scorer reads it
    ("Score: 9", 9.0),  # out of the 1-7 scale, kept as the scorer keeps it
    ("No score given.", None),
])
def test_the_reference_reads_the_last_spaced_digit(answer, score):
    assert read_reference_score(answer) == score


def test_published_results_are_judged_as_the_scorer_judges_them(shared_data, charllm_copy):
    character = beethoven(shared_data)
    rubric = ReferenceCharacterLLM.load(charllm_copy)
    folder = shared_data / "character-llm" / "transcripts"
    single = read_transcripts(folder / "single" / "Beethoven_vicuna-7b.json", character.full_name,
                              protocol="reference", name=character.name)
    raw = json.loads((folder / "single" / "Beethoven_vicuna-7b.json").read_text())
    k = next(i for i, row in enumerate(raw) if "\n\n" in row["reply"]["content"])
    [case, *_] = [c for c, _, d in reference_jobs(single, character, rubric) if c.item == single[k].id]
    first = raw[k]["reply"]["content"].split("\n\n")[0]
    assert f"Beethoven: {first}\n***" in rubric.prompt(case, "values")
    multi = read_transcripts(folder / "multi" / "Beethoven_chatgpt.jsonl", character.full_name,
                             protocol="reference", name=character.name)
    jobs = reference_jobs(multi, character, rubric)
    assert len(jobs) == 5 * len(multi) and not any(c.probe and r.name != "character-llm" for c, r, _ in jobs)
    interactions = rubric.prompt(jobs[0][0], "stability").split("[Interactions]\n")[1].split("\n***")[0]
    assert all(re.match(r"^(Man|Beethoven): ", line) for line in interactions.split("\n") if line.strip())


def test_a_reference_judge_run_sends_the_papers_request(shared_data, charllm_copy, tmp_path):
    character = beethoven(shared_data)
    rubric = ReferenceCharacterLLM.load(charllm_copy)
    path = shared_data / "character-llm" / "transcripts" / "single" / "Beethoven_chatgpt.json"
    jobs = reference_jobs(read_transcripts(path, character.full_name, protocol="reference", name=character.name)[:1],
                          character, rubric)
    with StubServer() as stub:
        judge = CachedModel(load_model(f"openai:judge@{stub.url}"), RequestCache(tmp_path / "cache.sqlite"))
        judgements = run_sync(run_judges(judge, jobs, max_tokens=96))
        bodies = [s.body for s in stub.state.log if s.path.endswith("/chat/completions")]
    assert len(bodies) == 4 and all(b["max_tokens"] == 512 and b["temperature"] == 0 for b in bodies)
    assert all("response_format" not in b and b["messages"][0]["content"] == "Judge with care." for b in bodies)
    assert all(j.rubric == "character-llm" for j in judgements)


def test_the_papers_own_scorer_builds_the_same_prompts(shared_data, paper_repo):
    """Run the scorer's own functions (from the user's copy) on all eight published files: every judge
    prompt rolecraft builds under the reference protocol must be the scorer's, byte for byte."""
    repo = paper_repo("trainable-agents")

    def functions(path: Path, names: set[str]) -> dict:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
        namespace: dict = {"re": re}
        exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
        return namespace

    single = functions(repo / "run_api_score_single.py", {"get_reply", "get_prompt_item"})
    turns = functions(repo / "run_api_score_turns.py", {"format_interactions", "get_prompt_single_item"})
    character = beethoven(shared_data)
    rubric = ReferenceCharacterLLM.load(repo)
    profile = character.knowledge()
    prompts = shared_data / "character-llm" / "prompts"
    compared = 0
    for path in sorted((shared_data / "character-llm" / "transcripts").glob("*/Beethoven_*")):
        records = read_transcripts(path, character.full_name, protocol="reference", name=character.name)
        ours = reference_jobs(records, character, rubric)
        for dimension, aspect in (("memorization", "memory"), ("values", "values"), ("personality", "personality"),
                                  ("hallucination", "hallucination"), ("stability", "stability")):
            meta = (prompts / f"prompt_score_llm_{aspect}.txt").read_text(encoding="utf-8").strip()
            if path.suffix == ".json":
                if dimension == "stability":
                    continue
                theirs = [x["prompt"] for x in single["get_prompt_item"](
                    "Beethoven", profile, json.loads(path.read_text(encoding="utf-8")), meta, "m", "p")]
            else:
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                theirs = [turns["get_prompt_single_item"]("Beethoven", profile, row, meta, "m", "p")["prompt"] for row in rows]
            mine = [r.prompt(c, d) for c, r, d in ours if d == dimension]
            assert mine == theirs, (path.name, dimension)
            compared += len(mine)
    assert compared == 2312


# -- Ditto ---------------------------------------------------------------------------------------------

DITTO_SCRIPT = """
role_consist_prompt = {"zh": "问：{query}\\n答：{answer}\\n候选：{cands}", "en": "Q: {query}\\nA: {answer}\\nWho?{cands}"}
rejection_judgement_prompt = {"zh": "{label}。问：{query}\\n答：{answer}", "en": "{label}. Q: {query}\\nA: {answer}\\n1 or 0?"}
eval_prompt = {"en": "{label}: {summary}.\\nQ: {question}\\nA: {answer}\\nTips: {evidence}", "zh": "{label}：{summary}。{question}{answer}{evidence}"}
"""


@pytest.fixture
def ditto_copy(tmp_path) -> Path:
    (tmp_path / "Ditto" / "eval").mkdir(parents=True)
    (tmp_path / "Ditto" / "eval" / "call_openai_api_gpt4_eval.py").write_text(DITTO_SCRIPT, encoding="utf-8")
    return tmp_path / "Ditto"


def ditto_case(**fields) -> Case:
    base = dict(agent="a", item="wikirole-0000#turn0", kind="wikirole", name="Joseph Haydn", profile="A composer.",
                candidates=["Ludwig van Beethoven", "Joseph Haydn", "Antonio Salieri", "Wolfgang Amadeus Mozart"],
                dialogue=[Message(role="user", content="Who taught you?"), Message(role="assistant", content="Porpora.")])
    return Case(**{**base, **fields})


def test_dittos_scoring_rules_on_recorded_judge_answers(ditto_copy):
    rubrics = ditto_rubrics(ditto_copy)
    consistency, rejection, knowledge = (rubrics[f"ditto-{n}"] for n in ("consistency", "rejection", "knowledge"))
    assert consistency.prompt(ditto_case(), "") == (
        "Q: Who taught you?\nA: Porpora.\nWho?- Ludwig van Beethoven\n- Joseph Haydn\n- Antonio Salieri\n- Wolfgang Amadeus Mozart")
    picks = ["Clearly him. The most suitable role is [Joseph Haydn].", "The most suitable role is [Napoleon].", "Unsure."]
    j = judgement(ditto_case(), consistency, "ditto-consistency", picks)
    assert (j.samples, j.score) == ([1.0, 0.0, None], 0.5)  # a non-candidate counts 0, an unreadable answer not at all
    assert judgement(ditto_case(), consistency, "ditto-consistency", ["?", "no idea"]).score == 0.0  # nothing read: 0
    zh = ditto_case(name="李白", lang="zh")
    assert judgement(zh, consistency, "", ["分析……最符合的角色为[李白]"]).score == 1.0
    assert consistency.prompt(zh, "").startswith("问：Who taught you?")

    assert judgement(ditto_case(label=1), rejection, "", ["1", "0"]).verdict == 1.0  # a tie: the first vote
    assert judgement(ditto_case(label=1), rejection, "", ["0", "1", "1"]).score == 1.0
    failed = judgement(ditto_case(label=1), rejection, "", [" 1", "yes", "1."])  # only exactly "0" or "1" counts
    assert (failed.score, failed.parse_failures) == (None, 3)

    j = judgement(ditto_case(), knowledge, "", ["Good.\n7", "Mostly right.\nScore: 9", "Nine"])
    assert (j.samples, j.score) == ([7.0, 9.0, None], 8.0)
    assert knowledge.prompt(ditto_case(evidence="- He studied with Porpora."), "").endswith("Tips: - He studied with Porpora.")


def test_dittos_own_prompts_are_read_from_its_script(paper_repo):
    rubrics = ditto_rubrics(paper_repo("Ditto"))
    prompt = rubrics["ditto-consistency"].prompt(ditto_case(), "")
    assert "Porpora." in prompt and "- Antonio Salieri" in prompt
    assert "[角色名]" in rubrics["ditto-consistency"].prompt(ditto_case(lang="zh"), "")


def test_dittos_aggregation_per_language_and_over_all_turns():
    table = ditto_table(turns_of_ditto(read_ditto_scores(FIXTURES / "ditto_output.jsonl")))
    # en: consistency (1 + 2/3 + 0)/3; rejection 2 of 3 right; knowledge (8 + 6.33)/2, the 0 left out.
    assert table["en"] == {"consistency": 0.56, "rejection": 0.67, "knowledge": 7.17}
    assert table["zh"] == {"consistency": 1.0, "rejection": 1.0, "knowledge": 8.0}
    assert table["all"] == {"consistency": 0.73, "rejection": 0.8, "knowledge": 7.58}  # turns pooled, not languages


def test_a_results_file_is_judged_as_it_is_with_dittos_sampling(tmp_path):
    from rolecraft.cli import app

    with StubServer() as stub:
        result = CliRunner().invoke(app, ["eval", "wikirole", str(FIXTURES / "wikirole_results.jsonl"),
                                          "--judge", f"openai:judge@{stub.url}", "--out", str(tmp_path / "out")])
        bodies = [s.body for s in stub.state.log if s.path.endswith("/chat/completions")]
    assert result.exit_code == 0, result.output
    assert {b["model"] for b in bodies} == {"judge"}  # nothing regenerated: only the judge was asked
    assert {b["temperature"] for b in bodies} == {0.2} and {b["seed"] for b in bodies} == {0, 1, 2}
    assert any("[问题]" in b["messages"][0]["content"] for b in bodies)  # the Chinese item in Chinese
    folder = tmp_path / "out" / "eval" / "wikirole"
    results = json.loads((folder / "results.json").read_text())
    assert results["agents"] == ["wikirole_results"] and results["judgements"] == 3 * 3
    scores = json.loads((folder / "ditto_scores.json").read_text())
    assert set(scores["wikirole_results"]) == {"en", "zh", "all"}
    assert "Ditto's summary" in result.output


def test_the_judge_sees_the_whole_summary():
    items = read_wikirole(FIXTURES / "wikirole_results.jsonl")
    items[0].meta["summary"] = "Keeper of the Sein light. " * 80
    jobs = wikirole_jobs(items, recorded(items, "published"))
    assert len(jobs[0][0].profile) == len(items[0].meta["summary"]) > 2000
    assert jobs[-1][0].lang == "zh"


def test_ditto_scores_command_and_lfs_pointers(tmp_path):
    from rolecraft.cli import app

    result = CliRunner().invoke(app, ["eval", "ditto-scores", str(FIXTURES / "ditto_output.jsonl"), "--model-name", "ditto"])
    assert result.exit_code == 0, result.output
    assert "0.73" in result.output and "7.58" in result.output
    pointer = tmp_path / "wiki_roleplay_multilingual_test_input_w_evidence.jsonl"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "cc6de658" * 8 + "\nsize 3607668\n")
    with pytest.raises(RolecraftError, match=r"Git LFS pointer .*cc6de658.*3607668 bytes.*git lfs pull"):
        read_wikirole(pointer)
    with pytest.raises(RolecraftError, match="Git LFS pointer"):
        read_ditto_scores(pointer)
    assert math.isnan(ditto_table([])["all"]["knowledge"])


def test_the_report_names_the_reference_protocol(shared_data, charllm_copy, tmp_path):
    from rolecraft.cli import app
    from rolecraft.eval.results import EvalResults

    path = shared_data / "character-llm" / "transcripts" / "multi" / "Beethoven_sft.jsonl"
    profile = shared_data / "character-llm" / "profiles" / "wiki_Beethoven.txt"
    out = tmp_path / "ws"
    with StubServer() as stub:
        result = CliRunner().invoke(app, ["eval", "transcripts", str(path), "--character", str(profile),
                                          "--protocol", "reference", "--reference", str(charllm_copy),
                                          "--judge", f"openai:judge@{stub.url}", "--workspace", str(out)])
    assert result.exit_code == 0, result.output
    folder = out / "eval" / "transcripts"
    results = EvalResults.model_validate_json((folder / "results.json").read_text())
    assert results.protocol == "reference" and results.judgements == 50 * 5
    assert "reference protocol" in (folder / "report.md").read_text()
    missing = CliRunner().invoke(app, ["eval", "transcripts", str(path), "--character", str(profile),
                                       "--protocol", "reference", "--workspace", str(tmp_path / "none")])
    assert missing.exit_code != 0 and "--reference" in str(missing.exception)
    assert not (tmp_path / "none").exists()
