"""Experience reconstruction and upload: synthesis throughput, SFT throughput and memory, embedded path.

    python bench/experiences.py synthesis --scenes 48 --latency 0.25     # openai: backend, concurrency 1 vs 16
    python bench/experiences.py sft --rows 24 --max-length 512           # SmolLM2 on CPU, LoRA vs full
    python bench/experiences.py embedded                                 # the --tiny path on wiki_Alice.txt

synthesis: the experiences stage (prompts → request cache → openai: backend → parse → checks) against
the stub OpenAI-compatible server (tests/openai_stub_server.py) answering every request after a fixed
latency with a recorded teacher script, so the stage keeps real experiences. sft: the same rows, one
epoch, each method in its own process so peak memory (max RSS) is its own. embedded: wall time and
tokens per stage for the embedded SmolLM2 teacher and student, offline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURES = REPO / "tests" / "fixtures" / "charllm"
ALICE = REPO.parent / "shared" / "data" / "apc" / "wiki" / "wiki_Alice.txt"


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f}"


def beethoven():
    from tests.test_experiences import BEETHOVEN

    return BEETHOVEN


# -- synthesis ---------------------------------------------------------------------------------


def synthesis(args: argparse.Namespace) -> None:
    import tests.openai_stub_server as stub

    from rolecraft.formats.experience import Scene
    from rolecraft.llm.cache import CachedModel, RequestCache
    from rolecraft.llm.openai_compat import OpenAIChatModel
    from rolecraft.synth.experiences import ExperienceSettings, make_experiences

    script = json.loads((FIXTURES / "recorded_structured.json").read_text())["experiences"][0]["text"]
    stub.answer = lambda body, prompt, *rest: (script, "stop", len(prompt.split()))  # a recorded teacher
    character = beethoven()
    scenes = [
        Scene(id=f"s{i:04d}", type="chat", location="Vienna", background=f"Rehearsal number {i}.", paragraph=i % 3,
              source=character.paragraphs[i % 3])
        for i in range(args.scenes)
    ]
    rows = []
    with stub.StubServer(latency=args.latency, max_concurrency=16, over_cap="queue") as server, tempfile.TemporaryDirectory() as tmp:
        for concurrency in (1, 16):
            backend = OpenAIChatModel("teacher", base_url=server.url, concurrency=concurrency)
            model = CachedModel(backend, RequestCache(Path(tmp) / f"c{concurrency}.sqlite"))
            started = time.perf_counter()
            kept, rejected = asyncio.run(make_experiences(character, model, scenes, ExperienceSettings()))
            seconds = time.perf_counter() - started
            rows.append((concurrency, seconds, len(kept), sum(rejected.values())))
    print(f"machine: {machine()}\nstub server: latency {args.latency * 1000:g} ms per answer, {args.scenes} scenes\n")
    print("| concurrency | seconds | experiences/min | kept | rejected | speedup |")
    print("|---:|---:|---:|---:|---:|---:|")
    for concurrency, seconds, kept, rejected in rows:
        print(f"| {concurrency} | {seconds:.1f} | {kept / seconds * 60:.0f} | {kept} | {rejected} | {rows[0][1] / seconds:.1f}× |")


# -- SFT ---------------------------------------------------------------------------------------


def sft_child(args: argparse.Namespace) -> None:
    """One method in this process: print its numbers as JSON."""
    from rolecraft.synth.charllm_import import import_generated
    from rolecraft.train.sft import SFTSettings, train_sft

    character = beethoven()
    base, _ = import_generated(FIXTURES / "generated_agent_dialogue_Beethoven.json", character)
    rows = [e.model_copy(update={"id": f"e{i}", "background": f"{e.background} (take {i})"})
            for i in range(args.rows) for e in [base[i % len(base)]]]
    with tempfile.TemporaryDirectory() as tmp:
        result = train_sft(
            character, rows, SFTSettings(method=args.method, format="prompted", eval_fraction=0.0), Path(tmp) / "sft",
            {"max_steps": args.rows // 4, "per_device_train_batch_size": 4, "max_length": args.max_length,
             "save_strategy": "no", "logging_steps": 100, "disable_tqdm": True},
        )
    runtime = result.metrics["train_runtime"]
    print(json.dumps({"method": args.method, "tokens": result.tokens, "seconds": runtime,
                      "tokens_per_s": result.tokens / runtime,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def sft(args: argparse.Namespace) -> None:
    results = []
    for method in ("lora", "full"):
        command = [sys.executable, __file__, "sft-child", "--method", method, "--rows", str(args.rows),
                   "--max-length", str(args.max_length)]
        out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(f"machine: {machine()}\nSmolLM2-135M, prompted format, {args.rows} rows (one epoch), batch 4, max length {args.max_length}\n")
    print("| method | tokens | seconds | tokens/s | peak RSS (GB) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['method']} | {r['tokens']} | {r['seconds']:.1f} | {r['tokens_per_s']:.0f} | {r['peak_rss_gb']:.2f} |")
    print(f"\nLoRA / full: {results[0]['tokens_per_s'] / results[1]['tokens_per_s']:.2f}× tokens/s, "
          f"{results[0]['peak_rss_gb'] / results[1]['peak_rss_gb']:.2f}× peak memory")


# -- the embedded path -------------------------------------------------------------------------


def embedded(args: argparse.Namespace) -> None:
    from typer.testing import CliRunner

    from rolecraft.cli import app
    from rolecraft.workspace import Workspace

    runner, rows = CliRunner(), []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "alice"
        for stage, command in [
            ("scenes", ["scenes", str(ALICE), "-w", str(ws), "--tiny"]),
            ("experiences + protective", ["experiences", str(ws), "--tiny"]),
            ("sft (LoRA, 4 steps)", ["train", "sft", str(ws), "--format", "prompted", "--eval-fraction", "0", "--",
                                     "--max_steps", "4", "--max_length", "384", "--per_device_train_batch_size", "2",
                                     "--save_strategy", "no"]),
        ]:
            started = time.perf_counter()
            result = runner.invoke(app, command)
            assert result.exit_code == 0, result.output
            rows.append((stage, time.perf_counter() - started))
        manifest = Workspace(ws).manifest()["steps"]
    print(f"machine: {machine()}\nembedded SmolLM2 teacher and student, --tiny, {ALICE.name}\n")
    print("| stage | seconds | teacher tokens | tokens/s | kept | rejected |")
    print("|---|---:|---:|---:|---:|---:|")
    for stage, seconds in rows:
        names = [s for s in ("scenes", "experiences", "protective") if s in stage] or ["sft"]
        info = [manifest.get(n, {}) for n in names]
        tokens = sum(u.get("completion_tokens", 0) for i in info for u in i.get("usage", {}).values())
        kept = sum(i.get("rows", 0) for i in info) if names[0] != "sft" else "-"
        rejected = sum(sum(i.get("rejections", {}).values()) for i in info) if names[0] != "sft" else "-"
        rate = f"{tokens / seconds:.1f}" if tokens else "-"
        print(f"| {stage} | {seconds:.1f} | {tokens or '-'} | {rate} | {kept} | {rejected} |")


def main() -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TORCHDYNAMO_DISABLE="1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("synthesis")
    s.add_argument("--scenes", type=int, default=48)
    s.add_argument("--latency", type=float, default=0.25)
    for name in ("sft", "sft-child"):
        p = sub.add_parser(name)
        p.add_argument("--rows", type=int, default=24)
        p.add_argument("--max-length", type=int, default=512)
        p.add_argument("--method", default="lora")
    sub.add_parser("embedded")
    args = parser.parse_args()
    {"synthesis": synthesis, "sft": sft, "sft-child": sft_child, "embedded": embedded}[args.what](args)


if __name__ == "__main__":
    main()
