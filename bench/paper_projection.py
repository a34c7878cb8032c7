"""Projected wall time of `rolecraft build --preset paper` for a 7B student on one 24 GB GPU.

    python bench/paper_projection.py                                  # examples/mira-voss.txt and Beethoven
    python bench/paper_projection.py PROFILE --tflops 125 --bandwidth 600 --mfu 0.35

How the projection is made:
1. Work per stage, counted from the paper preset's own settings (`rolecraft.pipeline.presets.paper`)
   and the profile: model calls, prompt and completion tokens, training tokens, classifier items.
   Prompt sizes are measured by tokenising the pipeline's real prompts for this character. Completions
   are counted twice: at a typical length (the papers' figures, e.g. ~1,000 words per experience
   script) and at the token limit the pipeline sets for the call (JSON schema bound or `max_tokens`),
   an upper bound; training tokens follow the typical lengths.
2. Per-token costs of a 7B model on the GPU, from its datasheet numbers and stated efficiencies:
   decoding is memory-bound (every step reads the weights once for a whole batch); prefill and training
   are compute-bound (2N FLOPs per token forward; LoRA training with gradient checkpointing ~6N, plus
   ~40% for QLoRA's de-quantisation); the MiniLM discriminators are negligible next to these.
   The teacher and judge are taken as a 7B model on the same GPU (an API teacher replaces the
   generation rows by its own rate limit).
These rates are *not measured*: no GPU was lent to the sessions that wrote this script. Rerun with the
rates of your GPU (`--tflops`, `--bandwidth`, `--mfu`, `--batch`) or replace them with measured ones.
Results go to bench/results/build.md (section "paper").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from apc_scoring import write_section  # noqa: E402

PARAMS = 7e9
WEIGHT_BYTES = 2 * PARAMS  # bf16 weights read once per decoding step
BEETHOVEN = REPO.parent / "shared" / "data" / "character-llm" / "profiles" / "wiki_Beethoven.txt"
RESULTS = REPO / "bench" / "results" / "build.md"


@dataclass
class Work:
    """One stage's work: generation (calls, prompt tokens, completion tokens), training tokens, and
    classifier items (relevance / NLI forward passes)."""

    calls: int = 0
    prompt: int = 0
    completion: int = 0  # at typical lengths
    limit: int = 0  # at the token limits
    train: int = 0
    classifier: int = 0
    notes: list[str] = field(default_factory=list)

    def generate(self, calls: int, prompt_each: int, typical_each: int, limit_each: int) -> None:
        self.calls += calls
        self.prompt += calls * prompt_each
        self.completion += calls * min(typical_each, limit_each)
        self.limit += calls * limit_each


@dataclass
class Rates:
    tflops: float  # bf16 dense tensor throughput
    bandwidth: float  # GB/s
    mfu: float  # share of peak FLOPs training and prefill reach
    batch: int  # concurrent sequences while decoding (KV cache room on 24 GB next to 14 GB of weights)
    qlora_overhead: float = 1.4

    @property
    def decode_tps(self) -> float:
        return self.batch * self.bandwidth * 1e9 / WEIGHT_BYTES

    @property
    def prefill_tps(self) -> float:
        return self.tflops * 1e12 * self.mfu / (2 * PARAMS)

    @property
    def train_tps(self) -> float:
        return self.tflops * 1e12 * self.mfu / (6 * PARAMS * self.qlora_overhead)

    def seconds(self, w: Work, at_limits: bool = False) -> float:
        completion = w.limit if at_limits else w.completion
        return w.prompt / self.prefill_tps + completion / self.decode_tps + w.train / self.train_tps


def tokens(tokenizer, messages) -> int:
    text = tokenizer.apply_chat_template([m.model_dump() for m in messages], tokenize=False)
    return len(tokenizer(text)["input_ids"])


def paper_work(profile: Path) -> dict[str, Work]:
    from transformers import AutoTokenizer

    from rolecraft.cards import load_character
    from rolecraft.faithfulness.questions import nli_question, relevance_question
    from rolecraft.formats.experience import Scene
    from rolecraft.llm.embedded import embedded_checkpoint
    from rolecraft.llm.structured import token_limit
    from rolecraft.pipeline.presets import paper
    from rolecraft.synth.experiences import experience_prompt, script_schema
    from rolecraft.synth.nli import response_prompt
    from rolecraft.synth.protective import protective_prompt, protective_schema
    from rolecraft.synth.queries import query_prompt
    from rolecraft.synth.scenes import scene_list, scene_prompt
    from rolecraft.synth.statements import statement_prompt

    p = paper()
    tok = AutoTokenizer.from_pretrained(str(embedded_checkpoint()))  # a Llama-family tokenizer
    character = load_character(profile)
    name = character.name
    paragraphs = character.knowledge()
    mean = lambda xs: round(sum(xs) / len(xs))  # noqa: E731
    works: dict[str, Work] = {}

    w = works["statements"] = Work()
    w.generate(len(paragraphs), mean([tokens(tok, statement_prompt(character, t, p.statements.max_statements)) for t in paragraphs]),
               25 * p.statements.max_statements, p.statements.max_tokens)
    statements = len(paragraphs) * p.statements.max_statements
    sample = f"{name} grew up by the sea and learned the trade from a parent who taught by example."
    w.notes.append(f"{len(paragraphs)} passages, up to {statements} statements")

    w = works["queries"] = Work()
    w.generate(statements, tokens(tok, query_prompt(name, sample, p.queries.per_statement)), 30 * p.queries.per_statement,
               p.queries.max_tokens)
    queries = statements * p.queries.per_statement

    w = works["experiences"] = Work()
    scenes = p.scenes.prompts * p.scenes.per_prompt
    w.generate(p.scenes.prompts, mean([tokens(tok, scene_prompt(character, t, p.scenes.per_prompt, 0, True)) for t in paragraphs]),
               60 * p.scenes.per_prompt, token_limit(scene_list(p.scenes.per_prompt)))
    scene = Scene(id="s0", type="chat", location="a harbour tavern", background="Friends meet after a storm.", paragraph=0,
                  source=paragraphs[0])
    script, protective_script = 1400, 800  # ~1,000 words; 6 exchanges
    w.generate(scenes, tokens(tok, experience_prompt(character, scene, p.experiences)), script,
               token_limit(script_schema(p.experiences)))
    protective = p.protective.count(scenes)
    w.generate(protective, tokens(tok, protective_prompt(character, paragraphs[0], "Sam", "smartphones", True)),
               protective_script, token_limit(protective_schema(p.protective)))
    w.notes.append(f"{scenes} scenes, {scenes} scripts + {protective} protective")

    w = works["sft"] = Work()
    epochs = 3  # LoRA / QLoRA default of `train.sft_config.sft_config`
    system = 200  # persona prompt + location + status
    w.train = epochs * (scenes * (script + system) + protective * (protective_script + system))
    w.notes.append(f"{scenes + protective} rows x {epochs} epochs, QLoRA")

    w = works["faithfulness_data"] = Work()
    reply = "I grew up by the sea, and my mother taught me the trade by example."
    w.generate(queries, tokens(tok, response_prompt(name, sample, "Where did you grow up?")), 200, p.faithfulness.max_tokens)
    w.generate(statements * p.faithfulness.cross_relevance, tokens(tok, relevance_question(name, sample, "Where did you grow up?")), 8, 24)
    nli_items = queries * (3 + p.faithfulness.cross_nli)
    w.generate(nli_items, tokens(tok, nli_question(name, sample, "Where did you grow up?", reply * 3)), 8, 24)
    w.notes.append(f"{queries} queries, {nli_items} NLI labels")

    w = works["discriminators"] = Work()
    w.classifier = 5 * (queries + statements * p.faithfulness.cross_relevance) + 10 * nli_items
    w.notes.append("MiniLM, 5 / 10 epochs (negligible on a GPU)")

    w = works["dpo"] = Work()
    contexts, samples = p.preference.max_contexts, p.preference.samples
    rag_prompt = 350  # persona prompt with the top-5 statements + the question
    w.generate(contexts * samples, rag_prompt, 100, p.preference.max_tokens)
    w.classifier = contexts * statements * (1 + samples)
    # One epoch (train.dpo's default) over chosen + rejected; the reference forward (adapter disabled,
    # no backward) adds about half a training pass.
    w.train = round(contexts * 2 * (rag_prompt + p.preference.max_tokens) * 1.5)
    w.notes.append(f"{contexts} contexts x {samples} replies, APC over {statements} statements, DPO on <= {contexts} pairs")

    w = works["evaluation"] = Work()
    single, probes, multi, rounds = 100, 5, p.eval.multi or 10, p.eval.rounds  # a Character-LLM-sized bank
    agents = 4
    replies = agents * (single + probes + multi * rounds)
    w.generate(replies, rag_prompt + 400, 150, p.eval.reply_tokens)  # + the conversation so far in multi-turn
    w.generate(agents * multi * rounds, 600, 40, 128)  # the interviewer's next question
    judgements = agents * ((single + probes) * 4 + probes + multi * 5) * p.eval.samples
    w.generate(judgements, 1200, 250, p.eval.judge_tokens)
    w.classifier = agents * (single + probes) * statements * 2
    w.notes.append(f"{agents} agents x {single + probes} single + {multi}x{rounds} multi-turn, {judgements} judgements")
    return works


def report(profiles: list[Path], rates: Rates) -> str:
    lines = [
        "## `--preset paper`: projected time for a 7B student on one 24 GB GPU",
        "",
        f"`python bench/paper_projection.py --tflops {rates.tflops:g} --bandwidth {rates.bandwidth:g} --mfu {rates.mfu:g} "
        f"--batch {rates.batch}` (defaults: an NVIDIA A10, 24 GB, 125 bf16 TFLOPS dense, 600 GB/s).",
        "",
        f"Per-token costs used: decoding {rates.decode_tps:,.0f} tokens/s ({rates.batch} sequences per step), prefill "
        f"{rates.prefill_tps:,.0f} tokens/s, QLoRA training {rates.train_tps:,.0f} tokens/s. **Derived from the GPU's "
        "datasheet numbers, not measured**: no GPU was available to these sessions (see the script's docstring "
        "for the model). Completions at typical lengths; the last column counts every answer at its token limit.",
    ]
    for profile in profiles:
        works = paper_work(profile)
        total = sum(rates.seconds(w) for w in works.values())
        lines += ["", f"### {profile.name}", "",
                  "| stage | calls | prompt tokens | completion tokens | training tokens | hours | work | hours at token limits |",
                  "|---|---:|---:|---:|---:|---:|---|---:|"]
        for name, w in works.items():
            lines.append(f"| {name} | {w.calls:,} | {w.prompt:,} | {w.completion:,} | {w.train:,} | "
                         f"{rates.seconds(w) / 3600:.2f} | {'; '.join(w.notes)} | {rates.seconds(w, True) / 3600:.2f} |")
        upper = sum(rates.seconds(w, True) for w in works.values())
        lines.append(f"| **total** | | | | | **{total / 3600:.1f}** | | {upper / 3600:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="*", type=Path, default=[REPO / "examples" / "mira-voss.txt", BEETHOVEN])
    parser.add_argument("--tflops", type=float, default=125.0, help="bf16 dense tensor TFLOPS (A10: 125)")
    parser.add_argument("--bandwidth", type=float, default=600.0, help="memory bandwidth in GB/s (A10: 600)")
    parser.add_argument("--mfu", type=float, default=0.35, help="share of peak FLOPs reached by prefill and training")
    parser.add_argument("--batch", type=int, default=32, help="sequences decoded together")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = report(args.profiles, Rates(args.tflops, args.bandwidth, args.mfu, args.batch))
    print(text)
    if not args.no_write:
        write_section("paper", text, RESULTS, "# `rolecraft build`: benchmarks\n")


if __name__ == "__main__":
    main()
