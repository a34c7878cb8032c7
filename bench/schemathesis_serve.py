"""schemathesis against `rolecraft serve` on loopback, from the server's own /openapi.json: every phase
(explicit examples, boundary values, fuzzing, stateful), valid and invalid requests, every check (no
5xx, statuses, content types and bodies as described, valid data accepted, invalid data rejected,
405 with Allow). The server plays two characters on the tiny random Llama of tests/tiny.py; replies
are capped at a few tokens, since the requests are what is tested.

    python bench/schemathesis_serve.py --max-examples 200 --seed 1

Prints the cases generated, passed and failed, the failures by kind, and how the server answers after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=200, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    import httpx
    from tests.test_serve_schema import serve_tiny
    from tests.tiny import build_tiny_llama

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, serve_tiny(build_tiny_llama(Path(tmp) / "tiny")) as server:
        started = time.monotonic()
        run = subprocess.run(
            ["st", "--no-color", "run", f"{server.base}/openapi.json", "--max-examples", str(args.max_examples), "--seed", str(args.seed),
             "--workers", "1", "--request-timeout", "300", "--mode", "all", "--phases", "examples,coverage,fuzzing,stateful"],
            capture_output=True, text=True, cwd=tmp,
        )  # fmt: skip
        seconds = time.monotonic() - started
        health = httpx.get(server.base + "/health").json()
        ask = {"model": "alice", "messages": [{"role": "user", "content": "still there?"}]}
        after = httpx.post(server.url + "/chat/completions", json=ask, timeout=60).status_code
    output = run.stdout + run.stderr
    cases = re.search(r"(\d+) generated, (?:(\d+) found (\d+) unique failures?|(\d+) passed)", output)
    failures = dict(re.findall(r"❌ (ST\d+ [^:\n]+): (\d+)", output))
    errors = dict(re.findall(r"🚫 ([^:\n]+): (\d+)", output))  # e.g. a request that timed out
    figures = {
        "max_examples": args.max_examples, "seed": args.seed, "seconds": round(seconds, 1),
        "cases": int(cases[1]) if cases else None,
        "cases_failing": int(cases[2]) if cases and cases[2] else 0,
        "unique_failures": int(cases[3]) if cases and cases[3] else 0,
        "failures_by_kind": {k: int(v) for k, v in failures.items()},
        "errors_by_kind": {k: int(v) for k, v in errors.items()},
        "server_afterwards": {"health": health, "chat_status": after},
        "exit_code": run.returncode, "load_at_start": round(load, 1), "load_at_end": round(os.getloadavg()[0], 1),
    }  # fmt: skip
    print(json.dumps(figures, indent=1))
    if run.returncode:
        print(output[-6000:])
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
