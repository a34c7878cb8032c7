"""Judge rubrics: parsers on recorded judge answers (good and malformed), aggregation, a real judge run."""

from __future__ import annotations

import json

import pytest

from rolecraft.character import Character
from rolecraft.eval.grounding import profile_for_judge, relevant_facts
from rolecraft.eval.judges import (
    RUBRICS,
    Case,
    judgement,
    read_refusal,
    read_role,
    read_score,
    reasoning_chars,
    run_judges,
    verdict_schema,
)
from rolecraft.llm import Message, load_model, run_sync
from rolecraft.llm.cache import CachedModel, RequestCache

CANDIDATES = ["Ludwig van Beethoven", "Wolfgang Amadeus Mozart", "Joseph Haydn", "Antonio Salieri"]


@pytest.mark.parametrize(
    ("text", "low", "high", "expected"),
    [
        ('{"reasoning": "Recalls Bonn and Neefe correctly.", "score": 6}', 1, 7, 6),
        ('```json\n{"reasoning": "ok", "score": "5"}\n```', 1, 7, 5),
        # Character-LLM's own format: reasoning, the score on its own line, then repeated.
        ("1. The profile says he was born in Bonn.\n2. The reply says Vienna.\n\n3\n3", 1, 7, 3),
        ("The reply is vivid and in character.\nScore: 6/7", 1, 7, 6),
        ("**Score**: 4", 1, 7, 4),
        ("Analysis: mostly correct, one slip.\n8", 1, 10, 8),
        ("I would rate this a 6 out of 7 overall.", 1, 7, None),  # no score line, no 'score' word
        ('{"reasoning": "too generous", "score": 9}', 1, 7, None),  # out of range, nothing else to read
        ('{"reasoning": "The reply mentions the', 1, 7, None),  # truncated JSON
        ("", 1, 7, None),
        ("score: seven", 1, 7, None),
    ],
)
def test_read_score(text, low, high, expected):
    assert read_score(text, low, high) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"reasoning": "Talks about his deafness.", "role": "Ludwig van Beethoven"}', "Ludwig van Beethoven"),
        ('{"reasoning": "x", "role": "ludwig van beethoven."}', "Ludwig van Beethoven"),
        ("The reply mentions the Requiem.\nThe most suitable role is [Wolfgang Amadeus Mozart].", "Wolfgang Amadeus Mozart"),
        ('{"reasoning": "x", "role": "I think it is Joseph Haydn"}', "Joseph Haydn"),
        ("Clearly this is Antonio Salieri speaking.", "Antonio Salieri"),
        ("It could be Joseph Haydn or Antonio Salieri.", None),  # two candidates named: ambiguous
        ('{"reasoning": "x", "role": "Napoleon"}', "Napoleon"),  # not a candidate: a wrong pick, not unreadable
        ('{"reasoning": "Not Joseph Haydn: he mentions Waterloo.", "role": "Napoleon"}', "Napoleon"),
        ("分析如上。最符合的角色为[约瑟夫·海顿]", "约瑟夫·海顿"),
        ("no idea", None),
    ],
)
def test_read_role(text, expected):
    assert read_role(text, CANDIDATES) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"reasoning": "He says he does not know what Python is.", "refused": true}', 1.0),
        ('{"reasoning": "Explains quicksort step by step.", "refused": false}', 0.0),
        ("1", 1.0),
        ("0", 0.0),
        ("The role answers fully.\nAnswer: no", 0.0),
        ('{"reasoning": "hm", "refused": "maybe"}', None),
        ("It is hard to say.", None),
    ],
)
def test_read_refusal(text, expected):
    assert read_refusal(text) == expected


def case(**fields) -> Case:
    base = dict(agent="a", item="single-000", kind="single", name="Beethoven",
                dialogue=[Message(role="user", content="Q?"), Message(role="assistant", content="A.")])
    return Case(**{**base, **fields})


def test_scores_are_averaged_over_readable_samples_and_failures_counted():
    rubric = RUBRICS["character-llm"]
    texts = ['{"reasoning": "good", "score": 6}', "garbage", '{"reasoning": "fine", "score": 4}']
    j = judgement(case(), rubric, "memorization", texts)
    assert (j.score, j.verdict, j.parse_failures, j.samples) == (5.0, 5.0, 1, [6.0, None, 4.0])
    assert j.reasoning == "good" and j.scale == (1.0, 7.0)

    failed = judgement(case(), rubric, "values", ["nope", ""])
    assert (failed.score, failed.parse_failures, failed.samples) == (None, 2, [None, None])


