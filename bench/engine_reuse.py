"""The llama.cpp engine on the build's kind of workload: many requests that share a long system prompt.

    python bench/engine_reuse.py                # 32 requests, 8 slots, a ~360-token shared prompt
    python bench/engine_reuse.py --threads-check

Each variant runs in its own process, one after the other, on the same requests (persona prompt from
examples/mira-voss.txt, 32 questions, 40 sampled tokens each):

- `reuse`: the engine as it is (prompt prefixes reused from finished slots and copied from running ones);
- `cold`: the same engine with every prompt read whole (the baseline, same run);
the outputs of both must be identical, bit for bit (checked here too).

`--threads-check` adds the OpenMP variants behind rolecraft.compute, 27 replies each: the build's
setting; the passive wait (what rolecraft set before); a torch computation on two threads run
first on the main thread (its worker team left behind); and the same torch computation on the compute
thread. Ends with `speedup X.X× (reuse vs cold)`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}  # GOMP_SPINCOUNT, when set, overrides the policy's spin


def workload(variant: str, n: int, slots: int) -> dict:
    import asyncio

    import rolecraft.llm.llamacpp_prefix as prefix
    from rolecraft.llm import Message, SamplingParams
    from rolecraft.llm.embedded import embedded_q8
    from rolecraft.llm.llamacpp import LlamaCppChatModel

    if variant == "cold":  # every prompt read whole, in the first free slot
        prefix.SlotCaches.place = lambda self, prompt, busy, reading: (min(set(range(len(self.tokens))) - set(busy)), -1, 0)
    if variant == "torch-main" or variant == "torch-compute":
        import torch

        from rolecraft.compute import on_compute_thread

        def work():  # leaves a team of OpenMP threads behind on the thread that runs it
            return torch.ones(300, 300) @ torch.ones(300, 300)

        torch.set_num_threads(2)
        if variant == "torch-main":
            work()
        else:
            on_compute_thread(work)
    model = LlamaCppChatModel(str(embedded_q8()), batch_size=slots)
    persona = "You are Mira Voss. " + (ROOT / "examples" / "mira-voss.txt").read_text()[:1500]
    conversations = [[Message(role="system", content=persona),
                      Message(role="user", content=f"Question number {i}: what do you think about the sea and your work?")]
                     for i in range(n)]
    params = SamplingParams(max_tokens=40, temperature=0.7, repetition_penalty=1.1, seed=1)

    async def go():
        started = time.perf_counter()
        out = await model.generate(conversations, params)
        seconds = time.perf_counter() - started
        await model.aclose()
        return out, seconds

    out, seconds = asyncio.run(go())
    return {"variant": variant, "seconds": round(seconds, 2), "prompt_tokens": sum(c.prompt_tokens for c in out),
            "read": model.engine.prompt_tokens_read, "completion_tokens": sum(c.completion_tokens for c in out),
            "texts": [c.text for c in out]}


def in_process(variant: str, n: int, slots: int, env: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--variant", variant, "--n", str(n), "--slots", str(slots)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--threads-check", action="store_true")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(workload(args.variant, args.n, args.slots)))
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows = [in_process("cold", args.n, args.slots), in_process("reuse", args.n, args.slots)]
    if args.threads_check:
        rows += [in_process("reuse", args.n, args.slots, PASSIVE) | {"variant": "reuse, passive wait (rolecraft before)"},
                 in_process("torch-main", args.n, args.slots), in_process("torch-compute", args.n, args.slots)]
    print("| variant | seconds | prompt tokens | read | completion tokens | tokens / s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rate = (r["read"] + r["completion_tokens"]) / r["seconds"]
        print(f"| {r['variant']} | {r['seconds']} | {r['prompt_tokens']} | {r['read']} | {r['completion_tokens']} | {rate:.0f} |")
    same = all(r["texts"] == rows[0]["texts"] for r in rows)
    print(f"outputs identical across variants: {same}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"speedup {rows[0]['seconds'] / rows[1]['seconds']:.1f}× (reuse vs cold)")


if __name__ == "__main__":
    main()
