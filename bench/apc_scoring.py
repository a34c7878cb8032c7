"""APC scoring: batched (rolecraft) vs one pair at a time (the reference's loop), and retrieval latency.

    python bench/apc_scoring.py                      # 100 statements x 50 queries x 2 responses, 600-fact retrieval
    python bench/apc_scoring.py --discriminators WORKSPACE/discriminators

Both scorers use the same two classifiers in the same process. The reference computes, for every
(query, response, statement), one relevance forward pass and one NLI forward pass, batch size 1.
rolecraft computes relevance once per (statement, query) and sends all NLI triples through in
length-sorted batches. Without --discriminators, the classifiers are the embedded all-MiniLM-L6-v2
with freshly initialised (seeded) heads: the same compute as trained ones.

Text comes from ../shared/data: statements and facts are profile sentences (Character-LLM wikis and
APC's Alice statements), queries are Character-LLM interview questions, responses are APC's Alice NLI
responses. Results go to bench/results/apc.md (section "scoring").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TORCHDYNAMO_DISABLE="1", TOKENIZERS_PARALLELISM="false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results" / "apc.md"


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())
    import torch

    return f"{cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, 1-min load average {os.getloadavg()[0]:.1f}"


def write_section(name: str, text: str, results: Path = RESULTS, title: str = "# APC: persona-faithfulness benchmarks\n") -> None:
    """Replace one script's section of a results file (default bench/results/apc.md), keeping the others."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    old = results.read_text(encoding="utf-8") if results.exists() else title
    block = f"{start}\n{text.strip()}\n{end}"
    new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, old, flags=re.S) if start in old else f"{old.rstrip()}\n\n{block}\n"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(new, encoding="utf-8")


def texts(statements: int, queries: int, facts: int) -> tuple[list[str], list[str], list[str], list[str]]:
    if not DATA.exists():
        sys.exit(f"reference data not found at {DATA}")
    sentences = []
    for path in sorted((DATA / "character-llm" / "profiles").glob("wiki_*.txt")):
        for sentence in re.split(r"(?<=[.!?])\s+", path.read_text(encoding="utf-8")):
            sentence = " ".join(sentence.split())
            if 8 <= len(sentence.split()) <= 40 and not sentence.startswith("#"):
                sentences.append(sentence)
    alice = [r["statement"] for r in json.loads((DATA / "apc" / "alice-statements" / "Alice.json").read_text())]
    pool = list(dict.fromkeys(alice + sentences))
    questions = []
    for path in sorted((DATA / "character-llm" / "questions").glob("generated_agent_interview_*.json")):
        if "multiturn" not in path.name:
            questions += [q["question"] for q in json.loads(path.read_text())]
    replies = [r["response"] for r in json.loads((DATA / "apc" / "alice-statements" / "Alice.nli.v2.json").read_text())]
    return pool[:statements], list(dict.fromkeys(questions))[:queries], list(dict.fromkeys(replies)), pool[:facts]


