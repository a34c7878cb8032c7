"""Coverage-guided fuzzing of every card reader (atheris / libFuzzer), and the memory hostile files cost.

    python bench/fuzz_cards.py --seconds 300 --baseline-src /tmp/before/src --baseline-seconds 60 --write-md
    python bench/fuzz_cards.py --readers charx --runs 20000 --seed 1
    python bench/fuzz_cards.py --skip-bombs --runs 800      # what the test suite runs

Each reader runs in its own process (libFuzzer owns it until the run ends) on the harness in
tests/card_fuzz.py, starting from its seed inputs. A harness Violation (an exception other than
RolecraftError, a multi-line error, an invalid or unsafe export, a stray file) is saved once per class
under OUT/crashes/CODE/READER/ and the run goes on; a hang (-timeout) or memory over -rss_limit_mb
stops it and is saved by libFuzzer. Then each hostile file (zip bombs, a 4 GB PNG chunk, deep JSON,
traversal names) is loaded and exported in a fresh process, whose peak RSS is compared with the same
for a plain card. `--baseline-src` names a rolecraft `src` tree from before the fixes (for instance
`git archive e8d77d8 src | tar -x -C /tmp/before`): the same harness and files run against it first,
in the same run, so "found" and "fixed" come from one machine and one load.
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
_FATAL = re.compile(r"ERROR: libFuzzer: ([\w-]+)")
PROBE_TIMEOUT = 300  # seconds for one hostile file's load + export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", default="all", help="comma-separated, of: " + ", ".join(READERS))
    parser.add_argument("--runs", type=int, default=0, help="inputs per reader (0: until --seconds)")
    parser.add_argument("--seconds", type=int, default=60, help="time per reader")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--baseline-src", type=Path, help="a rolecraft src tree from before the fixes")
    parser.add_argument("--baseline-seconds", type=int, default=60, help="time per reader on the baseline")
    parser.add_argument("--out", type=Path, default=None, help="folder for crashes, corpora and summary.json")
    parser.add_argument("--skip-bombs", action="store_true", help="only the fuzzing")
    parser.add_argument("--write-md", action="store_true", help="write bench/results/fuzz.md")
    parser.add_argument("--child", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--code", default="after", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    args.out = args.out or Path(tempfile.mkdtemp(prefix="rolecraft-fuzz-"))
    readers = READERS if args.readers == "all" else tuple(args.readers.split(","))
    codes = {"after": REPO / "src"}
    if args.baseline_src:
        codes = {"before": args.baseline_src.resolve(), **codes}
    summary = {"machine": machine(), "load_before": os.getloadavg()[0], "seed": args.seed, "runs": [], "bombs": []}
    for code, src in codes.items():
        limit = {"runs": args.runs, "seconds": args.baseline_seconds if code == "before" else args.seconds}
        summary["runs"] += [fuzz(reader, code, src, limit, args) for reader in readers]
    if not args.skip_bombs:
        summary["bombs"] = bombs(codes)
    summary["load_after"] = os.getloadavg()[0]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    text = report(summary, sys.argv[1:])
    print(text)
    if args.write_md:
        write_section(text)
    if any(run["crash_classes"] or run["fatal"] for run in summary["runs"] if run["code"] == "after"):
        sys.exit(1)


def _env(src: Path) -> dict[str, str]:
    return os.environ | {"PYTHONPATH": f"{src}:{REPO}"}


def fuzz(reader: str, code: str, src: Path, limit: dict[str, int], args: argparse.Namespace) -> dict:
    """One libFuzzer process on one reader of one source tree; its figures from libFuzzer's output."""
    out = args.out / code
    (out / "crashes" / reader).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--child", reader, "--code", code, "--seed", str(args.seed),
               "--runs", str(limit["runs"]), "--seconds", str(limit["seconds"]),
               "--rss-limit-mb", str(args.rss_limit_mb), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env(src))
    wall = time.perf_counter() - started
    log = done.stdout + done.stderr
    (out / f"{reader}.log").write_text(log)
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    status = _STATUS.findall(log)
    row = {
        "code": code,
        "reader": reader,
        "inputs": stats.get("number_of_executed_units", int(status[-1][0]) if status else 0),
        "seconds": round(wall, 1),
        "coverage": int(status[-1][1]) if status else 0,
        "corpus": int(status[-1][3]) if status else 0,
        "peak_rss_mb": stats.get("peak_rss_mb"),
        "crash_classes": sorted(p.stem for p in (out / "crashes" / reader).glob("*.txt")),
        "fatal": _FATAL.findall(log),
        "exit": done.returncode,
    }
    print(f"{code} {reader}: {row['inputs']} inputs in {row['seconds']} s, coverage {row['coverage']}, "
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
path, outcome = Path(sys.argv[1]), "loaded and exported"
try:
    character = load_character(path)
    with tempfile.TemporaryDirectory() as out:
        for name, version in (("o.json", "v2"), ("o.png", "v3"), ("o.charx", "v3")):
            try:
                export_card(character, Path(out) / name, version)
            except RolecraftError as e:
                outcome = "export refused: " + e.problem.split(": ", 1)[-1]
except RolecraftError as e:
    outcome = "refused: " + e.problem.split(": ", 1)[-1]
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))  # this program's own peak
print(int(peak.split()[1]) // 1024, outcome)
"""


def bombs(codes: dict[str, Path]) -> list[dict]:
    from tests import card_bombs

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, make in card_bombs.HOSTILE.items():
            path = make(Path(folder))
            row = {"file": name, "bytes": path.stat().st_size}
            for code, src in codes.items():
                started = time.perf_counter()
                try:
                    done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True,
                                          cwd=REPO, env=_env(src), timeout=PROBE_TIMEOUT)
                except subprocess.TimeoutExpired:
                    done = subprocess.CompletedProcess([], 1, "", f"no answer within {PROBE_TIMEOUT} s (stopped)")
                peak, _, outcome = done.stdout.strip().partition(" ")
                crash = (done.stderr.strip().splitlines() or ["?"])[-1]
                row[code] = {"peak_rss_mb": int(peak) if peak.isdigit() else None, "outcome": outcome or crash[:120],
                             "seconds": round(time.perf_counter() - started, 2)}
            rows.append(row)
            print(f"{name}: {row}", file=sys.stderr)
    return rows


def report(summary: dict, argv: list[str]) -> str:
    lines = [f"`python bench/fuzz_cards.py {' '.join(argv)}`", "",
             f"{summary['machine']}; 1-min load {summary['load_before']:.1f} before, {summary['load_after']:.1f} "
             f"after; libFuzzer seed {summary['seed']}.", ""]
    if summary["runs"]:
        lines += ["| code | reader | inputs tried | seconds | inputs/s | coverage (edges) | corpus | crash classes "
                  "| fatal | peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|---|---|---:|"]
        for r in summary["runs"]:
            rate = r["inputs"] / r["seconds"] if r["seconds"] else 0
            classes = f"{len(r['crash_classes'])}: {', '.join(r['crash_classes'])}" if r["crash_classes"] else "0"
            lines.append(f"| {r['code']} | {r['reader']} | {r['inputs']:,} | {r['seconds']} | {rate:,.0f} | "
                         f"{r['coverage']} | {r['corpus']} | {classes} | {', '.join(r['fatal']) or 'none'} | "
                         f"{r['peak_rss_mb']} |")
        lines.append("")
    if summary["bombs"]:
        codes = [c for c in ("before", "after") if c in summary["bombs"][0]]
        plain = {c: summary["bombs"][0][c]["peak_rss_mb"] for c in codes}  # the first file is a plain card
        lines += ["| hostile file | size | " + " | ".join(f"{c}: peak RSS MB (× plain card) | {c}: outcome"
                                                           for c in codes) + " |",
                  "|---|---:|" + "---:|---|" * len(codes)]
        for b in summary["bombs"]:
            cells = []
            for c in codes:
                peak = b[c]["peak_rss_mb"]
                ratio = f" ({peak / plain[c]:.2f}×)" if peak and plain[c] else ""
                cells += [f"{peak}{ratio}", f"{b[c]['outcome']} ({b[c]['seconds']} s)"]
            lines.append(f"| {b['file']} | {b['bytes']:,} B | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace the figures in bench/results/fuzz.md (between its markers), keeping the prose around them."""
    start, end = "<!-- fuzz_cards figures -->", "<!-- /fuzz_cards figures -->"
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Fuzzing the card readers\n"
    block = f"{start}\n{text.strip()}\n{end}"
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S) if start in old \
        else f"{old.rstrip()}\n\n{block}\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(new, encoding="utf-8")


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
