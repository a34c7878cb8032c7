"""APC-based DPO on the embedded student, on CPU: does it raise APC on held-out queries? (+ discriminator accuracy)

    python bench/apc_dpo.py accuracy                # held-out accuracy of the embedded discriminators, several splits
    python bench/apc_dpo.py dpo                     # the acceptance run (resumable: rerun to continue)

Character: Alice (APC's made-up guitarist, ../shared/data/apc). Persona statements: the reference run's
8 statements. Discriminators: all-MiniLM-L6-v2 fine-tuned on the reference relevance / NLI rows (max length 128).
Queries: the reference run's 3 queries per statement; the first two of each statement are sampled for
DPO (in conversations of `--turns` user turns), the third is held out and never sampled for DPO. (The
embedded teacher's own queries are too poor to train on: in a trial 12 of 13 were rejected or noise.)
Student: the embedded SmolLM2-135M-Instruct as a RAG agent (top-5 statements by relevance in its
prompt), i.e. the agent DPO starts from. Both agents answer the same held-out queries with the same
seeds and are scored by the same APC scorer. Results go to bench/results/apc.md ("accuracy", "dpo").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apc_scoring import DATA, REPO, machine, write_section  # noqa: E402

REFERENCE = DATA / "apc" / "alice-statements"


def reference_rows():
    from rolecraft.formats.apc import NLILabelRecord, RelevanceRecord, StatementQueries, StatementRecord, load_reference

    return (
        load_reference(REFERENCE / "Alice.json", StatementRecord),
        load_reference(REFERENCE / "Alice.query_relevant_to_statement.json", StatementQueries),
        load_reference(REFERENCE / "Alice.relevance.json", RelevanceRecord),
        load_reference(REFERENCE / "Alice.nli.v2.json", NLILabelRecord),
    )


def accuracy(args: argparse.Namespace) -> None:
    import tempfile

    from rolecraft.train.discriminators import (
        DiscriminatorSettings,
        nli_examples,
        relevance_examples,
        train_discriminator,
    )

    _, _, relevance, nli = reference_rows()
    lines = []
    for kind, (items, labels) in (("relevance", relevance_examples(relevance)), ("nli", nli_examples(nli))):
        for by in ("query", "statement"):
            for seed in range(args.seeds):
                settings = DiscriminatorSettings(seed=seed, max_length=args.max_length, held_out=0.2, held_out_by=by)
                with tempfile.TemporaryDirectory() as tmp:
                    r = train_discriminator(kind, items, labels, Path(tmp) / kind, settings)
                lines.append((kind, by, seed, r))
                print(kind, by, seed, r.accuracy, r.majority, flush=True)
    rows = "\n".join(
        f"| {kind} | {by} | {seed} | {r.train_items} / {r.test_items} | {r.accuracy:.3f} | {r.majority:.3f} | {r.seconds:.0f} |"
        for kind, by, seed, r in lines
    )

    def mean(kind: str, by: str, field: str) -> float:
        return statistics.mean(getattr(r, field) for k, b, _, r in lines if (k, b) == (kind, by))

    means = "\n".join(
        f"| {kind} | {by} | **{mean(kind, by, 'accuracy'):.3f}** | {mean(kind, by, 'majority'):.3f} | "
        f"{sum(r.accuracy > r.majority for k, b, _, r in lines if (k, b) == (kind, by))} of {args.seeds} |"
        for kind in ("relevance", "nli")
        for by in ("query", "statement")
    )
    write_section("accuracy", f"""## Embedded discriminators: held-out accuracy on APC's Alice data

