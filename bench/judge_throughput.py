"""Judge throughput at concurrency 1 vs 16, and the cost of a full interview round per character.

A local OpenAI-compatible server (tests/openai_stub_server.py, its own process) answers every
request after `--latency` seconds, standing in for a remote judge. Part 1 judges the same interview
transcripts (Character-LLM's five dimensions, probes also for rejection) with the `openai:` judge at
concurrency 1 and at 16, each with an empty request cache, in one run. Part 2 runs a full interview
round — every single-turn question, every multi-turn goal for 5 rounds, every judgement — for each
character with a question bank in ../shared/data (or the test fixture character), one prompt-only
agent, and records the calls per role as `rolecraft eval` prints them; prompt tokens are counted
with the SmolLM2 tokenizer over the exact requests the server received.

    python bench/judge_throughput.py --latency 0.2 --judgements 160 --out bench/results/eval.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TORCHDYNAMO_DISABLE="1")

from tests.openai_stub_server import StubServer, free_port, spawn  # noqa: E402

from rolecraft.cards import load_character  # noqa: E402
from rolecraft.eval.judges import run_judges  # noqa: E402
from rolecraft.eval.records import Transcript  # noqa: E402
from rolecraft.eval.run import EvalConfig, evaluate, interview_jobs  # noqa: E402
from rolecraft.eval.targets import AgentSpec  # noqa: E402
from rolecraft.llm.cache import CachedModel, RequestCache  # noqa: E402
from rolecraft.llm.openai_compat import OpenAIChatModel  # noqa: E402
from rolecraft.workspace import Workspace, read_jsonl  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "character-llm"
FIXTURES = REPO / "tests" / "fixtures" / "eval"


def characters() -> list[tuple[Path, Path | None, Path | None]]:
    """(profile, single-turn bank, multi-turn bank) for every character with a published bank."""
    found = []
    for bank in sorted((DATA / "questions").glob("generated_agent_interview_[A-Z]*.json")):
        name = bank.stem.removeprefix("generated_agent_interview_")
        multi = DATA / "questions" / f"generated_agent_interview_for_multiturn_{name}.json"
        found.append((DATA / "profiles" / f"wiki_{name}.txt", bank, multi))
    return found or [(FIXTURES / "wiki_Mira.txt", FIXTURES / "questions.json", FIXTURES / "questions_multi.json")]


async def throughput(url: str, jobs, concurrency: int, folder: Path) -> tuple[float, int, int]:
    """(seconds, judgements, unreadable answers) with an empty cache."""
    judge = CachedModel(OpenAIChatModel(f"judge@{url}", concurrency=concurrency),
                        RequestCache(folder / f"cache-{concurrency}.sqlite"))
    start = time.perf_counter()
    judgements = await run_judges(judge, jobs, samples=1, max_tokens=384, description=f"judging, concurrency {concurrency}")
    seconds = time.perf_counter() - start
    await judge.aclose()
    return seconds, len(judgements), sum(j.parse_failures for j in judgements)


def tokenizer():
    from transformers import AutoTokenizer

    from rolecraft.llm.embedded import embedded_checkpoint

    return AutoTokenizer.from_pretrained(embedded_checkpoint())


async def full_round(server: StubServer, profile: Path, bank: Path, multi: Path, folder: Path, tok) -> dict:
    """One character's full round against the in-process stub; per role: calls, prompt tokens, max completion."""
    character = load_character(profile)
    url = server.url
    config = EvalConfig(
        agents=[AgentSpec.parse(f"prompt=openai:agent@{url}")], judge=f"openai:judge@{url}",
        interviewer=f"openai:interviewer@{url}", questions=bank, multi_questions=multi, multi=None, rounds=5,
    )
    server.state.log.clear()
    start = time.perf_counter()
    await evaluate(character, Workspace.for_character(character, folder / character.slug), config)
    seconds = time.perf_counter() - start
    roles: dict[str, dict[str, int]] = {}
    for seen in server.state.log:
        row = roles.setdefault(seen.body["model"], {"calls": 0, "prompt_tokens": 0, "max_completion": 0})
        row["calls"] += 1
        text = tok.apply_chat_template(seen.body["messages"], tokenize=False, add_generation_prompt=True)
        row["prompt_tokens"] += len(tok(text, add_special_tokens=False).input_ids)
        row["max_completion"] += seen.body["max_tokens"]
    return {"name": character.name, "roles": roles, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per answer")
    parser.add_argument("--judgements", type=int, default=160, help="judgements per concurrency setting")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown results here")
    args = parser.parse_args()

    port = free_port()
    server = spawn(port, "--latency", str(args.latency))
    url = f"http://127.0.0.1:{port}/v1"
    tok = tokenizer()
    try:
        with tempfile.TemporaryDirectory() as tmp, StubServer() as local:
            folder = Path(tmp)
            # Part 2 first: the first character's transcripts are what part 1 judges.
            rounds = [asyncio.run(full_round(local, *paths, folder, tok)) for paths in characters()]
            first = load_character(characters()[0][0])
            transcripts = read_jsonl(folder / first.slug / "eval" / "interview" / "transcripts.jsonl", Transcript)
            jobs = interview_jobs(transcripts, first)[: args.judgements]
            measured = {c: asyncio.run(throughput(url, jobs, c, folder)) for c in (1, 16)}
    finally:
        server.terminate()
    report = render(args, measured, rounds)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


def render(args, measured, rounds) -> str:
    (t1, n1, f1), (t16, n16, f16) = measured[1], measured[16]
    rate1, rate16 = n1 / t1 * 60, n16 / t16 * 60
    lines = [
        "# Evaluation: judge throughput and the cost of an interview round",
        "",
        f"Command: `python bench/judge_throughput.py --latency {args.latency} --judgements {args.judgements}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; judge = "
        f"tests/openai_stub_server.py in its own process answering each request after {args.latency} s.",
        "",
        "## Judgements per minute, same transcripts, same run",
        "",
        "| judge concurrency | judgements | seconds | judgements / minute | unreadable answers |",
        "|---|---|---|---|---|",
        f"| 1 | {n1} | {t1:.1f} | {rate1:.0f} | {f1} |",
        f"| 16 | {n16} | {t16:.1f} | {rate16:.0f} | {f16} |",
        "",
        f"Concurrency 16 vs 1: **{rate16 / rate1:.1f}×** the judgements per minute (the server's latency "
        f"bounds concurrency 1 at {60 / args.latency:.0f} / minute).",
        "",
        "## A full interview round per character (one agent)",
        "",
        "Every Character-LLM question (topics 1–3 and the topic-4 probes) asked single-turn, every multi-turn "
        "goal pursued for 5 rounds, everything judged on Character-LLM's dimensions (+ rejection for the probes), "
        "1 judge sample. Calls are what the server received (an identical request is sent once); prompt tokens "
        "are the SmolLM2 tokenizer's count of exactly those requests; completion tokens depend on the models, "
        "so their upper bound (the sum of `max_tokens`) is given.",
        "",
        "| character | agent calls | interviewer calls | judge calls | prompt tokens (all) | completion tokens (max) "
        "| wall s (stub, no latency) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        roles = r["roles"]
        total = sum(v["prompt_tokens"] for v in roles.values())
        most = sum(v["max_completion"] for v in roles.values())
        calls = [roles.get(k, {}).get("calls", 0) for k in ("agent", "interviewer", "judge")]
        lines.append(f"| {r['name']} | {calls[0]} | {calls[1]} | {calls[2]} | {total:,} | {most:,} | {r['seconds']:.0f} |")
    lines += [
        "",
        "The agent's replies in this run are the stub's echoes (about as long as the question asked); a real "
        "agent's longer replies add to the interviewer's and the judge's prompt tokens. Judge calls dominate: "
        "each one carries the grounded profile, the scene, the conversation and the rubric (~1,000 tokens).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
