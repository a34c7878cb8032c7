"""Does training help on characters that were not used to tune the pipeline? The README's main job on each.

    python bench/characters.py examples/mira-voss.txt ../shared/data/apc/wiki/wiki_Bob.txt Seraphina.png \
        --root /tmp/characters --write-md

Each file is built with the default preset (`rolecraft build FILE --workspace ROOT/<name>`; a finished
workspace resumes as "Nothing to do", so the table can be redone without rebuilding), then tabulated
from what the build stored: every agent's held-out fact recall, boundary leak, boundary held and APC
with 95 % bootstrap intervals (eval/build/results.json), the verdict, the SFT loss first → last, the
share of probe replies SFT changed, the discriminators' held-out accuracy against the majority class,
and the number of DPO pairs (manifest.json). With `--write-md` the tables go to
bench/results/characters.md.
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
sys.path.insert(0, str(ROOT / "src"))

METRICS = [("fact_recall", "fact recall ↑"), ("boundary_leak", "boundary leak ↓"), ("boundary_held", "boundary held ↑"),
           ("apc", "APC ↑")]


def build(file: Path, workspace: Path) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TORCHDYNAMO_DISABLE": "1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rolecraft", "build", str(file), "--workspace", str(workspace)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{file}: build failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - started


def tabulate(workspace: Path) -> str:
    from rolecraft.eval.probing import ProbeResult
    from rolecraft.eval.results import EvalResults, verdict
    from rolecraft.language.en.boundary import deflects

    results = EvalResults.model_validate_json((workspace / "eval" / "build" / "results.json").read_text())
    probes = [ProbeResult.model_validate_json(line) for line in (workspace / "eval" / "build" / "probes.jsonl").open()]
    facts = {a: [p for p in probes if p.agent == a and p.kind == "fact"] for a in ("sft", "sft+dpo")}
    deflected = ", ".join(f"{a} {sum(deflects(p.reply) for p in mine)} of {len(mine)}" for a, mine in facts.items())
    steps = json.loads((workspace / "manifest.json").read_text())["steps"]
    sft, disc = steps["sft"]["info"], steps["discriminators"]["info"]
    first, last = sft["loss"]
    lines = [f"### {results.character}", "",
             "| agent | " + " | ".join(label for _, label in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for agent in results.agents:
        cells = []
        for metric, _ in METRICS:
            e = results.metric(agent, metric)
            cells.append(f"{e.mean:.2f} [{e.low:.2f}, {e.high:.2f}] (n={e.n})" if e else "—")
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    accuracy = ", ".join(f"{name} {v['accuracy']:.2f} vs majority {v['majority']:.2f}" for name, v in disc.items())
    changed = ", ".join(f"{a} {v:.2f}" for a, v in results.changed.items() if a in ("sft", "sft+dpo"))
    lines += ["", f"- Verdict: {results.verdict.text() if results.verdict else '—'}",
              f"- The SFT agent alone: {verdict(probes, 'sft', 'prompt-only').text()}",
              f"- Fact probes answered with a deflection (\"I have never heard of it\"): {deflected}",
              f"- SFT on {sft['rows']['train']} rows: loss {first:.2f} → {last:.2f}; probe replies that differ from "
              f"prompt-only: {changed}",
              f"- Discriminators, held-out accuracy: {accuracy}; DPO pairs: {steps['preference'].get('rows')}",
              f"- Judge check: {results.judge_check.text() if results.judge_check else '—'}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--root", type=Path, default=Path("/tmp/rolecraft-characters"))
    parser.add_argument("--write-md", action="store_true")
    parser.add_argument("--no-build", action="store_true", help="tabulate the workspaces under --root as they are")
    args = parser.parse_args()
    parts = []
    for file in args.files:
        workspace = args.root / file.stem.lower().replace(" ", "-")
        ran = "" if args.no_build else f"(`rolecraft build` {build(file.resolve(), workspace):.0f} s this run.)\n"
        parts.append(tabulate(workspace) + ran)
    text = "\n".join(parts)
    print(text)
    if args.write_md:
        (ROOT / "bench" / "results" / "characters.md").write_text(
            "# Training helps: held-out probes per character\n\n"
            f"Command: `python bench/characters.py {' '.join(str(f) for f in args.files)} --write-md`\n\n" + text + "\n")


if __name__ == "__main__":
    main()
