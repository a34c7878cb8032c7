"""The README's main job, per stage, against an earlier commit's build in the same sitting.

    python bench/build_stages.py --baseline e8d77d8              # that commit's build, then today's
    python bench/build_stages.py --baseline e8d77d8 --hf         # ... and today's with every model on transformers

Each build runs in its own process on a fresh workspace, one after the other, so both see the same
machine; the load average before and after each is recorded beside its times. The baseline's code comes
from `git archive` of its `src/` and runs with this environment's packages. `--hf` adds a third build of
today's pipeline whose teacher, student and judge are `hf:` on the embedded checkpoint (transformers
fp32), which isolates what the llama.cpp runtime does for the generation stages from what the pipeline's
redesign changed. Per-stage seconds come from each build's own manifest. The table goes to stdout and,
with `--write-md`, to bench/results/build_stages.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Stages that spend their time generating text with a language model (the rest train or score).
GENERATION = {"statements", "queries", "statement_queries", "scenes", "experiences", "protective", "qa", "boundary",
              "preference", "evaluation", "apc_data", "faithfulness_data", "relevance", "nli"}


def baseline_src(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def stage_seconds(workspace: Path) -> dict[str, float]:
    """Per-stage seconds from a build's manifest (`steps` today; `stages` with `build/` keys before)."""
    manifest = json.loads((workspace / "manifest.json").read_text())
    entries = manifest.get("steps") or {k.removeprefix("build/"): v for k, v in manifest.get("stages", {}).items()
                                        if k.startswith("build/")}
    return {name: float(e.get("seconds", 0.0)) for name, e in entries.items() if e.get("status") in ("done", "skipped")}


def build(label: str, src: Path, character: str, workspace: Path, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1"}
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rolecraft", "build", character, "--workspace", str(workspace), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode:
        sys.exit(f"{label}: build failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    stages = stage_seconds(workspace)
    return {"label": label, "wall": wall, "stages": stages, "load": (load_before, os.getloadavg()[0]),
            "generation": sum(s for n, s in stages.items() if n in GENERATION)}


def table(runs: list[dict]) -> str:
    names = list(dict.fromkeys(n for r in runs for n in r["stages"]))
    head = "| stage | " + " | ".join(r["label"] for r in runs) + " |"
    lines = [head, "|" + "---|" * (len(runs) + 1)]
    for n in names:
        cells = [f"{r['stages'][n]:.1f}" if n in r["stages"] else "—" for r in runs]
        lines.append(f"| {n}{' (generation)' if n in GENERATION else ''} | " + " | ".join(cells) + " |")
    lines.append("| **generation stages** | " + " | ".join(f"**{r['generation']:.0f}**" for r in runs) + " |")
    lines.append("| **wall (process)** | " + " | ".join(f"**{r['wall']:.0f}**" for r in runs) + " |")
    lines.append("| load average before → after | " + " | ".join(f"{a:.1f} → {b:.1f}" for a, b in (r["load"] for r in runs))
                 + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the commit whose build is 'before'")
    parser.add_argument("--character", default="examples/mira-voss.txt")
    parser.add_argument("--hf", action="store_true", help="also today's build with every model on transformers")
    parser.add_argument("--keep", type=Path, help="keep the workspaces under this folder")
    parser.add_argument("--write-md", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="build-stages-"))
    where = args.keep or scratch
    old = baseline_src(args.baseline, scratch / "baseline")
    # Today's code is copied first, so editing the tree while the builds run changes nothing measured.
    today_src = shutil.copytree(ROOT / "src", scratch / "today" / "src", ignore=shutil.ignore_patterns("__pycache__"))
    runs = [build(f"{args.baseline} (before)", old, args.character, where / "ws-before", [])]
    runs.append(build("today", today_src, args.character, where / "ws-today", []))
    if args.hf:
        sys.path.insert(0, str(today_src))
        from rolecraft.llm.embedded import embedded_checkpoint

        hf = f"hf:{embedded_checkpoint()}"
        runs.append(build("today, hf: fp32", today_src, args.character, where / "ws-hf",
                          ["--teacher", hf, "--student", hf, "--judge", hf]))
    (where / "runs.json").write_text(json.dumps(runs, indent=1))
    before, today = runs[0], runs[1]
    text = "\n".join([
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Command: `python bench/build_stages.py --baseline {args.baseline}{' --hf' if args.hf else ''}` "
        f"(character {args.character}; seconds per stage from each build's manifest).",
        "",
        table(runs),
        "",
        f"today / before: wall {today['wall'] / before['wall']:.2f}×, generation stages "
        f"{today['generation'] / max(before['generation'], 1e-9):.2f}×"
        + (f"; today's generation stages on llama.cpp vs on transformers: "
           f"{runs[2]['generation'] / max(today['generation'], 1e-9):.2f}× faster" if args.hf else ""),
    ])
    print(text)
    if args.write_md:
        (ROOT / "bench" / "results" / "build_stages.md").write_text("# The README's main job, per stage\n\n" + text + "\n")


if __name__ == "__main__":
    main()
