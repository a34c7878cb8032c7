"""Self-alignment on Ray Data: the same shards and the same `synthesize`, on a pool of model replicas.

The driver plans and shards exactly as the in-process run does, then hands the unfinished shards to
Ray Data as one row each. `map_batches` runs them on an actor pool; each actor loads the model once
and calls `synthesize` on one shard at a time, so every shard is generated in the same batches as
in-process and, for the same seed, yields the same rows. Finished shards stream back to the driver,
which writes each one as soon as it arrives: the workers need no shared file system, and a killed
run loses only the shards in flight.

Locally `ray.init(num_cpus=2)` (or nothing: we start a local Ray) runs it on this machine. On a
cluster, start Ray on every node (`ray start --head` on one, `ray start --address HEAD:6379` on the
others), install rolecraft and the model on each, and pass `address="auto"` from the head node. On
GPU nodes give each replica a GPU (`num_gpus=1`) and a `vllm:` model; docs/selfalign.md shows how
the same prompts can also go through `ray.data.llm` engines.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rolecraft.character import Character
from rolecraft.synth.selfalign import CharacterResult, SelfAlignConfig, synthesize
from rolecraft.synth.selfalign_shards import SelfAlignResult, Shard, collect, pending, prepare, save_shard
from rolecraft.workspace import Workspace

# Workers see only the environment we hand them (Ray's runtime_env), so forward what shapes a run.
FORWARDED_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TORCHDYNAMO_DISABLE",
                 "TOKENIZERS_PARALLELISM", "ROLECRAFT_CACHE", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


class ShardWorker:
    """A Ray actor: one model replica, loaded once, synthesizing one shard per call."""

    def __init__(self, model: str, options: dict[str, Any], config: dict[str, Any]):
        from rolecraft.llm import load_model

        self.model = load_model(model, **options)
        self.config = SelfAlignConfig.model_validate(config)
        self.loop = asyncio.new_event_loop()  # one loop for the actor's life: the backend's lock lives in it

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        indices, outputs = [], []
        for index, text in zip(batch["index"], batch["shard"]):
            shard = Shard.model_validate_json(str(text))
            results = self.loop.run_until_complete(synthesize(self.model, shard.tasks, self.config))
            indices.append(int(index))
            outputs.append("\n".join(r.model_dump_json() for r in results))
        return {"index": indices, "results": outputs}


def run_selfalign_ray(
    characters: Sequence[Character],
    model: str,
    workspace: Workspace,
    config: SelfAlignConfig,
    workers: int = 2,
    options: dict[str, Any] | None = None,
    encoder: str | Path | None = None,
    num_cpus: float = 0.5,
    num_gpus: float = 0.0,
    address: str | None = None,
) -> SelfAlignResult:
    """Synthesize on `workers` Ray actors; the same shards and result as `selfalign_run.run_selfalign`.

    `num_cpus` is per actor and fractional on purpose: whole CPUs for every actor leave none for
    Ray Data's own tasks, and the pipeline can stall on a small machine.
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from rolecraft.progress import progress

    started = time.perf_counter()
    shards = prepare(characters, model, config, options, encoder)
    todo = pending(workspace, shards)
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, logging_level="warning")
        DataContext.get_current().enable_progress_bars = False  # ours counts characters, not blocks
        by_index = {s.index: s for s in todo}
        rows = ray.data.from_items(
            [{"index": s.index, "shard": s.model_dump_json()} for s in todo], override_num_blocks=len(todo)
        )
        done = rows.map_batches(
            ShardWorker,
            fn_constructor_kwargs={"model": model, "options": options or {}, "config": config.model_dump()},
            batch_size=1,  # one shard per call: the shard is the batch, exactly as in-process
            compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            runtime_env={"env_vars": {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}},
        )
        with progress(len(characters), f"self-alignment on Ray ({workers} workers)") as advance:
            advance(len(characters) - sum(len(s.tasks) for s in todo))
            for row in done.iter_rows():
                shard = by_index[int(row["index"])]
                results = [CharacterResult.model_validate_json(line) for line in str(row["results"]).splitlines()]
                save_shard(workspace, shard, results)
                advance(len(shard.tasks))
    return collect(workspace, shards, len(shards) - len(todo), started, f"ray ({workers} workers)")
