"""Coverage-guided fuzzing of every card reader (atheris / libFuzzer), and the memory hostile files cost.

    python bench/fuzz_cards.py --seconds 600            # every reader for 10 minutes each
    python bench/fuzz_cards.py --readers charx --runs 20000 --seed 1
    python bench/fuzz_cards.py --bombs-only             # only the hostile-file memory table

Each reader runs in its own process (libFuzzer owns it until the run ends) on the harness in
tests/card_fuzz.py, starting from its seed inputs. A harness Violation (an exception other than
RolecraftError, a multi-line error, an invalid or unsafe export, a stray file) is saved once per class
under OUT/crashes/READER/ and the run goes on; a hang (-timeout) or memory over -rss_limit_mb stops it
and is saved by libFuzzer. Then each hostile file (zip bomb, 4 GB PNG chunk, deep JSON, traversal
names) is loaded and exported in a fresh process and its peak RSS compared with the same for a plain
card. Results: a JSON summary under OUT and a markdown section in bench/results/fuzz.md (--write-md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "fuzz.md"
READERS = ("profile", "json", "png", "charx", "lorebook")
_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.M)
_STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", default="all", help="comma-separated, of: " + ", ".join(READERS))
    parser.add_argument("--runs", type=int, default=0, help="inputs per reader (0: until --seconds)")
    parser.add_argument("--seconds", type=int, default=60, help="time per reader")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=None, help="folder for crashes, corpora and summary.json")
    parser.add_argument("--bombs-only", action="store_true", help="only the hostile-file memory table")
    parser.add_argument("--skip-bombs", action="store_true", help="only the fuzzing")
    parser.add_argument("--write-md", action="store_true", help="write the section in bench/results/fuzz.md")
    parser.add_argument("--child", choices=READERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="rolecraft-fuzz-"))
    readers = READERS if args.readers == "all" else tuple(args.readers.split(","))
    summary = {"machine": machine(), "load_before": os.getloadavg()[0], "seed": args.seed,
               "runs": [] if args.bombs_only else [fuzz(reader, args) for reader in readers],
               "bombs": [] if args.skip_bombs else bombs(), "load_after": os.getloadavg()[0]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    text = report(summary, sys.argv[1:])
    print(text)
    if args.write_md:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# Fuzzing the card readers\n\n" + text + "\n", encoding="utf-8")
    if any(run["crash_classes"] or run["fatal"] for run in summary["runs"]):
        sys.exit(1)


def fuzz(reader: str, args: argparse.Namespace) -> dict:
    """One libFuzzer process on one reader; its figures from libFuzzer's final statistics."""
    crashes = args.out / "crashes" / reader
    crashes.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--child", reader, "--seed", str(args.seed), "--runs", str(args.runs),
               "--seconds", str(args.seconds), "--rss-limit-mb", str(args.rss_limit_mb), "--out", str(args.out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=os.environ | {"PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
    wall = time.perf_counter() - started
    log = done.stdout + done.stderr
    (args.out / f"{reader}.log").write_text(log)
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    status = _STATUS.findall(log)
    fatal = re.findall(r"ERROR: libFuzzer: ([\w-]+)|==\d+== ERROR: libFuzzer: ([\w-]+)", log)
    row = {
        "reader": reader,
        "inputs": stats.get("number_of_executed_units", int(status[-1][0]) if status else 0),
        "seconds": round(wall, 1),
        "coverage": int(status[-1][1]) if status else 0,
        "corpus": int(status[-1][3]) if status else 0,
        "peak_rss_mb": stats.get("peak_rss_mb"),
        "crash_classes": sorted(p.stem for p in crashes.glob("*.txt")),
        "fatal": [a or b for a, b in fatal],
        "exit": done.returncode,
    }
    print(f"{reader}: {row['inputs']} inputs in {row['seconds']} s, coverage {row['coverage']}, "
          f"{len(row['crash_classes'])} crash classes, peak RSS {row['peak_rss_mb']} MB", file=sys.stderr)
    return row


def child(args: argparse.Namespace) -> None:
    """Inside the fuzzing process: instrument the readers, seed a corpus, hand over to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["rolecraft", "tests.card_fuzz", "zipfile", "base64"]):
        from tests import card_fuzz

    reader = args.child
    crashes = args.out / "crashes" / reader
    corpus = args.out / "corpus" / reader
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(card_fuzz.seeds(reader)):
        (corpus / f"seed-{i}").write_bytes(seed)
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="rolecraft-fuzz-", dir=shm if shm.is_dir() else None))
    seen = {p.stem for p in crashes.glob("*.txt")}

    def one_input(data: bytes) -> None:
        try:
            card_fuzz.check(reader, data, workdir)
        except card_fuzz.Violation as v:
            name = re.sub(r"[^\w.@-]+", "_", v.key)
            if name not in seen:
                seen.add(name)
                (crashes / f"{name}.bin").write_bytes(data)
                (crashes / f"{name}.txt").write_text(f"{v}\n")
                print(f"NEW CRASH CLASS {v}", file=sys.stderr, flush=True)

    flags = [f"-seed={args.seed}", f"-rss_limit_mb={args.rss_limit_mb}", "-timeout=20", "-print_final_stats=1",
             "-max_len=65536", f"-artifact_prefix={crashes}/", "-reload=0"]
    flags.append(f"-runs={args.runs}" if args.runs else f"-max_total_time={args.seconds}")
    atheris.Setup([sys.argv[0], *flags, str(corpus)], one_input)
    atheris.Fuzz()


# --- hostile files: peak memory of one load + export in a fresh process ---------------------------

_PROBE = """
import sys, tempfile
from pathlib import Path
from rolecraft.cards import export_card, load_character
from rolecraft.errors import RolecraftError
path, outcome = Path(sys.argv[1]), "loaded"
try:
    character = load_character(path)
    with tempfile.TemporaryDirectory() as out:
        for name, version in (("o.json", "v2"), ("o.png", "v3"), ("o.charx", "v3")):
            try:
                export_card(character, Path(out) / name, version)
            except RolecraftError as e:
                outcome = "export refused: " + str(e)[:100]
except RolecraftError as e:
    outcome = "refused: " + str(e)[:100]
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))  # this program's own peak
print(int(peak.split()[1]) // 1024, outcome)
"""


def bombs() -> list[dict]:
    from tests import card_bombs

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, make in card_bombs.HOSTILE.items():
            path = make(Path(folder))
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, cwd=REPO,
                                  env=os.environ | {"PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
            peak, _, outcome = done.stdout.strip().partition(" ")
            rows.append({"file": name, "bytes": path.stat().st_size, "peak_rss_mb": int(peak) if peak.isdigit() else None,
                         "seconds": round(time.perf_counter() - started, 2),
                         "outcome": outcome or done.stderr.strip().splitlines()[-1][:160]})
            print(f"{name}: {rows[-1]}", file=sys.stderr)
    return rows


def report(summary: dict, argv: list[str]) -> str:
    lines = [f"`python bench/fuzz_cards.py {' '.join(argv)}` — {summary['machine']}; 1-min load "
             f"{summary['load_before']:.1f} before, {summary['load_after']:.1f} after; libFuzzer seed {summary['seed']}.", ""]
    if summary["runs"]:
        lines += ["| reader | inputs tried | seconds | inputs/s | coverage (edges) | corpus | crash classes | fatal | peak RSS MB |",
                  "|---|---:|---:|---:|---:|---:|---|---|---:|"]
        for r in summary["runs"]:
            rate = r["inputs"] / r["seconds"] if r["seconds"] else 0
            lines.append(f"| {r['reader']} | {r['inputs']:,} | {r['seconds']} | {rate:,.0f} | {r['coverage']} | {r['corpus']} | "
                         f"{', '.join(r['crash_classes']) or 'none'} | {', '.join(r['fatal']) or 'none'} | {r['peak_rss_mb']} |")
        lines.append("")
    plain = next((b for b in summary["bombs"] if b["file"].startswith("plain")), None)
    if summary["bombs"]:
        lines += ["| hostile file | size | peak RSS MB | × plain card | seconds | outcome |", "|---|---:|---:|---:|---:|---|"]
    for b in summary["bombs"]:
        ratio = b["peak_rss_mb"] / plain["peak_rss_mb"] if plain and b["peak_rss_mb"] and plain["peak_rss_mb"] else 0
        lines.append(f"| {b['file']} | {b['bytes']:,} B | {b['peak_rss_mb']} | {ratio:.2f} | {b['seconds']} | {b['outcome']} |")
    return "\n".join(lines)


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
