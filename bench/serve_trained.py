"""A trained character served by `rolecraft serve` on the embedded model: start-up and tokens/s.

    python bench/serve_trained.py WORKSPACE                            # this checkout
    python bench/serve_trained.py WORKSPACE --baseline-src /tmp/old/src  # and an earlier commit's src/, first

Each server is its own process on the same workspace (its best adapter): the time until /v1/models
answers, until the first reply, then four persona questions (48 tokens at most, sampled)
one after another and eight at once. Get an earlier commit's code with
`git archive COMMIT src | tar -x -C /tmp/old`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["What is your cat called?", "Tell me about the lighthouse.", "Who was your father?", "What do you do at night?"]


def measure(workspace: Path, src: Path, port: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "rolecraft", "serve", "--workspace", str(workspace), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            try:
                [model] = [m["id"] for m in httpx.get(url + "/models", timeout=1).json()["data"]]
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        ready = time.perf_counter() - started

        def ask(question: str, seed: int) -> dict:
            return {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 48, "temperature": 0.7, "seed": seed}

        httpx.post(url + "/chat/completions", json=ask("Hello!", 0), timeout=600)
        first = time.perf_counter() - started
        tokens, t = 0, time.perf_counter()
        for i, q in enumerate(QUESTIONS):
            tokens += httpx.post(url + "/chat/completions", json=ask(q, i + 1), timeout=600).json()["usage"]["completion_tokens"]
        sequential = tokens / (time.perf_counter() - t)

        async def together() -> int:
            async with httpx.AsyncClient(timeout=600) as client:
                replies = await asyncio.gather(*(client.post(url + "/chat/completions", json=ask(q, 10 + i)) for i, q in enumerate(QUESTIONS * 2)))
                return sum(r.json()["usage"]["completion_tokens"] for r in replies)

        t = time.perf_counter()
        concurrent = asyncio.run(together()) / (time.perf_counter() - t)
    finally:
        server.terminate()
        server.wait()
    return {"ready_s": round(ready, 1), "first_reply_s": round(first, 1), "sequential_tok_s": round(sequential, 1),
            "eight_at_once_tok_s": round(concurrent, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--baseline-src", type=Path, help="an earlier commit's src/ folder, measured first")
    parser.add_argument("--port", type=int, default=8777)
    args = parser.parse_args()
    runs = ([("baseline", args.baseline_src)] if args.baseline_src else []) + [("this checkout", ROOT / "src")]
    results = {name: measure(args.workspace, src, args.port) for name, src in runs}
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    for name, r in results.items():
        print(f"{name}: {json.dumps(r)}")
    if "baseline" in results:
        b, t = results["baseline"], results["this checkout"]
        print(f"ready {b['ready_s']} -> {t['ready_s']} s; one at a time {t['sequential_tok_s'] / b['sequential_tok_s']:.1f}x, "
              f"eight at once {t['eight_at_once_tok_s'] / b['eight_at_once_tok_s']:.1f}x")


if __name__ == "__main__":
    main()