def fresh_classifiers(folder: Path):
    """MiniLM with seeded, untrained heads, saved as discriminator folders."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rolecraft.faithfulness.discriminators import LABELS, META
    from rolecraft.llm.embedded import embedded_encoder

    base = str(embedded_encoder())
    for kind, labels in LABELS.items():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
        model.save_pretrained(folder / kind)
        AutoTokenizer.from_pretrained(base).save_pretrained(folder / kind)
        (folder / kind / META).write_text(json.dumps({"kind": kind, "labels": list(labels), "max_length": 256}))
    return folder


def loop_apc(character, statements, query, response, relevance, nli) -> float:
    """The reference's way: two forward passes per statement, one pair at a time."""
    from rolecraft.faithfulness.discriminators import Item

    total = 0.0
    for s in statements:
        p_g = float(relevance.predict([Item(character, s, query)])[0, 1])
        p = nli.predict([Item(character, s, query, response)])[0]
        total += p_g * float(p[2]) + (1 - p_g) * (1 - float(p[0]))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=100)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--responses", type=int, default=2)
    parser.add_argument("--facts", type=int, default=600)
    parser.add_argument("--discriminators", type=Path, help="Folder with trained relevance/ and nli/ (default: fresh heads).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/results/apc.md alone.")
    args = parser.parse_args()

    from rolecraft.faithfulness.apc import APCScorer
    from rolecraft.faithfulness.discriminators import ClassifierDiscriminator, Item
    from rolecraft.faithfulness.retrieval import FactRetriever

    statements, queries, pool, facts = texts(args.statements, args.queries, args.facts)
    responses = [[pool[(i * args.responses + j) % len(pool)] for j in range(args.responses)] for i in range(len(queries))]
    folder = args.discriminators or fresh_classifiers(Path(tempfile.mkdtemp(prefix="apc-bench-")))
    relevance, nli = ClassifierDiscriminator(folder / "relevance"), ClassifierDiscriminator(folder / "nli")
    character = "Alice"
    loop_apc(character, statements[:1], queries[0], responses[0][0], relevance, nli)  # load and warm up both
    scorer = APCScorer(character, statements, relevance, nli)
    n_scores = len(queries) * args.responses

    started = time.perf_counter()
    batched = scorer.score(queries, responses)
    batched_s = time.perf_counter() - started

    pruned_scorer = APCScorer(character, statements, relevance, nli, prune_below=0.05)
    started = time.perf_counter()
    pruned = pruned_scorer.score(queries, responses)
    pruned_s = time.perf_counter() - started

    started = time.perf_counter()
    looped = [[loop_apc(character, statements, q, r, relevance, nli) for r in rs] for q, rs in zip(queries, responses)]
    loop_s = time.perf_counter() - started

    # The ceiling batching can reach here: one NLI item's cost alone vs inside a full batch.
    probe_item = [Item(character, statements[0], queries[0], responses[0][0])]
    started = time.perf_counter()
    for _ in range(64):
        nli.predict(probe_item)
    single_ms = (time.perf_counter() - started) / 64 * 1000
    started = time.perf_counter()
    nli.predict(probe_item * 64)
    batched_ms = (time.perf_counter() - started) / 64 * 1000

    diffs = [abs(b.total - lp) for brow, lrow in zip(batched, looped) for b, lp in zip(brow, lrow)]
    pruned_diffs = [abs(b.total - p.total) for brow, prow in zip(batched, pruned) for b, p in zip(brow, prow)]
    pruned_share = sum(s.pruned for row in pruned for r in row for s in r.statements) / (n_scores * len(statements))

    # Retrieval over `facts` statements: embedding pre-filter (50 candidates) vs ranking every fact.
    retriever = FactRetriever(character, facts, relevance, candidates=50)
    started = time.perf_counter()
    retriever.index  # noqa: B018 (builds the index)
    index_s = time.perf_counter() - started
    full = FactRetriever(character, facts, relevance, candidates=len(facts))
    probe = queries[:20]
    retriever.search(probe[0], 5)
    fast_ms, full_ms, overlap = [], [], []
    for q in probe:
        t = time.perf_counter()
        got = retriever.search(q, 5)
        fast_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        want = full.search(q, 5)
        full_ms.append((time.perf_counter() - t) * 1000)
        overlap.append(len(set(got) & set(want)) / 5)
    vector = retriever.encoder.encode([probe[0]], normalize_embeddings=True)[0]
    t = time.perf_counter()
    for _ in range(1000):
        (retriever.index @ vector).argpartition(-50)
    flat_us = (time.perf_counter() - t) * 1000

    report = f"""## Scoring: batched vs one pair at a time

`python bench/apc_scoring.py{' --discriminators ' + str(args.discriminators) if args.discriminators else ''}` — {machine()}.
Classifiers: {'trained, from ' + str(args.discriminators) if args.discriminators else 'embedded all-MiniLM-L6-v2 with seeded untrained heads (same compute as trained ones)'}, max length 256, batch 64.

| {len(statements)} statements x {len(queries)} queries x {args.responses} responses ({n_scores} APC scores) | seconds | forward passes | scores/s |
|---|---:|---:|---:|
| one pair at a time (reference) | {loop_s:.1f} | {2 * n_scores * len(statements)} | {n_scores / loop_s:.2f} |
| batched (rolecraft) | {batched_s:.1f} | {len(queries) * len(statements)} relevance + {n_scores * len(statements)} NLI items, batched | {n_scores / batched_s:.2f} |
| batched + pruning below P_g 0.05 (approximate, off by default) | {pruned_s:.1f} | {pruned_share:.0%} of NLI items skipped | {n_scores / pruned_s:.2f} |

- Speed-up batched vs loop: **{loop_s / batched_s:.1f}x**; max |APC difference| = {max(diffs):.2e} (mean {statistics.mean(diffs):.2e}).
- Where the speed-up comes from, and its ceiling on this CPU: reusing relevance across responses cuts
  the forward passes from {2 * n_scores * len(statements)} to {len(queries) * len(statements) + n_scores * len(statements)} ({2 * n_scores / (len(queries) + n_scores):.2f}x), and batching cuts the cost of one
  NLI item from {single_ms:.1f} ms alone to {batched_ms:.1f} ms inside a batch of 64 ({single_ms / batched_ms:.1f}x, measured in this run).
  A 22M-parameter encoder at batch 1 already keeps two CPU cores busy, so exact batched scoring
  cannot reach 10x here ({2 * n_scores / (len(queries) + n_scores) * single_ms / batched_ms:.1f}x at most); on a GPU, where batch 1 leaves the device mostly idle, it can.
- Pruning: {pruned_s and batched_s / pruned_s:.1f}x faster than exact batched; max |APC difference| {max(pruned_diffs):.3f}, mean {statistics.mean(pruned_diffs):.3f}.

## Retrieval latency, {len(facts)} facts

| | per query |
|---|---:|
| flat inner-product search over {len(facts)} normalised 384-d vectors (numpy) | {flat_us:.1f} µs |
| embedding pre-filter (50 candidates) + relevance ranking, k = 5 | {statistics.median(fast_ms):.0f} ms median ({min(fast_ms):.0f}–{max(fast_ms):.0f}) |
| relevance ranking of every fact (no pre-filter), k = 5 | {statistics.median(full_ms):.0f} ms median ({min(full_ms):.0f}–{max(full_ms):.0f}) |

- Building the index (embedding {len(facts)} facts once): {index_s:.1f} s.
- Top-5 overlap between pre-filtered and full ranking: {statistics.mean(overlap):.0%} over {len(probe)} queries{'' if args.discriminators else ' (untrained heads rank almost at random, so this says nothing about quality; pass --discriminators for a meaningful overlap)'}.
- An approximate index (faiss / hnswlib) would replace a {flat_us:.0f}-µs exact search: not worth a dependency at this size.
"""
    print(report)
    if not args.no_write:
        write_section("scoring", report)


if __name__ == "__main__":
    main()