def test_rejection_is_a_majority_scored_against_the_label():
    rubric = RUBRICS["ditto-rejection"]
    refused = ['{"reasoning": "r", "refused": true}'] * 2 + ['{"reasoning": "r", "refused": false}']
    assert judgement(case(label=1), rubric, rubric.name, refused).score == 1.0
    assert judgement(case(label=0), rubric, rubric.name, refused).score == 0.0  # refusing an answerable question
    tie = ['{"reasoning": "r", "refused": true}', '{"reasoning": "r", "refused": false}']
    j = judgement(case(label=1), rubric, rubric.name, tie)
    assert (j.verdict, j.score) == (1.0, 1.0)  # a tie takes the first vote, as Ditto's script does
    j = judgement(case(label=1), rubric, rubric.name, ["garbage", *reversed(tie)])
    assert (j.verdict, j.score, j.parse_failures) == (0.0, 0.0, 1)  # the first *readable* vote
    assert judgement(case(label=None), rubric, rubric.name, refused).score == 1.0


def test_consistency_is_the_share_of_samples_naming_the_role():
    rubric = RUBRICS["ditto-consistency"]
    c = case(name="Joseph Haydn", candidates=CANDIDATES)
    texts = ['{"reasoning": "", "role": "Joseph Haydn"}', "The most suitable role is [Antonio Salieri]", "?",
             '{"reasoning": "", "role": "joseph haydn"}', "The most suitable role is [Napoleon]."]
    j = judgement(c, rubric, rubric.name, texts)
    # Naming someone who is not a candidate scores 0 (Ditto); only the unreadable "?" is a parse failure.
    assert (j.score, j.parse_failures, j.samples) == (pytest.approx(2 / 4), 1, [1.0, 0.0, None, 1.0, 0.0])


def test_ditto_rubrics_ask_chinese_roles_in_chinese():
    zh = case(name="李白", lang="zh", candidates=["李白", "杜甫", "王维", "白居易"], evidence="- 李白字太白。")
    for name in ("ditto-consistency", "ditto-knowledge", "ditto-rejection"):
        prompt = RUBRICS[name].prompt(zh, name)
        assert "[问题]\nQ?" in prompt and "[回复]\nA." in prompt and "JSON" in prompt
        assert "Question" not in prompt and "Reply" not in prompt
    assert "- 杜甫" in RUBRICS["ditto-consistency"].prompt(zh, "ditto-consistency")
    assert "李白字太白" in RUBRICS["ditto-knowledge"].prompt(zh, "ditto-knowledge")
    assert "[Question]" in RUBRICS["ditto-rejection"].prompt(case(), "ditto-rejection")  # English otherwise


def test_prompts_ground_the_judge_and_multi_turn_adds_stability():
    rubric = RUBRICS["character-llm"]
    assert rubric.dimensions("single") == ["memorization", "values", "personality", "hallucination"]
    assert rubric.dimensions("multi")[-1] == "stability"
    character = Character(
        full_name="Mira Castellan",
        paragraphs=["Mira keeps the Sein lighthouse.", "Her brother Corentin was lost at sea in 1782. She kept his compass."],
        statements=["Mira Castellan distrusts Paris."],
    )
    dialogue = "What do you remember of your brother Corentin?"
    assert relevant_facts(character, dialogue)[0].startswith("Her brother Corentin")
    profile = profile_for_judge(character, dialogue)
    assert profile.startswith("Mira keeps the Sein lighthouse.") and "compass" not in profile.split("\n")[0]
    prompt = rubric.prompt(case(name="Mira", profile=profile), "hallucination")
    assert "Her brother Corentin was lost at sea" in prompt and "Avoiding hallucination (1-7)" in prompt
    assert "Coffee Shop" in prompt and '"score"' in prompt


def test_verdict_schema_bounds_the_reasoning_to_the_token_budget():
    schema = verdict_schema("score7", reasoning_chars(96)).model_json_schema()
    assert schema["properties"]["reasoning"]["maxLength"] == reasoning_chars(96) < 96 * 4
    assert schema["properties"]["score"]["enum"] == list(range(1, 8))
    assert list(schema["properties"]) == ["reasoning", "score"]  # reasoning comes first


def test_a_real_judge_run_is_cached_and_every_answer_is_accounted_for(tiny_model_dir, tmp_path):
    judge = CachedModel(load_model(f"hf:{tiny_model_dir}"), RequestCache(tmp_path / "cache.sqlite"))
    c = case(candidates=CANDIDATES, label=1)
    jobs = [(c, RUBRICS["character-llm"], "values"), (c, RUBRICS["ditto-rejection"], "ditto-rejection"),
            (c, RUBRICS["ditto-consistency"], "ditto-consistency")]
    first = run_sync(run_judges(judge, jobs, samples=2, max_tokens=48))
    assert [len(j.samples) for j in first] == [2, 2, 2]
    for j in first:
        readable = [s for s in j.samples if s is not None]
        assert j.parse_failures == 2 - len(readable)
        assert (j.score is None) == (not readable)
    calls = judge.usage.calls
    assert calls == 6
    again = run_sync(run_judges(judge, jobs, samples=2, max_tokens=48))
    assert judge.usage.calls == calls and judge.usage.cached == 6
    assert [j.model_dump() for j in again] == [j.model_dump() for j in first]
    json.dumps([j.model_dump() for j in first])  # records serialise
