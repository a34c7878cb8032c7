"""A bounded soak of `rolecraft serve` on loopback: N concurrent streaming chat clients on the embedded
model for a few minutes, every k-th hanging up after its first piece of text (tests/serve_soak.py).
Reports streams completed and dropped, errors, time to the first piece, and — measured after warm-up
and again after the soak, once the server is idle — resident memory, asyncio tasks and threads.

    python bench/soak_serve.py --clients 50 --seconds 180 --hang-up-every 4

The baseline for memory is the same process right after warm-up (model loaded, one reply served).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CARD = {"spec": "chara_card_v2", "spec_version": "2.0",
        "data": {"name": "Captain Mira", "description": "{{char}} commands the airship Kestrel.",
                 "personality": "dry humour", "first_mes": "Welcome aboard, {{user}}."}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--hang-up-every", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, nargs=2, default=(8, 32))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    from tests.serve_soak import soak

    from rolecraft.llm import run_sync
    from rolecraft.serve import ServeSettings, build_agents, create_app, discover

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        card = Path(tmp) / "mira.json"
        card.write_text(json.dumps(CARD))
        agents = build_agents(discover([card]), model=args.model)
    app = create_app(agents, ServeSettings(max_pending=max(64, args.clients + 8)))
    result = run_sync(soak(app, "captain-mira", args.clients, args.seconds, args.hang_up_every, tuple(args.max_tokens)))
    figures = {**result.summary(), "model": args.model, "hang_up_every": args.hang_up_every,
               "load_at_start": round(load, 1), "load_at_end": round(os.getloadavg()[0], 1),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}  # fmt: skip
    print(json.dumps(figures, indent=1))
    for error in result.errors[:10]:
        print("error:", error)
    if args.out:
        args.out.write_text(json.dumps({**figures, "errors": result.errors}, indent=1))


if __name__ == "__main__":
    main()