`python bench/apc_dpo.py accuracy --seeds {args.seeds}` — {machine()}.
all-MiniLM-L6-v2 + classification head, lr 1e-4, batch 8, 5 (relevance) / 10 (NLI) epochs, max length {args.max_length}
(rolecraft's defaults). Each split holds out ~20% of the rows, in one of two ways:
- **by query** (the default): whole (statement, query) groups: the test asks about known statements
  with questions and replies the classifier never saw. This is how APC uses the discriminators:
  always on the character's own statements.
- **by statement**: whole statements: the test rows are about statements the classifier never saw
  (a harder test of generalisation; with 8 statements one or two make the whole test set).
Majority baseline: always answer the training split's most common label.

| discriminator | held out by | mean accuracy | mean majority baseline | splits above the baseline |
|---|---|---:|---:|---:|
{means}

| discriminator | held out by | split seed | train / test rows | accuracy | majority | seconds |
|---|---|---:|---:|---:|---:|---:|
{rows}
""")


def dpo(args: argparse.Namespace) -> None:
    from rolecraft.agent import Agent
    from rolecraft.faithfulness.apc import APCScorer
    from rolecraft.faithfulness.discriminators import workspace_discriminators
    from rolecraft.faithfulness.retrieval import FactRetriever
    from rolecraft.llm import load_model, run_sync
    from rolecraft.llm.pool import ModelPool
    from rolecraft.pipeline import Models, run
    from rolecraft.profile import parse_profile
    from rolecraft.synth.preference import PreferenceSettings, preference_pairs, sample_replies
    from rolecraft.train.discriminators import DiscriminatorSettings, DiscriminatorsStep, TrainReport
    from rolecraft.train.dpo import dpo_config, train_dpo
    from rolecraft.train.student import lora_config
    from rolecraft.workspace import Workspace

    timings: dict[str, float] = {}
    started = time.perf_counter()
    profile = DATA / "apc" / "wiki" / "wiki_Alice.txt"
    statements, reference_queries, relevance_rows, nli_rows = reference_rows()
    character = parse_profile(profile.read_text(encoding="utf-8"), profile)
    character = character.model_copy(update={"statements": [s.statement for s in statements]})
    ws = Workspace.for_character(character, args.workspace)
    ws.save_character(character)
    ws.write("statements", statements)

    trainer = DiscriminatorsStep(DiscriminatorSettings(held_out=0.0, max_length=128), relevance=relevance_rows, nli=nli_rows)
    run([trainer], ws, Models())  # trained once; a rerun with the same rows finds them done
    relevance, nli = workspace_discriminators(ws)
    pool = ModelPool(ws.cache_path)
    timings["discriminators"] = time.perf_counter() - started

    train_queries = [q for row in reference_queries for q in row.queries[:2]]
    held_out = [q for row in reference_queries for q in row.queries[2:]]

    retriever = FactRetriever(character.name, character.facts(), relevance)
    scorer = APCScorer(character.name, character.statements, relevance, nli)
    settings = PreferenceSettings(samples=args.samples, margin=args.margin, turns=args.turns,
                                  max_tokens=args.max_tokens, max_contexts=len(train_queries))
    eval_settings = settings.model_copy(update={"temperature": 0.7, "seed": 1000})

    def evaluate(agent: Agent) -> tuple[float, float, float]:
        """Mean APC / ΔAPC of sampled replies, and mean APC of greedy replies, on the held-out queries."""
        histories = [[{"role": "user", "content": q}] for q in held_out]
        _, sampled = run_sync(sample_replies(agent, histories, args.eval_samples, eval_settings))
        _, greedy = run_sync(sample_replies(agent, histories, 1, eval_settings.model_copy(update={"temperature": 0.0})))
        scored = [r for row in scorer.score(held_out, sampled) for r in row]
        greedy_scored = [row[0] for row in scorer.score(held_out, greedy)]
        return (statistics.mean(r.total for r in scored), statistics.mean(r.delta for r in scored),
                statistics.mean(r.total for r in greedy_scored))

    t = time.perf_counter()
    before_agent = Agent(character, pool.wrap(load_model("embedded")), retriever=retriever)
    before = evaluate(before_agent)
    timings["evaluate before"] = time.perf_counter() - t
    print("before", before, flush=True)

    t = time.perf_counter()
    rows, preference = run_sync(preference_pairs(before_agent, scorer, train_queries, settings))
    stats = preference.model_dump()
    timings["sample + score"] = time.perf_counter() - t
    print(f"{len(rows)} pairs", flush=True)

    t = time.perf_counter()
    adapter = ws.path("adapters/dpo")
    config = dpo_config(num_train_epochs=args.epochs, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                        learning_rate=args.lr, max_length=1024)
    result = train_dpo("embedded", rows, adapter, config, lora_config(r=32))
    timings["DPO training"] = time.perf_counter() - t

    t = time.perf_counter()
    after_agent = Agent(character, pool.wrap(load_model("embedded", adapter=adapter)), retriever=retriever)
    after = evaluate(after_agent)
    timings["evaluate after"] = time.perf_counter() - t
    print("after", after, flush=True)
    total = time.perf_counter() - started

    trained = sum(r.seconds for r in ws.read(trainer.name, TrainReport))
    verdict = "raised" if after[0] > before[0] else "did NOT raise"
    write_section("dpo", f"""## APC-based DPO on the embedded student (acceptance)

`python bench/apc_dpo.py dpo --samples {args.samples} --turns {args.turns} --epochs {args.epochs} --max-tokens {args.max_tokens}` — {machine()}.

Alice (8 reference statements). Scorer: MiniLM discriminators trained on the reference relevance ({len(relevance_rows)}) and
NLI ({len(nli_rows)}) rows, all of them (training took {trained:.0f} s). DPO data: {len(train_queries)} training queries (2 per statement), grouped into
conversations of {args.turns} user turns ({stats.get('contexts')} contexts), {args.samples} replies each at temperature 1.0, pairs with
an APC gap > {args.margin}: **{len(rows)} pairs** ({sum((r.turns or 1) > 1 for r in rows)} multi-turn), mean gap {stats.get('mean_gap', 0):.2f}.
Training: TRL DPO, LoRA r 32 on all linear layers, β 0.1, lr {args.lr}, {args.epochs} epochs, effective batch 4, reference = base with the
adapter disabled (the agent DPO started from); final loss {result.metrics.get('train_loss', float('nan')):.3f}.
Evaluation: the {len(held_out)} held-out queries (one per statement, none used for DPO), {args.eval_samples} replies each at temperature 0.7 with
the same seeds for both agents, plus one greedy reply each; same scorer.

| agent | mean APC (sampled) | mean ΔAPC (sampled) | mean APC (greedy) |
|---|---:|---:|---:|
| RAG agent, SmolLM2-135M (start) | {before[0]:.3f} | {before[1]:+.3f} | {before[2]:.3f} |
| + APC-DPO adapter | {after[0]:.3f} | {after[1]:+.3f} | {after[2]:.3f} |

APC-DPO **{verdict}** the mean APC on held-out queries ({after[0] - before[0]:+.3f} sampled, {after[2] - before[2]:+.3f} greedy; APC range 0–8).
ΔAPC is relative to a reply neutral to every statement (see docs/faithfulness.md).

Time: {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}; total {total / 60:.1f} min.
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("--seeds", type=int, default=3)
    acc.add_argument("--max-length", type=int, default=256)
    run = sub.add_parser("dpo")
    run.add_argument("--workspace", type=Path, default=REPO / "workspaces" / "bench-alice-apc-dpo")
    run.add_argument("--samples", type=int, default=4)
    run.add_argument("--margin", type=float, default=0.2)
    run.add_argument("--turns", type=int, default=2)
    run.add_argument("--max-tokens", type=int, default=48)
    run.add_argument("--epochs", type=float, default=3.0)
    run.add_argument("--lr", type=float, default=2e-4)
    run.add_argument("--eval-samples", type=int, default=6)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"reference data not found at {DATA}")
    {"accuracy": accuracy, "dpo": dpo}[args.command](args)


if __name__ == "__main__":
    main()
